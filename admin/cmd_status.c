/* cmd_status.c - scopeholdctl status: what an admin looks at first when
 * something seems wrong: the stores in use and their schema versions, the
 * counts, the audit trail's last row and head hash, and whether a
 * scopeholdfs serves each mount (the configured one and every ScopeHold
 * mount in /proc/self/mountinfo). Needs no master key. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "admin/ctl.h"
#include "vault/mountinfo.h"

static const char status_usage[] =
	"usage: scopeholdctl status [--json]\n\n"
	"Show the vault and audit files in use, their schema versions, the counts of\n"
	"providers, secrets, agents and grants, the last audit row's time, the chain's\n"
	"head hash (as `audit verify` prints it), and for the configured mount point and\n"
	"every ScopeHold mount whether a scopeholdfs serves it (served), its daemon is\n"
	"gone (dead: start scopeholdfs again, it unmounts the dead mount), or nothing is\n"
	"mounted there. Exit 1 when a store cannot be opened or the chain is broken.\n";

#define MAX_MOUNTS 32

/* One integer from sql (no parameters); -1 on error. */
static int64_t one_int(struct vault_db *db, const char *sql)
{
	struct vault_err e = { 0 };
	sqlite3_stmt *st = vault_db_stmt(db, sql, &e);
	int64_t v = -1;
	if (st && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	if (st)
		sqlite3_reset(st);
	return v;
}

struct mount_list {
	char (*out)[PATH_MAX];
	int n, max;
};

static int mount_list_fn(void *arg, const char *mp, const char *fstype)
{
	struct mount_list *l = arg;
	if (strcmp(fstype, VAULT_MOUNT_FSTYPE))
		return 0;
	for (int i = 0; i < l->n; i++)
		if (!strcmp(l->out[i], mp))
			return 0;
	if (l->n < l->max)
		snprintf(l->out[l->n++], PATH_MAX, "%s", mp);
	return 0;
}

/* The ScopeHold mount points of this mount namespace. */
static int scopehold_mounts(char (*out)[PATH_MAX], int max)
{
	struct mount_list l = { out, 0, max };
	vault_mountinfo_each(mount_list_fn, &l);
	return l.n;
}

/* served, dead or "not mounted" for path. */
static const char *mount_state(const char *path, char (*mounts)[PATH_MAX], int n)
{
	int mounted = 0;
	for (int i = 0; i < n; i++)
		mounted |= !strcmp(mounts[i], path);
	struct stat st;
	if (stat(path, &st) < 0 && (errno == ENOTCONN || errno == ECONNABORTED))
		return "dead";
	return mounted ? "served" : "not mounted";
}

int ctl_status(struct ctl *c, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return ctl_help(status_usage);
		return ctl_usage("status", "unexpected argument '%s'", argv[i]);
	}
	if (!ctl_db(c) || !ctl_audit_db(c))
		return 1;
	char apath[PATH_MAX];
	vault_config_audit_db(&c->cfg, apath);
	static const char *const what[] = { "providers", "secrets", "agents", "grants" };
	int64_t count[4] = {
		one_int(c->db, "SELECT count(*) FROM providers"),
		one_int(c->db, "SELECT count(*) FROM secrets"),
		one_int(c->db, "SELECT count(*) FROM agents"),
		one_int(c->db, "SELECT count(*) FROM grants"),
	};
	int64_t sv_vault = one_int(c->db, "SELECT version FROM schema_version WHERE module = 'vault'");
	int64_t sv_acl = one_int(c->db, "SELECT version FROM schema_version WHERE module = 'acl'");
	int64_t sv_audit = one_int(c->adb, "SELECT version FROM schema_version WHERE module = 'audit'");
	int64_t last_ns = one_int(c->adb, "SELECT time_ns FROM audit ORDER BY id DESC LIMIT 1");
	struct audit_verify_result r;
	struct vault_err e = { 0 };
	if (audit_verify(c->adb, &r, &e) < 0)
		return ctl_verr(&e);
	int broken = r.broken || r.rows == 0;
	char hx[2 * AUDIT_HASH_BYTES + 1] = "", when[32] = "";
	for (int i = 0; i < AUDIT_HASH_BYTES && r.rows; i++)
		sprintf(hx + 2 * i, "%02x", r.last_hash[i]);
	if (last_ns >= 0)
		ctl_format_time(last_ns, when, sizeof when);

	char mounts[MAX_MOUNTS][PATH_MAX];
	int nm = scopehold_mounts(mounts, MAX_MOUNTS), conf_listed = 0;
	for (int i = 0; i < nm; i++)
		conf_listed |= !strcmp(mounts[i], c->cfg.mountpoint);

	if (c->json) {
		printf("{\"vault\":{\"path\":");
		ctl_json_str(stdout, c->cfg.db);
		printf(",\"schema\":{\"vault\":%" PRId64 ",\"acl\":%" PRId64 "}},\"audit\":{\"path\":", sv_vault, sv_acl);
		ctl_json_str(stdout, apath);
		printf(",\"schema\":%" PRId64 ",\"rows\":%" PRId64 ",\"intact\":%s,\"last_time\":", sv_audit, r.rows,
		       broken ? "false" : "true");
		ctl_json_str(stdout, last_ns >= 0 ? when : NULL);
		printf(",\"head_id\":%" PRId64 ",\"head_hash\":", r.last_id);
		ctl_json_str(stdout, r.rows ? hx : NULL);
		printf("},\"counts\":{");
		for (int i = 0; i < 4; i++)
			printf("%s\"%s\":%" PRId64, i ? "," : "", what[i], count[i]);
		printf("},\"mounts\":[");
		int first = 1;
		if (!conf_listed) {
			printf("{\"path\":");
			ctl_json_str(stdout, c->cfg.mountpoint);
			printf(",\"configured\":true,\"state\":\"%s\"}", mount_state(c->cfg.mountpoint, mounts, nm));
			first = 0;
		}
		for (int i = 0; i < nm; i++) {
			printf("%s{\"path\":", first ? "" : ",");
			ctl_json_str(stdout, mounts[i]);
			printf(",\"configured\":%s,\"state\":\"%s\"}", strcmp(mounts[i], c->cfg.mountpoint) ? "false" : "true",
			       mount_state(mounts[i], mounts, nm));
			first = 0;
		}
		printf("]}\n");
	} else {
		printf("vault:       %s (schema vault %" PRId64 ", acl %" PRId64 ")\n", c->cfg.db, sv_vault, sv_acl);
		printf("audit store: %s (schema %" PRId64 ")\n", apath, sv_audit);
		printf("counts:      %" PRId64 " providers, %" PRId64 " secrets, %" PRId64 " agents, %" PRId64 " grants\n",
		       count[0], count[1], count[2], count[3]);
		printf("audit:       %" PRId64 " rows, %s; last row %s\n", r.rows, broken ? "BROKEN (run: scopeholdctl audit verify)" : "chain intact",
		       last_ns >= 0 ? when : "none");
		if (r.rows)
			printf("head:        row %" PRId64 " hash %s\n", r.last_id, hx);
		if (!conf_listed)
			printf("mount:       %s (configured): %s\n", c->cfg.mountpoint, mount_state(c->cfg.mountpoint, mounts, nm));
		for (int i = 0; i < nm; i++)
			printf("mount:       %s%s: %s\n", mounts[i], strcmp(mounts[i], c->cfg.mountpoint) ? "" : " (configured)",
			       mount_state(mounts[i], mounts, nm));
	}
	return broken ? 1 : 0;
}
