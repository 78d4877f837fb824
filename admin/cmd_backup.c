/* cmd_backup.c - scopeholdctl backup DIR and restore DIR: consistent copies
 * of both stores (the vault and the audit store) with SQLite's online backup
 * API, which reads one snapshot while scopeholdfs keeps serving. The master
 * key is never copied: a backup needs the key file that was current when it
 * was taken. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin/ctl.h"

#define BACKUP_DB "scopehold.db"
#define BACKUP_AUDIT "scopehold-audit.db"
#define BACKUP_TRIES 600 /* 50 ms apart: 30 s of a store locked by writers */

static const char backup_usage[] =
	"usage: scopeholdctl backup DIR\n"
	"       scopeholdctl restore DIR [--yes]\n\n"
	"backup writes DIR/" BACKUP_DB " and DIR/" BACKUP_AUDIT " (mode 0600; DIR is\n"
	"created 0700): a consistent copy of each store, taken while scopeholdfs serves.\n"
	"It refuses to overwrite an earlier backup. The audit trail records it. The\n"
	"master key is not copied: keep the key file that was current at the backup\n"
	"(after a rekey, the retired one) to open it.\n"
	"restore copies them back over the configured stores, with scopeholdfs\n"
	"stopped; it refuses to overwrite existing stores without --yes. The restored\n"
	"audit trail records the restore.\n";

/* Copy src (an open connection) into dst_path with the online backup API.
 * create: dst_path must not exist (made 0600). 0, or -1 after printing. */
