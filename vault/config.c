/* config.c - read /etc/scopehold/scopehold.ini (or $SCOPEHOLD_CONFIG) with inih
 * into struct vault_config. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
	else if (!strcmp(section, "audit") && !strcmp(name, "db"))
		ok = set_path(c->audit_db, value);
	else if (!strcmp(section, "fs") && !strcmp(name, "mountpoint"))
		ok = set_path(c->mountpoint, value);
	else if (!strcmp(section, "identity") && !strcmp(name, "proc_root"))
		ok = set_path(c->proc_root, value);
	else if (!strcmp(section, "audit") && !strcmp(name, "sync")) {
		if (!strcmp(value, "normal"))
			c->audit_sync = VAULT_SYNC_NORMAL, ok = 1;
		else if (!strcmp(value, "full"))
			c->audit_sync = VAULT_SYNC_FULL, ok = 1;
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
	c->audit_sync = VAULT_SYNC_NORMAL;
	c->audit_queue = 4096;
	c->audit_reserve = VAULT_DEFAULT_AUDIT_RESERVE;

	int explicit = 1;
	if (!path || !*path)
		path = getenv("SCOPEHOLD_CONFIG");
	if (!path || !*path) {
		path = VAULT_DEFAULT_CONFIG;
		explicit = 0;
	}
	FILE *f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT && !explicit)
			return 0;
		return vault_fail(e, errno == ENOENT ? VAULT_ENOENT : VAULT_EIO,
				  "cannot read config file '%s': %s", path, strerror(errno));
	}
	/* It names the database, the key and where callers are read from:
	 * only root (or we) may be able to change it. */
	struct stat st;
	if (fstat(fileno(f), &st) < 0) {
		fclose(f);
		return vault_fail(e, VAULT_EIO, "cannot stat config file '%s': %s", path, strerror(errno));
	}
	if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 022)) {
		fclose(f);
		if (st.st_mode & 022)
			return vault_fail(e, VAULT_EPERM, "config file '%s' is writable by group or others (mode %04o); run: chmod go-w '%s'",
					  path, (unsigned)(st.st_mode & 07777), path);
		return vault_fail(e, VAULT_EPERM, "config file '%s' is owned by uid %u, not root; run: chown root '%s'",
				  path, (unsigned)st.st_uid, path);
	}
	struct parse p = { .c = c };
	int line = ini_parse_file(f, handler, &p);
	fclose(f);
	if (line < 0)
		return vault_fail(e, VAULT_EIO, "cannot read config file '%s'", path);
	if (line == 0 && (!c->db[0] || strlen(c->db) + sizeof "-audit.db" > PATH_MAX))
		return vault_fail(e, VAULT_EINVAL, "config file '%s': [vault] db is empty or too long", path);
	if (line > 0)
		return vault_fail(e, VAULT_EINVAL, "config file '%s' line %d: unknown or invalid setting %s "
				  "(known: [vault] db, key_file; [fs] mountpoint; [audit] db, sync = normal|full, queue, reserve = SIZE[K|M|G]; "
				  "[identity] proc_root)", path, line, p.bad[0] ? p.bad : "");
	return 0;
}
