/* util.c - what scopeholdctl's verb files share: error lines, the lazily
 * opened database and key, admin audit rows, JSON strings and times. */
#include <ctype.h>
#include <stdint.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin/ctl.h"

int ctl_json_errors;

/* One error line: "scopeholdctl: PREFIX MESSAGE SUFFIX", or with --json
 * {"error": "..."} holding the same text. */
static void err_line(const char *prefix, const char *fmt, va_list ap, const char *suffix)
{
	char msg[1024];
	vsnprintf(msg, sizeof msg, fmt, ap);
	if (ctl_json_errors) {
		char line[1400];
		snprintf(line, sizeof line, "scopeholdctl: %s%s%s", prefix, msg, suffix);
		fputs("{\"error\":", stderr);
		ctl_json_str(stderr, line);
		fputs("}\n", stderr);
	} else {
		fprintf(stderr, "scopeholdctl: %s%s%s\n", prefix, msg, suffix);
	}
}

int ctl_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err_line("", fmt, ap, "");
	va_end(ap);
	return 1;
}

int ctl_usage(const char *verb, const char *fmt, ...)
{
	char prefix[160], suffix[160];
	snprintf(prefix, sizeof prefix, "%s: ", verb);
	snprintf(suffix, sizeof suffix, " (see: scopeholdctl %s --help)", verb);
	va_list ap;
	va_start(ap, fmt);
	err_line(prefix, fmt, ap, suffix);
	va_end(ap);
	return 2;
}

void ctl_json_ok(const char *action, const char *target, const char *fmt, ...)
{
	printf("{\"ok\":true,\"action\":");
	ctl_json_str(stdout, action);
	printf(",\"target\":");
	ctl_json_str(stdout, target);
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		fputc(',', stdout);
		vprintf(fmt, ap);
		va_end(ap);
	}
	puts("}");
}

int ctl_verr(const struct vault_err *e)
{
	return ctl_fail("%s", e->msg[0] ? e->msg : "failed");
}

struct vault_db *ctl_db(struct ctl *c)
{
	if (c->db)
		return c->db;
	struct vault_err e = { 0 };
	c->db = acl_db_open(c->cfg.db, 0, &e);
	if (!c->db)
		ctl_verr(&e);
	else
		vault_db_set_keep_versions(c->db, c->cfg.keep_versions);
	if (c->db && !c->rekeying && vault_key_pending(c->db, &e) == 1)
		fprintf(stderr, "scopeholdctl: warning: a rekey of '%s' was interrupted; run: scopeholdctl rekey "
			"to finish it\n", c->cfg.db);
	return c->db;
}

struct vault_db *ctl_audit_db(struct ctl *c)
{
	if (c->adb)
		return c->adb;
	char path[PATH_MAX];
	struct vault_err e = { 0 };
	/* Only init creates the store: a missing one is an error, never a
	 * fresh, empty trail that would verify. */
	c->adb = audit_db_open(vault_config_audit_db(&c->cfg, path), c->creating ? VAULT_DB_CREATE : 0, &e);
	if (!c->adb)
		ctl_verr(&e);
	return c->adb;
}

struct vault_key *ctl_key(struct ctl *c)
{
	if (c->key)
		return c->key;
	struct vault_db *db = ctl_db(c);
	if (!db)
		return NULL;
	struct vault_err e = { 0 };
	c->key = vault_key_load(db, c->cfg.key_file, &e);
	if (!c->key)
		ctl_verr(&e);
	return c->key;
}

void ctl_scrub(struct ctl *c)
{
	struct vault_err e = { 0 };
	int rc = vault_db_scrub(c->db, &e);
	if (rc > 0)
		fprintf(stderr, "scopeholdctl: warning: readers of '%s' kept its write-ahead log from being emptied; "
			"removed values stay in '%s-wal' until its next checkpoint\n", c->cfg.db, c->cfg.db);
	else if (rc < 0)
		fprintf(stderr, "scopeholdctl: warning: %s\n", e.msg);
}

void ctl_admin_row(struct audit_row *r, const char *event, const char *path)
{
	memset(r, 0, sizeof *r);
	r->event = event;
	r->result = "ok";
	r->path = path;
	r->uid = getuid();
	r->gid = getgid();
	r->pid = getpid();
	r->tgid = getpid();
	r->sudo_uid = -1;
	r->count = 1;
	const char *su = getenv("SUDO_UID");
	if (su && *su) {
		char *end;
		long v = strtol(su, &end, 10);
		if (!*end && v >= 0)
			r->sudo_uid = v;
	}
}

/* Bytes of the valid UTF-8 sequence at p (1..4), or 0: a stray or missing
 * continuation byte, an overlong form, a surrogate, or above U+10FFFF. */
static size_t utf8_seq(const unsigned char *p)
{
	unsigned c = p[0], n, min, cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, min = 0x80, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, min = 0x800, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, min = 0x10000, cp = c & 0x07;
	else
		return 0;
	for (unsigned i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80) /* also stops at the NUL */
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

int ctl_utf8_valid(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; p && *p;) {
		size_t n = utf8_seq(p);
		if (!n)
			return 0;
		p += n;
	}
	return 1;
}

void ctl_json_str(FILE *f, const char *s)
{
	if (!s) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		size_t n = utf8_seq(p);
		if (!n) { /* the exact bytes are in the *_hex field */
			fputs("\\ufffd", f);
			p++;
			continue;
		}
		switch (*p) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\t': fputs("\\t", f); break;
		case '\r': fputs("\\r", f); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fprintf(f, "\\u%04x", *p);
			else
				fwrite(p, 1, n, f);
		}
		p += n;
	}
	fputc('"', f);
}

