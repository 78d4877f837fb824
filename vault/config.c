/* config.c - read /etc/scopehold/scopehold.ini (or $SCOPEHOLD_CONFIG) with inih
 * into struct vault_config. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <ini.h>

#include "vault/config.h"

struct parse {
	struct vault_config *c;
	char bad[256];
};

static int set_path(char *dst, const char *val)
{
	if (strlen(val) >= PATH_MAX)
		return 0;
	strcpy(dst, val);
	return 1;
}

/* "N", "NK", "NM", "NG" or "NT" (binary multiples; "KiB", "MiB", ... too):
 * 1, else 0. */
static int set_size(int64_t *dst, const char *val)
{
	char *end;
	errno = 0;
	long long n = strtoll(val, &end, 10);
	if (end == val || n < 0 || errno)
		return 0;
	int shift = 0;
	const char *units = "KMGT";
	const char *u = *end ? strchr(units, *end) : NULL;
	if (u) {
		shift = 10 * (int)(u - units + 1);
		end++;
		if (!strcmp(end, "iB"))
			end += 2;
	}
	if (*end || (shift && n > (INT64_MAX >> shift)))
		return 0;
	*dst = (int64_t)n << shift;
	return 1;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse *p = user;
	struct vault_config *c = p->c;
	int ok = 0;
	if (!strcmp(section, "vault") && !strcmp(name, "db"))
		ok = set_path(c->db, value);
	else if (!strcmp(section, "vault") && !strcmp(name, "key_file"))
		ok = set_path(c->key_file, value);
	else if (!strcmp(section, "vault") && !strcmp(name, "keep_versions")) {
		char *end;
		long n = strtol(value, &end, 10);
		if (*value && !*end && n >= 1 && n <= VAULT_KEEP_VERSIONS_MAX)
			c->keep_versions = (int)n, ok = 1;
	}
	else if (!strcmp(section, "audit") && !strcmp(name, "db"))
		ok = set_path(c->audit_db, value);
	else if (!strcmp(section, "fs") && !strcmp(name, "mountpoint"))
		ok = set_path(c->mountpoint, value);
	else if (!strcmp(section, "identity") && !strcmp(name, "proc_root"))
		ok = set_path(c->proc_root, value);
	else if (!strcmp(section, "identity") && !strcmp(name, "subuid_file"))
		ok = set_path(c->subuid_file, value);
	else if (!strcmp(section, "launch") && !strcmp(name, "socket"))
		ok = set_path(c->launch_socket, value);
	else if (!strcmp(section, "launch") && !strcmp(name, "cgroup"))
		ok = set_path(c->launch_cgroup, value);
	else if (!strcmp(section, "audit") && !strcmp(name, "sync")) {
		if (!strcmp(value, "normal"))
			c->audit_sync = VAULT_SYNC_NORMAL, ok = 1;
		else if (!strcmp(value, "full"))
			c->audit_sync = VAULT_SYNC_FULL, ok = 1;
	} else if (!strcmp(section, "fs") && !strcmp(name, "log_level")) {
		static const char *const lv[] = { "error", "warning", "info", "debug" };
		static const int pr[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
		for (int i = 0; i < 4; i++)
			if (!strcmp(value, lv[i]))
				c->log_level = pr[i], ok = 1;
	} else if (!strcmp(section, "audit") && !strcmp(name, "reserve")) {
		ok = set_size(&c->audit_reserve, value);
	} else if (!strcmp(section, "audit") && !strcmp(name, "queue")) {
		char *end;
		long n = strtol(value, &end, 10);
		if (*value && !*end && n >= 1 && n <= 1000000)
			c->audit_queue = (int)n, ok = 1;
	}
	if (!ok && !p->bad[0])
		snprintf(p->bad, sizeof p->bad, "[%s] %s = '%.64s'", section, name, value);
	return ok;
}

/* inih reads a line into a buffer of 200 bytes (Debian's build) and parses
 * a longer one as two, naming the wrong line: such lines are refused first. */
#define CONFIG_LINE_MAX 198
#define CONFIG_SIZE_MAX (1 << 20)

/* The whole file, NUL-terminated (malloc'd), or NULL with *e. */
static char *read_text(int fd, const char *path, struct vault_err *e)
{
	size_t len = 0;
	char *buf = malloc(CONFIG_SIZE_MAX + 1);
	if (!buf) {
		vault_fail(e, VAULT_ENOMEM, "out of memory reading config file '%s'", path);
		return NULL;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, CONFIG_SIZE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			vault_fail(e, VAULT_EIO, "cannot read config file '%s': %s", path, strerror(errno));
			break;
		}
		len += (size_t)n;
		if (len > CONFIG_SIZE_MAX) {
			vault_fail(e, VAULT_EINVAL, "config file '%s' is larger than %d bytes", path, CONFIG_SIZE_MAX);
			break;
		}
		if (n == 0) {
			if (memchr(buf, 0, len)) {
				vault_fail(e, VAULT_EINVAL, "config file '%s' contains a NUL byte", path);
				break;
			}
			buf[len] = 0;
			return buf;
		}
	}
	free(buf);
	return NULL;
}

