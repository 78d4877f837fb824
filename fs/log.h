/* log.h - scopeholdfs's log: every line (its own, and what the FUSE
 * operations and libfuse print to stderr) is filtered by [fs] log_level,
 * repeats collapsed, the rate capped, and written to the original stderr
 * (foreground) or to syslog (background), in the thread that logs it. */
#ifndef SCOPEHOLD_FS_LOG_H
#define SCOPEHOLD_FS_LOG_H

#include <pthread.h>
#include <syslog.h>

/* Log one line at a syslog priority (LOG_ERR, LOG_WARNING, LOG_INFO,
 * LOG_DEBUG): "scopeholdfs: [warning: |debug: ]TEXT". Never pass a value. */
void fs_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Lines above prio are dropped from now on (reload may change it). */
void fs_log_set_level(int prio);

/* Replace the stderr stream by one that feeds the filter (fd 2 stays as it
 * is). to_syslog: lines go to syslog (openlog("scopeholdfs", LOG_PID,
 * LOG_DAEMON)) instead of fd 2. ratelimit 0 (for -d) keeps only the
 * collapsing of repeats. Call it while one thread runs. 0, or -1 (nothing
 * changed). */
int fs_log_start(int to_syslog, int ratelimit);

/* Create a thread that takes no asynchronous signal (SIGTERM must reach
 * the main thread, which libfuse's loop waits in); faults such as SIGSEGV
 * stay deliverable, so a sanitizer still reports them. pthread_create's
 * return value. */
int fs_thread_start(pthread_t *th, void *(*fn)(void *), void *arg);

/* Flush (the count of a last run of repeats too), give stderr back.
 * Call it after the other threads are gone. Idempotent. */
void fs_log_stop(void);

#endif
