/* log.c - one thread reads every line written to fd 2 from a pipe, and
 * passes it on filtered, collapsed and rate-capped: a failing request that
 * logs on every call must not flood the journal or the terminal. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/common_interface_defs.h>
#endif

#include "fs/log.h"

#define LOG_MARK '\x1e'         /* a line of fs_log: MARK, priority digit, text */
#define LOG_LINE 2048           /* longer lines are cut */
#define RATE_PER_S 20           /* distinct lines a second, after a burst of */
#define RATE_BURST 100
#define REPEAT_REPORT_S 10      /* a run of repeats is counted at least this often */

static atomic_int log_level = LOG_INFO;
static atomic_int log_piped;

static struct {
	int rfd;          /* read end of the pipe now on fd 2 */
	int out;          /* where lines go when not to syslog: the old fd 2 */
	int to_syslog;
	int ratelimit;
	pthread_t th;
	/* the log thread's own state */
	char last[LOG_LINE];
	int last_prio;
	unsigned long repeats;
	double repeat_since;
	double tokens, tokens_at;
	unsigned long dropped;
} lg = { .rfd = -1, .out = -1 };

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

void fs_log(int prio, const char *fmt, ...)
{
	if (prio > atomic_load(&log_level))
		return;
	char line[LOG_LINE];
	int n = snprintf(line, sizeof line, "%c%cscopeholdfs: %s", LOG_MARK, '0' + (prio & 7),
			 prio == LOG_WARNING ? "warning: " : prio == LOG_DEBUG ? "debug: " : "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = strlen(line);
	line[len++] = '\n';
	/* Before the pipe exists, plain text; one write either way (atomic
	 * below PIPE_BUF, so lines of threads never interleave). */
	const char *p = atomic_load(&log_piped) ? line : line + 2;
	size_t plen = atomic_load(&log_piped) ? len : len - 2;
	ssize_t w = write(STDERR_FILENO, p, plen);
	(void)w;
}

static void emit(int prio, const char *text)
{
	if (lg.to_syslog) {
		const char *t = strncmp(text, "scopeholdfs: ", 13) ? text : text + 13;
		syslog(prio, "%s", t);
		return;
	}
	struct iovec iov[2] = { { (void *)text, strlen(text) }, { "\n", 1 } };
	ssize_t w = writev(lg.out, iov, 2);
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

/* Called once a second and at every line: report runs of repeats. */
static void tick(double t)
{
	if (lg.repeats && t - lg.repeat_since >= REPEAT_REPORT_S) {
		flush_repeats();
		lg.repeat_since = t;
	}
	if (lg.dropped && lg.tokens >= 1)
		flush_dropped();
}

static void one_line(char *s)
{
	int prio = LOG_ERR; /* lines not from fs_log: faults of the operations, libfuse */
	if (s[0] == LOG_MARK && s[1] >= '0' && s[1] <= '7') {
		prio = s[1] - '0';
		s += 2;
	}
	if (!*s) /* fs_log filtered its lines by the level of their time */
		return;
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
		tick(t);
		return;
	}
	flush_repeats();
	tick(t);
	if (lg.ratelimit) {
		if (lg.tokens < 1) {
			lg.dropped++;
			return;
		}
		lg.tokens -= 1;
	}
	snprintf(lg.last, sizeof lg.last, "%s", s);
	lg.last_prio = prio;
	emit(prio, s);
}

static void *log_main(void *arg)
{
	static char buf[2 * LOG_LINE];
	size_t have = 0;
	(void)arg;
	for (;;) {
		struct pollfd p = { .fd = lg.rfd, .events = POLLIN };
		int r = poll(&p, 1, 1000);
		if (r <= 0) {
			if (r == 0 || errno == EINTR)
				tick(now_s());
			if (r < 0 && errno != EINTR)
				break;
			continue;
		}
		ssize_t n = read(lg.rfd, buf + have, sizeof buf - 1 - have);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break; /* every writer is gone: fs_log_stop */
		have += (size_t)n;
		char *s = buf, *nl;
		while ((nl = memchr(s, '\n', (size_t)(buf + have - s)))) {
			*nl = 0;
			one_line(s);
			s = nl + 1;
		}
		have -= (size_t)(s - buf);
		memmove(buf, s, have);
		if (have >= LOG_LINE) { /* an overlong line: cut it */
			buf[have] = 0;
			one_line(buf);
			have = 0;
		}
	}
	if (have) {
		buf[have] = 0;
		one_line(buf);
	}
	flush_repeats();
	flush_dropped();
	return NULL;
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
	int p[2];
	if (atomic_load(&log_piped) || pipe2(p, O_CLOEXEC) < 0)
		return -1;
	lg.out = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	if (lg.out < 0)
		goto fail_pipe;
	lg.rfd = p[0];
	lg.to_syslog = to_syslog;
	lg.ratelimit = ratelimit;
	lg.tokens = RATE_BURST;
	lg.tokens_at = now_s();
	if (to_syslog)
		openlog("scopeholdfs", LOG_PID, LOG_DAEMON);
	if (fs_thread_start(&lg.th, log_main, NULL) != 0)
		goto fail_out;
	fflush(stderr);
	if (dup2(p[1], STDERR_FILENO) < 0) {
		close(p[1]); /* the thread sees EOF */
		pthread_join(lg.th, NULL);
		p[1] = -1;
		goto fail_out;
	}
	close(p[1]);
	atomic_store(&log_piped, 1);
#ifdef __SANITIZE_ADDRESS__
	/* A sanitizer report must not wait in the pipe of a dying process. */
	__sanitizer_set_report_fd((void *)(intptr_t)lg.out);
#endif
	return 0;
fail_out:
	close(lg.out);
	lg.out = -1;
	if (to_syslog)
		closelog();
fail_pipe:
	close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	lg.rfd = -1;
	return -1;
}

void fs_log_stop(void)
{
	if (!atomic_load(&log_piped))
		return;
	fflush(stderr);
	atomic_store(&log_piped, 0);
	dup2(lg.out, STDERR_FILENO); /* closes the pipe's last write end */
	pthread_join(lg.th, NULL);
#ifdef __SANITIZE_ADDRESS__
	__sanitizer_set_report_fd((void *)(intptr_t)STDERR_FILENO);
#endif
	close(lg.rfd);
	close(lg.out);
	lg.rfd = lg.out = -1;
	if (lg.to_syslog)
		closelog();
}
