/* ctl.h - what every verb file of scopeholdctl shares: the context (config,
 * lazily opened database and key), error reporting, JSON output helpers. */
#ifndef SCOPEHOLD_CTL_H
#define SCOPEHOLD_CTL_H

#include <stdio.h>

#include "acl/acl.h"
#include "acl/audit.h"
#include "vault/config.h"

struct ctl {
	struct vault_config cfg;
	int json;
	struct vault_db *db;   /* ctl_db() opens it */
	struct vault_db *adb;  /* the audit store: ctl_audit_db() opens it */
	struct vault_key *key; /* ctl_key() loads it */
	int creating;          /* init: the audit store may be created */
	int rekeying;          /* rekey: no warning about a rekey in progress */
	int cfg_unreadable;    /* the default config file exists but this user cannot read it (exec) */
};

/* A verb group: `scopeholdctl NAME ...`. fn gets argv[0] == NAME. Returns
 * the exit status: 0 done, 1 refused or failed, 2 usage. */
struct ctl_verb {
	const char *name;
	int (*fn)(struct ctl *c, int argc, char **argv);
	const char *usage;   /* lines shown by --help and `scopeholdctl NAME --help` */
	const char *summary; /* one line for the main help */
};

/* Print "scopeholdctl: MESSAGE" on stderr; return 1. */
int ctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "scopeholdctl: VERB: MESSAGE (see scopeholdctl VERB --help)"; return 2. */
int ctl_usage(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Set by main when --json is given: ctl_fail and ctl_usage then print
 * {"error": "scopeholdctl: ..."} on stderr instead of the bare line. */
extern int ctl_json_errors;
/* With --json, what a mutating verb prints on success: one line
 * {"ok":true,"action":ACTION,"target":TARGET[,FIELDS]} where fmt (may be
 * NULL) formats FIELDS, already JSON ("\"changed\":true"). */
void ctl_json_ok(const char *action, const char *target, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Print e's message; return 1. */
int ctl_verr(const struct vault_err *e);

/* The database, opened on first use (migrating). NULL after printing why. */
struct vault_db *ctl_db(struct ctl *c);
/* The audit store, opened (created, migrated) on first use. */
struct vault_db *ctl_audit_db(struct ctl *c);
/* The data key, loaded on first use. NULL after printing why. */
struct vault_key *ctl_key(struct ctl *c);

/* After a change that removed values: vault_db_scrub, warning (one line)
 * when it could not finish. */
void ctl_scrub(struct ctl *c);

/* Fill an admin audit row: event, result "ok", path, uid = getuid(),
 * sudo_uid from $SUDO_UID. */
void ctl_admin_row(struct audit_row *r, const char *event, const char *path);

/* Write s as a JSON string (with quotes) to f; NULL writes null. A byte
 * that is not part of valid UTF-8 becomes U+FFFD (the document stays valid
 * under a strict parser); ctl_json_hex then adds the exact bytes. */
void ctl_json_str(FILE *f, const char *s);
/* 1 when s (not NULL) is valid UTF-8. */
int ctl_utf8_valid(const char *s);
/* When s is not valid UTF-8: ,"KEY_hex":"<the bytes in hex>". */
void ctl_json_hex(FILE *f, const char *key, const char *s);

/* Parse a time: seconds since the epoch, RFC 3339 / "YYYY-MM-DD[ HH:MM:SS]"
 * (UTC), or a relative "-1h", "-30m", "-7d". Returns ns or -1. */
int64_t ctl_parse_time(const char *s);
/* Parse a grant's --ttl: "90s", "15m", "8h", "7d" or a bare number of
 * seconds, at most 100 years. Returns ns or -1. */
int64_t ctl_parse_duration(const char *s);

/* Format ns as "YYYY-MM-DDTHH:MM:SS.mmmZ" into buf (32 bytes). */
void ctl_format_time(int64_t ns, char *buf, size_t len);

/* An admin change: ctl_begin opens the transaction; ctl_end, when rc == 0,
 * commits the audit row (event, path) first and then the change (a change
 * that fails to commit after its row is recorded again as "failed"); else
 * it rolls back and prints e. Returns the exit status. */
int ctl_begin(struct ctl *c);
int ctl_end(struct ctl *c, int rc, const struct vault_err *e, const char *event, const char *path);
/* ctl_end with a reason in the audit row (what changed: "uid 1 -> 2"). */
int ctl_end_why(struct ctl *c, int rc, const struct vault_err *e, const char *event, const char *path,
		const char *reason);

/* Options of a verb: ctl_opt(argc, argv, &i, "--project", &val) is 1 when
 * argv[i] is "--project VALUE" or "--project=VALUE" (i advanced), 0 when it is
 * not that option, -1 (usage printed) when the value is missing or the
 * option was already given (*val points into argv): single-valued options
 * may appear once. A repeatable option passes a fresh NULL each time. */
int ctl_opt(const char *verb, int argc, char **argv, int *i, const char *name, const char **val);
/* 1 when argv has -h or --help before any "--". */
int ctl_wants_help(int argc, char **argv);
/* Print usage to stdout; return 0. */
int ctl_help(const char *text);

/* Verb groups, one file each. */
int ctl_audit(struct ctl *c, int argc, char **argv);
int ctl_init(struct ctl *c, int argc, char **argv);
int ctl_provider(struct ctl *c, int argc, char **argv);
int ctl_secret(struct ctl *c, int argc, char **argv);
int ctl_rekey(struct ctl *c, int argc, char **argv);
int ctl_project(struct ctl *c, int argc, char **argv);
int ctl_agent(struct ctl *c, int argc, char **argv);
int ctl_grant(struct ctl *c, int argc, char **argv);
int ctl_grants(struct ctl *c, int argc, char **argv);
int ctl_explain(struct ctl *c, int argc, char **argv);
int ctl_whoami(struct ctl *c, int argc, char **argv);
int ctl_exec(struct ctl *c, int argc, char **argv);
int ctl_run(struct ctl *c, int argc, char **argv);
/* cmd_version.c: secret rm and secret rollback (argv[0] "rm" / "rollback"). */
int ctl_secret_rm(struct ctl *c, int argc, char **argv);
int ctl_secret_rollback(struct ctl *c, int argc, char **argv);
/* cmd_backup.c: backup DIR, restore DIR [--yes] (argv[0] says which). */
int ctl_backup(struct ctl *c, int argc, char **argv);
int ctl_status(struct ctl *c, int argc, char **argv);

#endif