void ctl_json_hex(FILE *f, const char *key, const char *s)
{
	if (!s || ctl_utf8_valid(s))
		return;
	fprintf(f, ",\"%s_hex\":\"", key);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		fprintf(f, "%02x", *p);
	fputc('"', f);
}

int64_t ctl_parse_time(const char *s)
{
	const int64_t max_s = INT64_MAX / 1000000000LL; /* year 2262 */
	if (!s || !*s)
		return -1;
	char *end;
	errno = 0;
	if (s[0] == '-' && isdigit((unsigned char)s[1])) {
		long long n = strtoll(s + 1, &end, 10);
		int64_t unit;
		if (!strcmp(end, "s")) unit = 1;
		else if (!strcmp(end, "m")) unit = 60;
		else if (!strcmp(end, "h")) unit = 3600;
		else if (!strcmp(end, "d")) unit = 86400;
		else return -1;
		int64_t now = vault_now_ns() / 1000000000LL;
		if (errno == ERANGE || n > now / unit)
			return -1; /* before 1970 */
		return (now - (int64_t)n * unit) * 1000000000LL;
	}
	int all_digits = 1;
	for (const char *p = s; *p; p++)
		all_digits &= isdigit((unsigned char)*p) != 0;
	if (all_digits) {
		long long v = strtoll(s, &end, 10);
		if (errno == ERANGE || v > max_s)
			return -1;
		return (int64_t)v * 1000000000LL;
	}
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *rest = strptime(s, "%Y-%m-%d", &tm);
	if (!rest)
		return -1;
	if (*rest == 'T' || *rest == ' ') {
		rest = strptime(rest + 1, "%H:%M:%S", &tm);
		if (!rest)
			return -1;
	}
	if (*rest == 'Z')
		rest++;
	if (*rest)
		return -1;
	time_t t = timegm(&tm);
	if (t < 0 || (int64_t)t > max_s)
		return -1;
	return (int64_t)t * 1000000000LL;
}

int64_t ctl_parse_duration(const char *s)
{
	char *end;
	errno = 0;
	long long n = strtoll(s, &end, 10);
	int64_t unit = !strcmp(end, "s") || !*end ? 1 : !strcmp(end, "m") ? 60 : !strcmp(end, "h") ? 3600
		     : !strcmp(end, "d") ? 86400 : 0;
	if (!isdigit((unsigned char)s[0]) || errno || !unit || n <= 0 || n > 100LL * 365 * 86400 / unit)
		return -1;
	return (int64_t)n * unit * 1000000000LL;
}

void ctl_format_time(int64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	char base[32];
	strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03dZ", base, (int)((ns / 1000000) % 1000));
}

int ctl_begin(struct ctl *c)
{
	struct vault_err e = { 0 };
	if (!ctl_db(c))
		return 1;
	if (vault_db_begin(c->db, &e) < 0)
		return ctl_verr(&e);
	return 0;
}

int ctl_end(struct ctl *c, int rc, const struct vault_err *e, const char *event, const char *path)
{
	return ctl_end_why(c, rc, e, event, path, NULL);
}

int ctl_end_why(struct ctl *c, int rc, const struct vault_err *e, const char *event, const char *path,
		const char *reason)
{
	struct vault_err e2 = { 0 };
	if (rc < 0) {
		vault_db_rollback(c->db);
		return ctl_verr(e);
	}
	struct audit_row r;
	ctl_admin_row(&r, event, path);
	r.reason = reason;
	/* The row first: a change that is not recorded never happens. */
	if (!ctl_audit_db(c) || audit_append(c->adb, &r, 1, &e2) < 0) {
		vault_db_rollback(c->db);
		return e2.msg[0] ? ctl_verr(&e2) : 1;
	}
	if (vault_db_commit(c->db, &e2) < 0) {
		vault_db_rollback(c->db);
		struct vault_err e3 = { 0 };
		r.result = "failed";
		r.reason = "the change did not commit";
		audit_append(c->adb, &r, 1, &e3);
		return ctl_verr(&e2);
	}
	return 0;
}

/* 1 when p points into one of the strings of argv (a value taken from it). */
static int in_argv(int argc, char **argv, const char *p)
{
	for (int j = 0; j < argc; j++) {
		uintptr_t a = (uintptr_t)argv[j], q = (uintptr_t)p;
		if (q >= a && q <= a + strlen(argv[j]))
			return 1;
	}
	return 0;
}

int ctl_opt(const char *verb, int argc, char **argv, int *i, const char *name, const char **val)
{
	size_t n = strlen(name);
	const char *a = argv[*i];
	if (strncmp(a, name, n))
		return 0;
	if (a[n] && a[n] != '=')
		return 0;
	if (*val && in_argv(argc, argv, *val)) {
		ctl_usage(verb, "option %s is given twice", name);
		return -1;
	}
	if (a[n] == '=') {
		*val = a + n + 1;
		return 1;
	}
	if (*i + 1 >= argc) {
		ctl_usage(verb, "option %s needs a value", name);
		return -1;
	}
	*val = argv[++*i];
	return 1;
}

int ctl_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return 1;
	return 0;
}

int ctl_help(const char *text)
{
	fputs(text, stdout);
	return 0;
}
