/* log.c - every line scopeholdfs logs (its own through fs_log, those the
 * FUSE operations and libfuse print to stderr) passes one filter, in the
 * writer's thread and before it goes on: repeats collapsed, the rate
 * capped, then the original stderr (foreground) or syslog (background).
 * stderr is replaced by a stream (fopencookie) that feeds the filter, so
 * a line is out before the request that logged it is answered; a sanitizer
 * writes to fd 2 itself and is not affected. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "fs/log.h"

#define LOG_LINE 2048           /* longer lines are cut */
#define RATE_PER_S 20           /* distinct lines a second, after a burst of */
#define RATE_BURST 100
#define REPEAT_REPORT_S 10      /* a run of repeats is counted at least this often */

static atomic_int log_level = LOG_INFO;

static struct {
	pthread_mutex_t lock;   /* the state below */
	int on;
	int to_syslog;
	int ratelimit;
	FILE *saved;            /* the stderr stream before fs_log_start */
	FILE *cookie;
	char partial[LOG_LINE]; /* of the cookie stream: text before its newline */
	size_t plen;
	char last[LOG_LINE];
	int last_prio;
	unsigned long repeats;
	double repeat_since;
	double tokens, tokens_at;
	unsigned long dropped;
} lg = { .lock = PTHREAD_MUTEX_INITIALIZER };

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void fs_log_set_level(int prio)
{
	atomic_store(&log_level, prio);
}

static void emit(int prio, const char *text)
{
	if (lg.to_syslog) {
		syslog(prio, "%s", strncmp(text, "scopeholdfs: ", 13) ? text : text + 13);
		return;
	}
	struct iovec iov[2] = { { (void *)text, strlen(text) }, { "\n", 1 } };
	ssize_t w = writev(STDERR_FILENO, iov, 2);
	(void)w;
}

static void flush_repeats(void)
{
	if (lg.repeats) {
		char m[128];
		snprintf(m, sizeof m, "scopeholdfs: the last message was repeated %lu more time%s",
			 lg.repeats, lg.repeats == 1 ? "" : "s");
		emit(lg.last_prio, m);
	}
	lg.repeats = 0;
}

static void flush_dropped(void)
{
	if (lg.dropped) {
		char m[128];
		snprintf(m, sizeof m, "scopeholdfs: %lu log line%s dropped (more than %d a second)",
			 lg.dropped, lg.dropped == 1 ? "" : "s", RATE_PER_S);
		emit(LOG_WARNING, m);
	}
	lg.dropped = 0;
}

/* One line, with lg.lock held. */
static void one_line(int prio, const char *s)
{
	if (!*s)
		return;
	if (!lg.on) {
		emit(prio, s);
		return;
	}
	double t = now_s();
	if (lg.ratelimit) {
		lg.tokens += (t - lg.tokens_at) * RATE_PER_S;
		if (lg.tokens > RATE_BURST)
			lg.tokens = RATE_BURST;
		lg.tokens_at = t;
	}
	if (!strcmp(s, lg.last)) {
		if (!lg.repeats++)
			lg.repeat_since = t;
		else if (t - lg.repeat_since >= REPEAT_REPORT_S) {
			flush_repeats();
			lg.repeat_since = t;
		}
		return;
	}
	flush_repeats();
	if (lg.ratelimit) {
		if (lg.tokens < 1) {
			lg.dropped++;
			return;
		}
		if (lg.dropped)
			flush_dropped();
		lg.tokens -= 1;
	}
	snprintf(lg.last, sizeof lg.last, "%s", s);
	lg.last_prio = prio;
	emit(prio, s);
}

void fs_log(int prio, const char *fmt, ...)
{
	if (prio > atomic_load(&log_level))
		return;
	char line[LOG_LINE];
	int n = snprintf(line, sizeof line, "scopeholdfs: %s",
			 prio == LOG_WARNING ? "warning: " : prio == LOG_DEBUG ? "debug: " : "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&lg.lock);
	one_line(prio, line);
	pthread_mutex_unlock(&lg.lock);
}

/* The write function of the stream that replaces stderr: whole lines go
 * to the filter as errors (they are the operations' faults and libfuse's
 * messages), the rest waits for its newline. */
static ssize_t cookie_write(void *c, const char *buf, size_t size)
{
	(void)c;
	pthread_mutex_lock(&lg.lock);
	for (size_t i = 0; i < size; i++) {
		if (buf[i] == '\n' || lg.plen == sizeof lg.partial - 1) {
			lg.partial[lg.plen] = 0;
			one_line(LOG_ERR, lg.partial);
			lg.plen = 0;
			if (buf[i] == '\n')
				continue;
		}
		lg.partial[lg.plen++] = buf[i];
	}
	pthread_mutex_unlock(&lg.lock);
	return (ssize_t)size;
}

int fs_thread_start(pthread_t *th, void *(*fn)(void *), void *arg)
{
	static const int faults[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS };
	sigset_t all, old;
	sigfillset(&all);
	for (size_t i = 0; i < sizeof faults / sizeof *faults; i++)
		sigdelset(&all, faults[i]);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(th, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

int fs_log_start(int to_syslog, int ratelimit)
{
	cookie_io_functions_t io = { .write = cookie_write };
	if (lg.on)
		return -1;
	FILE *f = fopencookie(NULL, "w", io);
	if (!f)
		return -1;
	setvbuf(f, NULL, _IOLBF, 0);
	fflush(stderr);
	pthread_mutex_lock(&lg.lock);
	lg.to_syslog = to_syslog;
	lg.ratelimit = ratelimit;
	lg.tokens = RATE_BURST;
	lg.tokens_at = now_s();
	if (to_syslog)
		openlog("scopeholdfs", LOG_PID, LOG_DAEMON);
	lg.saved = stderr;
	lg.cookie = f;
	stderr = f; /* glibc's stderr is a variable: libfuse and fs/ops.c print here now */
	lg.on = 1;
	pthread_mutex_unlock(&lg.lock);
	return 0;
}

void fs_log_stop(void)
{
	if (!lg.on)
		return;
	fflush(stderr);
	pthread_mutex_lock(&lg.lock);
	stderr = lg.saved;
	if (lg.plen) {
		lg.partial[lg.plen] = 0;
		one_line(LOG_ERR, lg.partial);
		lg.plen = 0;
	}
	flush_repeats();
	flush_dropped();
	lg.on = 0;
	if (lg.to_syslog)
		closelog();
	lg.to_syslog = 0;
	FILE *f = lg.cookie;
	lg.cookie = NULL;
	pthread_mutex_unlock(&lg.lock);
	fclose(f); /* flushes nothing more: its buffer was flushed above */
}