static int copy_db(sqlite3 *src, const char *dst_path, int create, const char *what)
{
	if (create) {
		int fd = open(dst_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0)
			return ctl_fail("cannot create %s '%s': %s", what, dst_path,
					errno == EEXIST ? "it already exists (an earlier backup?)" : strerror(errno)), -1;
		close(fd); /* nothing of SQLite's is open on it yet */
	}
	sqlite3 *dst = NULL;
	int rc = sqlite3_open_v2(dst_path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW |
				 SQLITE_OPEN_NOMUTEX, NULL);
	sqlite3_backup *b = rc == SQLITE_OK ? sqlite3_backup_init(dst, "main", src, "main") : NULL;
	if (b) {
		sqlite3_busy_timeout(dst, 5000);
		for (int tries = 0; tries < BACKUP_TRIES; tries++) {
			rc = sqlite3_backup_step(b, -1);
			if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
				break;
			nanosleep(&(struct timespec){ 0, 50 * 1000000L }, NULL);
		}
		int frc = sqlite3_backup_finish(b);
		if (rc == SQLITE_DONE)
			rc = frc;
	} else if (rc == SQLITE_OK) {
		rc = sqlite3_errcode(dst);
	}
	int ok = rc == SQLITE_OK || rc == SQLITE_DONE;
	if (!ok)
		ctl_fail("copying the %s to '%s' failed: %s", what, dst_path, dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
	if (sqlite3_close(dst) != SQLITE_OK && ok) {
		ok = 0;
		ctl_fail("closing '%s' failed", dst_path);
	}
	if (!ok && create)
		unlink(dst_path);
	return ok ? 0 : -1;
}

static int join(char *out, const char *dir, const char *name)
{
	if (snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
		return ctl_fail("path '%s/%s' is too long", dir, name), -1;
	return 0;
}

static int do_backup(struct ctl *c, const char *dir)
{
	char dbp[PATH_MAX], adp[PATH_MAX];
	if (join(dbp, dir, BACKUP_DB) < 0 || join(adp, dir, BACKUP_AUDIT) < 0)
		return 1;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return ctl_fail("cannot create directory '%s': %s", dir, strerror(errno));
	struct stat st;
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return ctl_fail("'%s' is not a directory", dir);
	if (!access(dbp, F_OK) || !access(adp, F_OK))
		return ctl_fail("'%s' already holds a backup; refusing to overwrite it", dir);
	if (!ctl_db(c) || !ctl_audit_db(c))
		return 1;
	/* The row first, so the copy of the trail holds it too. */
	struct vault_err e = { 0 };
	struct audit_row r;
	ctl_admin_row(&r, "backup", dir);
	if (audit_append(c->adb, &r, 1, &e) < 0)
		return ctl_verr(&e);
	if (copy_db(vault_db_handle(c->db), dbp, 1, "vault") < 0 ||
	    copy_db(vault_db_handle(c->adb), adp, 1, "audit store") < 0) {
		unlink(dbp);
		r.result = "failed";
		r.reason = "the copy did not complete";
		audit_append(c->adb, &r, 1, &e);
		return 1;
	}
	if (c->json)
		ctl_json_ok("backup", dir, "\"vault\":\"%s\",\"audit\":\"%s\"", dbp, adp);
	else
		printf("backed up %s and %s to %s; opening it needs the master key in use now (%s)\n", c->cfg.db,
		       vault_db_path(c->adb), dir, c->cfg.key_file[0] ? c->cfg.key_file : VAULT_DEFAULT_KEY);
	return 0;
}

/* 1 when path exists and is not empty (a store restore would overwrite). */
static int has_store(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 && (!S_ISREG(st.st_mode) || st.st_size > 0);
}

static int do_restore(struct ctl *c, const char *dir, int yes)
{
	char dbp[PATH_MAX], adp[PATH_MAX], live_audit[PATH_MAX];
	if (join(dbp, dir, BACKUP_DB) < 0 || join(adp, dir, BACKUP_AUDIT) < 0)
		return 1;
	vault_config_audit_db(&c->cfg, live_audit);
	char r1[PATH_MAX], r2[PATH_MAX];
	if ((realpath(dbp, r1) && realpath(c->cfg.db, r2) && !strcmp(r1, r2)) ||
	    (realpath(adp, r1) && realpath(live_audit, r2) && !strcmp(r1, r2)))
		return ctl_fail("'%s' holds the live stores themselves, not a backup", dir);
	struct vault_err e = { 0 };
	/* Both must be ScopeHold stores before anything is overwritten. */
	struct vault_db *bdb = acl_db_open(dbp, VAULT_DB_READONLY | VAULT_DB_NOMIGRATE, &e);
	if (!bdb)
		return ctl_fail("backup vault: %s", e.msg);
	struct vault_db *bad = audit_db_open(adp, VAULT_DB_READONLY | VAULT_DB_NOMIGRATE, &e);
	if (!bad) {
		vault_db_close(bdb);
		return ctl_fail("backup audit store: %s", e.msg);
	}
	int rc = 1;
	int create_db = !has_store(c->cfg.db), create_audit = !has_store(live_audit);
	if (!yes && (!create_db || !create_audit)) {
		ctl_fail("'%s' exists; restore overwrites it and its audit store: stop scopeholdfs and run again with --yes",
			 !create_db ? c->cfg.db : live_audit);
		goto out;
	}
	/* an empty leftover file is replaced like a missing one */
	if (create_db)
		unlink(c->cfg.db);
	if (create_audit)
		unlink(live_audit);
	if (copy_db(vault_db_handle(bdb), c->cfg.db, create_db, "vault") < 0 ||
	    copy_db(vault_db_handle(bad), live_audit, create_audit, "audit store") < 0)
		goto out;
	struct audit_row r;
	ctl_admin_row(&r, "restore", dir);
	if (!ctl_audit_db(c))
		goto out;
	if (audit_append(c->adb, &r, 1, &e) < 0) {
		ctl_verr(&e);
		goto out;
	}
	if (c->json)
		ctl_json_ok("restore", dir, "\"vault\":\"%s\",\"audit\":\"%s\"", c->cfg.db, live_audit);
	else
		printf("restored %s and %s from %s; it opens with the master key in use when the backup was taken\n",
		       c->cfg.db, live_audit, dir);
	rc = 0;
out:
	vault_db_close(bdb);
	vault_db_close(bad);
	return rc;
}

int ctl_backup(struct ctl *c, int argc, char **argv)
{
	if (ctl_wants_help(argc, argv))
		return ctl_help(backup_usage);
	int restore = !strcmp(argv[0], "restore"), yes = 0;
	const char *dir = NULL;
	for (int i = 1; i < argc; i++) {
		if (restore && !strcmp(argv[i], "--yes"))
			yes = 1;
		else if (argv[i][0] == '-')
			return ctl_usage(argv[0], "unknown option '%s'", argv[i]);
		else if (dir)
			return ctl_usage(argv[0], "takes one DIR");
		else
			dir = argv[i];
	}
	if (!dir || !*dir)
		return ctl_usage(argv[0], "needs DIR");
	return restore ? do_restore(c, dir, yes) : do_backup(c, dir);
}
