/* log.h - scopeholdfs's log: every line written to stderr (its own, the
 * FUSE operations', libfuse's) passes through one thread that filters by
 * [fs] log_level, collapses repeats, caps the rate, and writes to the
 * original stderr (foreground) or to syslog (background). */
#ifndef SCOPEHOLD_FS_LOG_H
#define SCOPEHOLD_FS_LOG_H

#include <pthread.h>
#include <syslog.h>

/* Log one line at a syslog priority (LOG_ERR, LOG_WARNING, LOG_INFO,
 * LOG_DEBUG): "scopeholdfs: [warning: |debug: ]TEXT". Never pass a value. */
void fs_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Lines above prio are dropped from now on (reload may change it). */
void fs_log_set_level(int prio);

/* Route fd 2 through the log thread. to_syslog: send lines to syslog
 * (openlog("scopeholdfs", LOG_PID, LOG_DAEMON)) instead of the current
 * stderr. ratelimit 0 (for -d) keeps only the collapsing of repeats.
 * 0, or -1 (nothing changed) when the pipe or thread cannot be made. */
int fs_log_start(int to_syslog, int ratelimit);

/* Create a thread that takes no asynchronous signal (SIGTERM must reach
 * the main thread, which libfuse's loop waits in); faults such as SIGSEGV
 * stay deliverable, so a sanitizer still reports them. pthread_create's
 * return value. */
int fs_thread_start(pthread_t *th, void *(*fn)(void *), void *arg);

/* Flush, stop the thread, give fd 2 back. Idempotent. */
void fs_log_stop(void);

#endif
