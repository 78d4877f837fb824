/* cmd_version.c - scopeholdctl secret rm and secret rollback: the verbs that
 * destroy a secret's history or move its current version, each one
 * transaction with its audit row. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "admin/ctl.h"

/* Count rows of provider/key's secret: versions, grants, assignments. */
static int secret_counts(struct ctl *c, int64_t sid, long long n[3], struct vault_err *e)
{
	sqlite3_stmt *st = vault_db_stmt(c->db, "SELECT (SELECT count(*) FROM secret_versions WHERE secret_id = ?1),"
					       " (SELECT count(*) FROM grants WHERE secret_id = ?1),"
					       " (SELECT count(*) FROM assignments WHERE secret_id = ?1)", e);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, sid);
	int rc = sqlite3_step(st);
	for (int i = 0; i < 3; i++)
		n[i] = rc == SQLITE_ROW ? sqlite3_column_int64(st, i) : 0;
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : vault_fail_sql(e, vault_db_handle(c->db), rc, "counting a secret's versions");
}

/* Split pk and open the change's transaction: 0, or the exit status. */
static int begin_pk(struct ctl *c, const char *pk, char *provider, char *key)
{
	struct vault_err e = { 0 };
	if (vault_path_split(pk, provider, key, &e) < 0)
		return ctl_verr(&e);
	return ctl_begin(c);
}

int ctl_secret_rm(struct ctl *c, int argc, char **argv)
{
	const char *pk = NULL;
	int yes = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--yes"))
			yes = 1;
		else if (argv[i][0] == '-')
			return ctl_usage("secret", "rm: unknown option '%s'", argv[i]);
		else if (pk)
			return ctl_usage("secret", "rm takes one P/K");
		else
			pk = argv[i];
	}
	if (!pk)
		return ctl_usage("secret", "rm takes one P/K");
	char provider[VAULT_NAME_MAX + 1], key[VAULT_NAME_MAX + 1];
	struct vault_err e = { 0 };
	if (begin_pk(c, pk, provider, key))
		return 1;
	struct vault_secret s;
	long long n[3] = { 0, 0, 0 };
	int found = vault_secret_find(c->db, provider, key, &s, &e);
	if (found == 0)
		vault_fail(&e, VAULT_ENOENT, "secret '%s' does not exist", pk);
	if (found <= 0 || secret_counts(c, s.id, n, &e) < 0)
		return ctl_end(c, -1, &e, NULL, NULL);
	char what[160];
	snprintf(what, sizeof what, "%lld version%s, %lld grant%s, %lld assignment%s", n[0], n[0] == 1 ? "" : "s",
		 n[1], n[1] == 1 ? "" : "s", n[2], n[2] == 1 ? "" : "s");
	if (!yes && (n[0] > 1 || n[1] || n[2])) {
		vault_db_rollback(c->db);
		return ctl_fail("secret '%s' has %s; rm destroys them all: run again with --yes", pk, what);
	}
	int rc = ctl_end_why(c, vault_secret_rm(c->db, provider, key, &e), &e, "secret.rm", pk, what);
	if (rc)
		return rc;
	ctl_scrub(c); /* the removed ciphertexts leave the WAL too */
	if (c->json)
		ctl_json_ok("secret.rm", pk, "\"versions\":%lld,\"grants\":%lld,\"assignments\":%lld", n[0], n[1], n[2]);
	else
		printf("removed %s: destroyed %s\n", pk, what);
	return 0;
}

int ctl_secret_rollback(struct ctl *c, int argc, char **argv)
{
	if (argc != 3)
		return ctl_usage("secret", "rollback takes P/K VERSION");
	const char *pk = argv[1];
	char *end;
	errno = 0;
	long long v = strtoll(argv[2], &end, 10);
	if (!*argv[2] || *end || errno || v <= 0)
		return ctl_usage("secret", "rollback: VERSION '%s' is not a version number", argv[2]);
	char provider[VAULT_NAME_MAX + 1], key[VAULT_NAME_MAX + 1];
	struct vault_err e = { 0 };
	if (begin_pk(c, pk, provider, key))
		return 1;
	int64_t was = 0;
	int rc = vault_secret_rollback(c->db, provider, key, v, &was, &e);
	if (rc == 1) {
		vault_db_rollback(c->db);
		if (c->json)
			ctl_json_ok("secret.rollback", pk, "\"changed\":false,\"version\":%lld", v);
		else
			printf("nothing to do: %s\n", e.msg);
		return 0;
	}
	char why[64];
	snprintf(why, sizeof why, "version %lld -> %lld", (long long)was, v);
	rc = ctl_end_why(c, rc, &e, "secret.rollback", pk, why);
	if (rc)
		return rc;
	if (c->json)
		ctl_json_ok("secret.rollback", pk, "\"changed\":true,\"from\":%lld,\"version\":%lld", (long long)was, v);
	else
		printf("%s: version %lld is current again (was %lld); the next open reads it\n", pk, v, (long long)was);
	return 0;
}
