/* killat.c - LD_PRELOAD shim for the crash tests: the process SIGKILLs
 * itself at its Nth call (SCOPEHOLD_KILL_AT=N, from 1) of rename, renameat,
 * renameat2, link, linkat, unlink, unlinkat, fsync or fdatasync, before that
 * call runs. Unset or 0: only counts. SCOPEHOLD_KILL_LOG=FILE appends one
 * line per call ("N name"), to show which step a kill hit. */
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/crash/shim.h"

static atomic_long calls;

/* Count the call; SIGKILL ourselves when it is the chosen one. */
static void step(const char *name)
{
	long n = atomic_fetch_add(&calls, 1) + 1;
	const char *log = getenv("SCOPEHOLD_KILL_LOG");
	if (log && *log) {
		int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (fd >= 0) {
			char line[64];
			int len = snprintf(line, sizeof line, "%ld %s\n", n, name);
			(void)!write(fd, line, (size_t)len);
			close(fd);
		}
	}
	const char *at = getenv("SCOPEHOLD_KILL_AT");
	if (at && atol(at) == n)
		raise(SIGKILL);
}

int rename(const char *a, const char *b)
{
	step("rename");
	return ((int (*)(const char *, const char *))shim_next("rename"))(a, b);
}

int renameat(int fa, const char *a, int fb, const char *b)
{
	step("renameat");
	return ((int (*)(int, const char *, int, const char *))shim_next("renameat"))(fa, a, fb, b);
}

int renameat2(int fa, const char *a, int fb, const char *b, unsigned int flags)
{
	step("renameat2");
	return ((int (*)(int, const char *, int, const char *, unsigned int))shim_next("renameat2"))(fa, a, fb, b, flags);
}

int link(const char *a, const char *b)
{
	step("link");
	return ((int (*)(const char *, const char *))shim_next("link"))(a, b);
}

int linkat(int fa, const char *a, int fb, const char *b, int flags)
{
	step("linkat");
	return ((int (*)(int, const char *, int, const char *, int))shim_next("linkat"))(fa, a, fb, b, flags);
}

int unlink(const char *a)
{
	step("unlink");
	return ((int (*)(const char *))shim_next("unlink"))(a);
}

int unlinkat(int fd, const char *a, int flags)
{
	step("unlinkat");
	return ((int (*)(int, const char *, int))shim_next("unlinkat"))(fd, a, flags);
}

int fsync(int fd)
{
	step("fsync");
	return ((int (*)(int))shim_next("fsync"))(fd);
}

int fdatasync(int fd)
{
	step("fdatasync");
	return ((int (*)(int))shim_next("fdatasync"))(fd);
}