/* The number (from 1) of the first line longer than CONFIG_LINE_MAX
 * characters, 0 when none is. */
static int long_line(const char *text)
{
	int line = 1;
	for (const char *p = text; *p; line++) {
		size_t n = strcspn(p, "\n");
		if (n > CONFIG_LINE_MAX)
			return line;
		p += n + (p[n] == '\n');
	}
	return 0;
}

const char *vault_config_audit_db(const struct vault_config *c, char *buf)
{
	if (c->audit_db[0]) {
		snprintf(buf, PATH_MAX, "%s", c->audit_db);
		return buf;
	}
	size_t n = strlen(c->db);
	if (n > 3 && !strcmp(c->db + n - 3, ".db"))
		snprintf(buf, PATH_MAX, "%.*s-audit.db", (int)(n - 3), c->db);
	else
		snprintf(buf, PATH_MAX, "%s-audit", c->db);
	return buf;
}

int vault_config_check(const struct vault_config *c, struct vault_err *e)
{
	if (!c->db[0])
		return vault_fail(e, VAULT_EINVAL, "the database path is empty");
	if (strlen(c->db) + sizeof "-audit.db" > PATH_MAX)
		return vault_fail(e, VAULT_EINVAL, "the database path is too long");
	char a[PATH_MAX], ra[PATH_MAX], rd[PATH_MAX];
	vault_config_audit_db(c, a);
	if (!strcmp(a, c->db) || (realpath(a, ra) && realpath(c->db, rd) && !strcmp(ra, rd)))
		return vault_fail(e, VAULT_EINVAL, "[audit] db '%s' is the vault database itself; give the audit store a file of its own", a);
	return 0;
}

int vault_config_load(struct vault_config *c, const char *path, struct vault_err *e)
{
	memset(c, 0, sizeof *c);
	strcpy(c->db, VAULT_DEFAULT_DB);
	strcpy(c->mountpoint, VAULT_DEFAULT_MOUNT);
	strcpy(c->proc_root, "/proc");
	strcpy(c->subuid_file, "/etc/subuid");
	strcpy(c->launch_socket, "/run/scopehold/launch.sock");
	strcpy(c->launch_cgroup, "/scopehold.launch");
	c->audit_sync = VAULT_SYNC_NORMAL;
	c->audit_queue = 4096;
	c->keep_versions = VAULT_KEEP_VERSIONS;
	c->log_level = LOG_INFO;
	c->audit_reserve = VAULT_DEFAULT_AUDIT_RESERVE;

	int explicit = 1;
	if (!path || !*path)
		path = getenv("SCOPEHOLD_CONFIG");
	if (!path || !*path) {
		path = VAULT_DEFAULT_CONFIG;
		explicit = 0;
	}
	/* O_NONBLOCK: a FIFO is refused below, never waited on. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT && !explicit)
			return 0;
		return vault_fail(e, errno == ENOENT ? VAULT_ENOENT : VAULT_EIO,
				  "cannot read config file '%s': %s", path, strerror(errno));
	}
	/* It names the database, the key and where callers are read from:
	 * only root (or we) may be able to change it. */
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int err = errno;
		close(fd);
		return vault_fail(e, VAULT_EIO, "cannot stat config file '%s': %s", path, strerror(err));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return vault_fail(e, VAULT_EINVAL, "config file '%s' is not a regular file", path);
	}
	if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 022)) {
		close(fd);
		if (st.st_mode & 022)
			return vault_fail(e, VAULT_EPERM, "config file '%s' is writable by group or others (mode %04o); run: chmod go-w '%s'",
					  path, (unsigned)(st.st_mode & 07777), path);
		return vault_fail(e, VAULT_EPERM, "config file '%s' is owned by uid %u, not root; run: chown root '%s'",
				  path, (unsigned)st.st_uid, path);
	}
	char *text = read_text(fd, path, e);
	close(fd);
	if (!text)
		return -1;
	int line = long_line(text);
	if (line) {
		free(text);
		return vault_fail(e, VAULT_EINVAL, "config file '%s' line %d is longer than %d characters; "
				  "refusing it", path, line, CONFIG_LINE_MAX);
	}
	struct parse p = { .c = c };
	line = ini_parse_string(text, handler, &p);
	free(text);
	if (line < 0)
		return vault_fail(e, VAULT_EIO, "cannot read config file '%s'", path);
	if (line == 0 && (!c->db[0] || strlen(c->db) + sizeof "-audit.db" > PATH_MAX))
		return vault_fail(e, VAULT_EINVAL, "config file '%s': [vault] db is empty or too long", path);
	if (line > 0)
		return vault_fail(e, VAULT_EINVAL, "config file '%s' line %d: unknown or invalid setting %s "
				  "(known: [vault] db, key_file, keep_versions = 1..1000; [fs] mountpoint, log_level = error|warning|info|debug; "
				  "[audit] db, sync = normal|full, queue, reserve = SIZE[K|M|G]; [identity] proc_root, subuid_file; "
				  "[launch] socket, cgroup)", path, line, p.bad[0] ? p.bad : "");
	return 0;
}
