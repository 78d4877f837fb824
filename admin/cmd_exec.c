/* cmd_exec.c - scopeholdctl exec: read granted files through the mount (so
 * the caller's own identity, grants and audit apply) and run a command with
 * them in its environment, for tools that only take keys from variables. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "admin/ctl.h"

static const char exec_usage[] =
	"usage: scopeholdctl exec [--mount DIR] --env NAME=P/K [--env NAME=P/K ...] -- CMD [ARG...]\n\n"
	"Read each P/K through the mounted filesystem (DIR, default [fs] mountpoint) as\n"
	"the calling process, put it in the environment as NAME, and run CMD. The mount\n"
	"decides and audits every read as for any other caller. Prefer reading the\n"
	"files directly: a variable is inherited by every child CMD starts.\n"
	"With --mount nothing is read from the config file; without it, a default config\n"
	"file this user may not read (init makes /etc/scopehold 0700) leaves the default\n"
	"mount point " VAULT_DEFAULT_MOUNT ".\n";

#define MAX_ENV 64

/* Read mount/pk into a NUL-terminated locked buffer. */
static char *read_granted(const char *mount, const char *pk)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s/%s", mount, pk) >= (int)sizeof path) {
		ctl_fail("path '%s/%s' is too long", mount, pk);
		return NULL;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;
		ctl_fail("cannot read '%s': %s%s", path, strerror(err),
			 err == ENOENT ? " (not granted to this process's agent, or not mounted)" :
			 err == ENOTCONN ? " (scopeholdfs is not running; restart it and remount)" : "");
		return NULL;
	}
	char *buf = sodium_malloc(VAULT_VALUE_MAX + 1);
	size_t len = 0;
	ssize_t n = 0;
	while (buf && len < VAULT_VALUE_MAX && (n = read(fd, buf + len, VAULT_VALUE_MAX - len)) > 0)
		len += (size_t)n;
	close(fd);
	if (!buf || n < 0) {
		ctl_fail("cannot read '%s': %s", path, buf ? strerror(errno) : "out of locked memory");
		sodium_free(buf);
		return NULL;
	}
	if (memchr(buf, 0, len)) {
		ctl_fail("'%s' holds a NUL byte and cannot go into an environment variable", pk);
		sodium_free(buf);
		return NULL;
	}
	buf[len] = 0;
	return buf;
}

int ctl_exec(struct ctl *c, int argc, char **argv)
{
	const char *mount = c->cfg.mountpoint, *names[MAX_ENV], *paths[MAX_ENV];
	int n = 0, i, mount_given = 0;
	for (i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		const char *v;
		int r;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return ctl_help(exec_usage);
		if ((r = ctl_opt("exec", argc, argv, &i, "--mount", &v))) {
			if (r < 0)
				return 2;
			mount = v;
			mount_given = 1;
		} else if ((r = ctl_opt("exec", argc, argv, &i, "--env", &v))) {
			if (r < 0)
				return 2;
			const char *eq = strchr(v, '=');
			if (!eq || eq == v || !strchr(eq + 1, '/'))
				return ctl_usage("exec", "--env takes NAME=PROVIDER/KEY, not '%s'", v);
			if (n == MAX_ENV)
				return ctl_usage("exec", "at most %d --env", MAX_ENV);
			names[n] = v;
			paths[n++] = eq + 1;
		} else {
			return ctl_usage("exec", "unexpected argument '%s' (the command follows --)", argv[i]);
		}
	}
	if (i >= argc - 1)
		return ctl_usage("exec", "missing -- CMD");
	if (n == 0)
		return ctl_usage("exec", "give at least one --env NAME=P/K");
	if (!mount_given && c->cfg_unreadable)
		fprintf(stderr, "scopeholdctl: exec: cannot read the config file '%s' (%s); using the default mount point %s "
			"(give --mount DIR to choose)\n", VAULT_DEFAULT_CONFIG, strerror(EACCES), mount);
	for (int k = 0; k < n; k++) {
		char pr[VAULT_NAME_MAX + 1], ke[VAULT_NAME_MAX + 1];
		struct vault_err e = { 0 };
		if (vault_path_split(paths[k], pr, ke, &e) < 0)
			return ctl_verr(&e);
		char *val = read_granted(mount, paths[k]);
		if (!val)
			return 1;
		char name[256];
		size_t nl = (size_t)(strchr(names[k], '=') - names[k]);
		if (nl >= sizeof name) {
			sodium_free(val);
			return ctl_usage("exec", "variable name too long");
		}
		memcpy(name, names[k], nl);
		name[nl] = 0;
		int rc = setenv(name, val, 1);
		sodium_free(val);
		if (rc < 0)
			return ctl_fail("cannot set %s: %s", name, strerror(errno));
	}
	vault_db_close(c->db);
	vault_db_close(c->adb);
	c->db = c->adb = NULL;
	execvp(argv[i + 1], argv + i + 1);
	return ctl_fail("cannot run '%s': %s", argv[i + 1], strerror(errno));
}
