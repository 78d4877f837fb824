/* acl.c - projects, agents, assignments and grants, and the access rule
 *   agent enabled ∧ grant(agent, secret) unexpired ∧ assignment(secret, agent.project)
 * evaluated in SQL on every call (the expiry against the clock of the call,
 * so an expired grant stops at the next lookup with nothing running). Every change bumps the generation counter
 * that caches of the daemon key on. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "acl/acl.h"
#include "acl/audit.h"

static const char *const acl_steps[] = {
	/* 1 */
	"CREATE TABLE projects (id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  name TEXT NOT NULL UNIQUE, created_ns INTEGER NOT NULL) STRICT;"
	"CREATE TABLE agents (id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  name TEXT NOT NULL UNIQUE, project_id INTEGER NOT NULL REFERENCES projects(id),"
	"  uid INTEGER NOT NULL, cgroup TEXT, exe TEXT, exe_dev INTEGER, exe_ino INTEGER,"
	"  lsm TEXT, enabled INTEGER NOT NULL DEFAULT 1, created_ns INTEGER NOT NULL) STRICT;"
	"CREATE INDEX agents_uid ON agents(uid);"
	"CREATE TABLE assignments (secret_id INTEGER NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,"
	"  project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
	"  created_ns INTEGER NOT NULL, PRIMARY KEY (project_id, secret_id)) STRICT, WITHOUT ROWID;"
	"CREATE INDEX assignments_secret ON assignments(secret_id);"
	"CREATE TABLE grants (agent_id INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,"
	"  secret_id INTEGER NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,"
	"  created_ns INTEGER NOT NULL, PRIMARY KEY (agent_id, secret_id)) STRICT, WITHOUT ROWID;"
	"CREATE INDEX grants_secret ON grants(secret_id);",
	/* 2: an exe binding is the file unchanged, not a bare (dev, ino) that
	 * the filesystem hands to the next file once this one is replaced */
	"ALTER TABLE agents ADD COLUMN exe_uid INTEGER;"
	"ALTER TABLE agents ADD COLUMN exe_mode INTEGER;"
	"ALTER TABLE agents ADD COLUMN exe_size INTEGER;"
	"ALTER TABLE agents ADD COLUMN exe_ctime_ns INTEGER;"
	"ALTER TABLE agents ADD COLUMN exe_btime_ns INTEGER;"
	"ALTER TABLE agents ADD COLUMN exe_hash TEXT;"
	"ALTER TABLE agents ADD COLUMN require_secure INTEGER NOT NULL DEFAULT 0;"
	/* bound to its launch cgroup (scopeholdctl run --agent) */
	"ALTER TABLE agents ADD COLUMN launched INTEGER NOT NULL DEFAULT 0;",
	/* 3: expiring grants; NULL never expires */
	"ALTER TABLE grants ADD COLUMN expires_ns INTEGER;",
};

struct vault_db *acl_db_open(const char *path, unsigned flags, struct vault_err *e)
{
	struct vault_db *db = vault_db_open(path, flags, e);
	if (!db || (flags & VAULT_DB_NOMIGRATE))
		return db;
	if (vault_migrate(db, "acl", acl_steps, (int)(sizeof acl_steps / sizeof *acl_steps), e) < 0) {
		vault_db_close(db);
		return NULL;
	}
	return db;
}

/* Run st (already bound) in its own transaction, bumping the generation. */
static int change(struct vault_db *db, sqlite3_stmt *st, const char *what, struct vault_err *e)
{
	if (vault_db_begin(db, e) < 0)
		return -1;
	if (vault_db_step_done(db, st, what, e) < 0 || vault_generation_bump(db, e) < 0 ||
	    vault_db_commit(db, e) < 0) {
		vault_db_rollback(db);
		return -1;
	}
	return 0;
}

/* Step st (bound) for one row: 1 and *out = its first column, 0 no row, -1
 * error naming what. Resets st. */
static int step_one(struct vault_db *db, sqlite3_stmt *st, int64_t *out, const char *what, struct vault_err *e)
{
	int rc = sqlite3_step(st), found = 0;
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		found = 1;
	} else if (rc != SQLITE_DONE) {
		found = vault_fail_sql(e, vault_db_handle(db), rc, what);
	}
	sqlite3_reset(st);
	return found;
}

/* The id of name in table ("projects" or "agents"): id, 0 missing, -1 error. */
static int64_t id_of(struct vault_db *db, const char *sql, const char *name, struct vault_err *e)
{
	sqlite3_stmt *st = vault_db_stmt(db, sql, e);
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	int64_t id = 0;
	if (rc == SQLITE_ROW)
		id = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		id = vault_fail_sql(e, vault_db_handle(db), rc, "looking up a name");
	sqlite3_reset(st);
	return id;
}

int64_t acl_project_id(struct vault_db *db, const char *name, struct vault_err *e)
{
	return id_of(db, "SELECT id FROM projects WHERE name = ?", name, e);
}

int acl_project_add(struct vault_db *db, const char *name, struct vault_err *e)
{
	if (vault_name_check("project", name, e) < 0)
		return -1;
	int64_t id = acl_project_id(db, name, e);
	if (id > 0)
		return vault_fail(e, VAULT_EEXIST, "project '%s' already exists", name);
	if (id < 0)
		return -1;
	sqlite3_stmt *st = vault_db_stmt(db, "INSERT INTO projects(name, created_ns) VALUES (?, ?)", e);
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, vault_now_ns());
	return change(db, st, "adding a project", e);
}

int acl_project_rm(struct vault_db *db, const char *name, struct vault_err *e)
{
	if (vault_name_check("project", name, e) < 0)
		return -1;
	int64_t id = acl_project_id(db, name, e);
	if (id == 0)
		return vault_fail(e, VAULT_ENOENT, "project '%s' does not exist", name);
	if (id < 0)
		return -1;
	sqlite3_stmt *st = vault_db_stmt(db, "SELECT count(*) FROM agents WHERE project_id = ?", e);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	int64_t n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_reset(st);
	if (n < 0)
		return vault_fail_sql(e, vault_db_handle(db), rc, "counting a project's agents");
	if (n != 0)
		return vault_fail(e, VAULT_EEXIST, "project '%s' still has %lld agent(s); remove them first",
				  name, (long long)n);
	st = vault_db_stmt(db, "DELETE FROM projects WHERE id = ?", e);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	return change(db, st, "removing a project", e);
}

/* Check and record the executable of an exe binding: its identity into *id,
 * its BLAKE2b-256 in hex. */
static int exe_bind(const char *path, struct acl_exe_id *id, char hex[65], struct vault_err *e)
{
	unsigned char h[32];
	char why[512];

	if (acl_exe_record(path, id, h, why, sizeof why) < 0) {
		struct stat st;
		int missing = path[0] == '/' && stat(path, &st) < 0 && errno == ENOENT;
		return vault_fail(e, missing ? VAULT_ENOENT : VAULT_EINVAL, "%s", why);
	}
	sodium_bin2hex(hex, 65, h, sizeof h);
	return 0;
}

/* Bind an exe binding's 9 columns (exe, exe_dev, exe_ino, exe_uid, exe_mode,
 * exe_size, exe_ctime_ns, exe_btime_ns, exe_hash) from parameter first on. */
static void bind_exe(sqlite3_stmt *st, int first, const char *path, const struct acl_exe_id *x,
		     const char *hex)
{
	sqlite3_bind_text(st, first, path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, first + 1, (int64_t)x->dev);
	sqlite3_bind_int64(st, first + 2, (int64_t)x->ino);
	sqlite3_bind_int64(st, first + 3, (int64_t)x->uid);
	sqlite3_bind_int64(st, first + 4, (int64_t)x->mode);
	sqlite3_bind_int64(st, first + 5, (int64_t)x->size);
	sqlite3_bind_int64(st, first + 6, x->ctime_ns);
	sqlite3_bind_int64(st, first + 7, x->btime_ns);
	sqlite3_bind_text(st, first + 8, hex, -1, SQLITE_STATIC);
}

/* The checks of a binding's names, uid, cgroup and lsm (agent add and set). */
static int binding_check(const struct acl_agent *a, struct vault_err *e)
{
	if (vault_name_check("agent", a->name, e) < 0 || vault_name_check("project", a->project, e) < 0)
		return -1;
	if (a->uid == (uid_t)-1)
		return vault_fail(e, VAULT_EINVAL, "uid %u is not a valid uid", (unsigned)a->uid);
	if ((a->labels & ACL_L_CGROUP) && a->cgroup[0] != '/')
		return vault_fail(e, VAULT_EINVAL, "cgroup '%.80s' must be an absolute cgroup v2 path or glob, like /system.slice/NAME.service",
				  a->cgroup);
	if ((a->labels & ACL_L_LSM) && !a->lsm[0])
		return vault_fail(e, VAULT_EINVAL, "LSM label is empty");
	if (a->launched && !(a->labels & ACL_L_CGROUP))
		return vault_fail(e, VAULT_EINVAL, "a launched agent is bound to its launch cgroup");
	return 0;
}

int acl_agent_add(struct vault_db *db, const struct acl_agent *a, struct vault_err *e)
{
	if (binding_check(a, e) < 0)
		return -1;
	struct acl_exe_id xid;
	char hex[65] = "";
	if ((a->labels & ACL_L_EXE) && exe_bind(a->exe, &xid, hex, e) < 0)
		return -1;
	int64_t pid = acl_project_id(db, a->project, e);
	if (pid == 0)
		return vault_fail(e, VAULT_ENOENT, "project '%s' does not exist; run: scopeholdctl project add %s",
				  a->project, a->project);
	if (pid < 0)
		return -1;
	int64_t aid = id_of(db, "SELECT id FROM agents WHERE name = ?", a->name, e);
	if (aid > 0)
		return vault_fail(e, VAULT_EEXIST, "agent '%s' already exists", a->name);
	if (aid < 0)
		return -1;
	sqlite3_stmt *st = vault_db_stmt(db, "INSERT INTO agents(name, project_id, uid, cgroup, lsm, enabled,"
					     " created_ns, require_secure, launched, exe, exe_dev, exe_ino, exe_uid,"
					     " exe_mode, exe_size, exe_ctime_ns, exe_btime_ns, exe_hash)"
					     " VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", e);
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, a->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, pid);
	sqlite3_bind_int64(st, 3, a->uid);
	if (a->labels & ACL_L_CGROUP)
		sqlite3_bind_text(st, 4, a->cgroup, -1, SQLITE_STATIC);
	if (a->labels & ACL_L_LSM)
		sqlite3_bind_text(st, 5, a->lsm, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, vault_now_ns());
	sqlite3_bind_int(st, 7, a->require_secure ? 1 : 0);
	sqlite3_bind_int(st, 8, a->launched ? 1 : 0);
	if (a->labels & ACL_L_EXE)
		bind_exe(st, 9, a->exe, &xid, hex);
	return change(db, st, "adding an agent", e);
}

#define AGENT_COLS "a.id, a.project_id, a.name, p.name, a.enabled, a.uid, a.cgroup, a.exe," \
	" a.exe_dev, a.exe_ino, a.lsm, a.exe_uid, a.exe_mode, a.exe_size, a.exe_ctime_ns," \
	" a.exe_btime_ns, a.exe_hash, a.require_secure, a.launched" \
	" FROM agents a JOIN projects p ON p.id = a.project_id"

static void agent_row(sqlite3_stmt *st, struct acl_agent *a)
{
	memset(a, 0, sizeof *a);
	a->id = sqlite3_column_int64(st, 0);
	a->project_id = sqlite3_column_int64(st, 1);
	snprintf(a->name, sizeof a->name, "%s", (const char *)sqlite3_column_text(st, 2));
	snprintf(a->project, sizeof a->project, "%s", (const char *)sqlite3_column_text(st, 3));
	a->enabled = sqlite3_column_int(st, 4);
	a->uid = (uid_t)sqlite3_column_int64(st, 5);
	if (sqlite3_column_type(st, 6) != SQLITE_NULL) {
		a->labels |= ACL_L_CGROUP;
		snprintf(a->cgroup, sizeof a->cgroup, "%s", (const char *)sqlite3_column_text(st, 6));
	}
	if (sqlite3_column_type(st, 7) != SQLITE_NULL) {
		a->labels |= ACL_L_EXE;
		snprintf(a->exe, sizeof a->exe, "%s", (const char *)sqlite3_column_text(st, 7));
		a->exe_dev = (uint64_t)sqlite3_column_int64(st, 8);
		a->exe_ino = (uint64_t)sqlite3_column_int64(st, 9);
		a->exe_id.dev = a->exe_dev;
		a->exe_id.ino = a->exe_ino;
		if (sqlite3_column_type(st, 14) == SQLITE_NULL) {
			a->exe_id.ctime_ns = -1; /* bound before schema 2: re-bind */
		} else {
			a->exe_id.uid = (uint32_t)sqlite3_column_int64(st, 11);
			a->exe_id.mode = (uint32_t)sqlite3_column_int64(st, 12);
			a->exe_id.size = (uint64_t)sqlite3_column_int64(st, 13);
			a->exe_id.ctime_ns = sqlite3_column_int64(st, 14);
			a->exe_id.btime_ns = sqlite3_column_int64(st, 15);
		}
		if (sqlite3_column_type(st, 16) == SQLITE_TEXT)
			snprintf(a->exe_hash, sizeof a->exe_hash, "%s",
				 (const char *)sqlite3_column_text(st, 16));
	}
	a->require_secure = sqlite3_column_int(st, 17);
	a->launched = sqlite3_column_int(st, 18);
	if (sqlite3_column_type(st, 10) != SQLITE_NULL) {
		a->labels |= ACL_L_LSM;
		snprintf(a->lsm, sizeof a->lsm, "%s", (const char *)sqlite3_column_text(st, 10));
	}
}

static int agent_one(struct vault_db *db, sqlite3_stmt *st, struct acl_agent *out, struct vault_err *e)
{
	int rc = sqlite3_step(st), found = 0;
	if (rc == SQLITE_ROW) {
		agent_row(st, out);
		found = 1;
	} else if (rc != SQLITE_DONE) {
		found = vault_fail_sql(e, vault_db_handle(db), rc, "reading an agent");
	}
	sqlite3_reset(st);
	return found;
}

int acl_agent_get(struct vault_db *db, const char *name, struct acl_agent *out, struct vault_err *e)
{
	sqlite3_stmt *st = vault_db_stmt(db, "SELECT " AGENT_COLS " WHERE a.name = ?", e);
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	return agent_one(db, st, out, e);
}

int acl_agent_get_id(struct vault_db *db, int64_t id, struct acl_agent *out, struct vault_err *e)
{
	sqlite3_stmt *st = vault_db_stmt(db, "SELECT " AGENT_COLS " WHERE a.id = ?", e);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	return agent_one(db, st, out, e);
}

static int agent_loop(struct vault_db *db, sqlite3_stmt *st, int (*fn)(void *, const struct acl_agent *),
		      void *arg, struct vault_err *e)
{
	struct acl_agent a;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		agent_row(st, &a);
		if (fn(arg, &a))
			break;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return vault_fail_sql(e, vault_db_handle(db), rc, "listing agents");
	return 0;
}

int acl_agent_each(struct vault_db *db, int (*fn)(void *, const struct acl_agent *), void *arg,
		   struct vault_err *e)
{
	sqlite3_stmt *st = vault_db_stmt(db, "SELECT " AGENT_COLS " ORDER BY a.name", e);
	if (!st)
		return -1;
	return agent_loop(db, st, fn, arg, e);
}

int acl_agent_each_uid(struct vault_db *db, uid_t uid, int (*fn)(void *, const struct acl_agent *),
		       void *arg, struct vault_err *e)
{
	sqlite3_stmt *st = vault_db_stmt(db, "SELECT " AGENT_COLS " WHERE a.uid = ?", e);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, uid);
	return agent_loop(db, st, fn, arg, e);
}

static int64_t agent_id(struct vault_db *db, const char *name, struct vault_err *e)
{
	if (vault_name_check("agent", name, e) < 0)
		return -1;
	int64_t id = id_of(db, "SELECT id FROM agents WHERE name = ?", name, e);
	if (id == 0)
		return vault_fail(e, VAULT_ENOENT, "agent '%s' does not exist", name);
	return id;
}

int acl_agent_rm(struct vault_db *db, const char *name, struct vault_err *e)
{
	int64_t id = agent_id(db, name, e);
	if (id < 0)
		return -1;
	sqlite3_stmt *st = vault_db_stmt(db, "DELETE FROM agents WHERE id = ?", e);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	return change(db, st, "removing an agent", e);
}

int acl_agent_enable(struct vault_db *db, const char *name, int enabled, struct vault_err *e)
{
	int64_t id = agent_id(db, name, e);
	if (id < 0)
		return -1;
	sqlite3_stmt *st = vault_db_stmt(db, "UPDATE agents SET enabled = ? WHERE id = ?", e);
	if (!st)
		return -1;
	sqlite3_bind_int(st, 1, !!enabled);
	sqlite3_bind_int64(st, 2, id);
	return change(db, st, enabled ? "enabling an agent" : "disabling an agent", e);
}

int acl_agent_set(struct vault_db *db, const char *name, const struct acl_agent *a, unsigned what,
		  struct acl_agent *before, struct vault_err *e)
{
	struct acl_agent old, n;
	if (vault_name_check("agent", name, e) < 0)
		return -1;
	int found = acl_agent_get(db, name, &old, e);
	if (found == 0)
		return vault_fail(e, VAULT_ENOENT, "agent '%s' does not exist", name);
	if (found < 0)
		return -1;
	n = old;
	if (what & ACL_SET_PROJECT)
		snprintf(n.project, sizeof n.project, "%s", a->project);
	if (what & ACL_SET_UID)
		n.uid = a->uid;
	n.labels = (old.labels & ~what) | (a->labels & what & (ACL_L_CGROUP | ACL_L_EXE | ACL_L_LSM));
	if (what & ACL_L_CGROUP)
		snprintf(n.cgroup, sizeof n.cgroup, "%s", a->cgroup);
	if (what & ACL_L_LSM)
		snprintf(n.lsm, sizeof n.lsm, "%s", a->lsm);
	if (what & ACL_L_EXE)
		snprintf(n.exe, sizeof n.exe, "%s", a->exe);
	if (binding_check(&n, e) < 0)
		return -1;
	struct acl_exe_id xid;
	char hex[65] = "";
	if ((what & ACL_L_EXE) && (n.labels & ACL_L_EXE) && exe_bind(n.exe, &xid, hex, e) < 0)
		return -1;
	int64_t pid = acl_project_id(db, n.project, e);
	if (pid == 0)
		return vault_fail(e, VAULT_ENOENT, "project '%s' does not exist; run: scopeholdctl project add %s",
				  n.project, n.project);
	if (pid < 0 || vault_db_begin(db, e) < 0)
		return -1;
	sqlite3_stmt *st = vault_db_stmt(db, "UPDATE agents SET project_id = ?, uid = ?, cgroup = ?, lsm = ?"
					     " WHERE id = ?", e);
	if (!st)
		goto fail;
	sqlite3_bind_int64(st, 1, pid);
	sqlite3_bind_int64(st, 2, n.uid);
	if (n.labels & ACL_L_CGROUP)
		sqlite3_bind_text(st, 3, n.cgroup, -1, SQLITE_STATIC);
	if (n.labels & ACL_L_LSM)
		sqlite3_bind_text(st, 4, n.lsm, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, old.id);
	if (vault_db_step_done(db, st, "changing an agent", e) < 0)
		goto fail;
	if (what & ACL_L_EXE) { /* rebound (or unbound) only when asked */
		st = vault_db_stmt(db, "UPDATE agents SET exe = ?, exe_dev = ?, exe_ino = ?, exe_uid = ?,"
				       " exe_mode = ?, exe_size = ?, exe_ctime_ns = ?, exe_btime_ns = ?, exe_hash = ?"
				       " WHERE id = ?", e);
		if (!st)
			goto fail;
		if (n.labels & ACL_L_EXE)
			bind_exe(st, 1, n.exe, &xid, hex);
		sqlite3_bind_int64(st, 10, old.id);
		if (vault_db_step_done(db, st, "changing an agent's executable", e) < 0)
			goto fail;
	}
	if (vault_generation_bump(db, e) < 0 || vault_db_commit(db, e) < 0)
		goto fail;
	if (before)
		*before = old;
	return 0;
fail:
	vault_db_rollback(db);
	return -1;
}

/* Whether cgroup globs x and y can match one path, as far as can be told:
 * equal, one matching the other, or two globs whose literal beginnings
 * agree. */
static int cgroups_may_meet(const char *x, const char *y)
{
	if (!strcmp(x, y) || acl_cgroup_match(x, y) || acl_cgroup_match(y, x))
		return 1;
	size_t px = strcspn(x, "*?["), py = strcspn(y, "*?[");
	if (!x[px] || !y[py]) /* a plain path meets only a glob that matches it */
		return 0;
	return !strncmp(x, y, px < py ? px : py);
}

int acl_binding_overlap(const struct acl_agent *a, const struct acl_agent *b)
{
	if (a->uid != b->uid || __builtin_popcount(a->labels) != __builtin_popcount(b->labels))
		return 0;
	unsigned both = a->labels & b->labels;
	if ((both & ACL_L_EXE) && (a->exe_dev != b->exe_dev || a->exe_ino != b->exe_ino))
		return 0;
	if ((both & ACL_L_LSM) && strcmp(a->lsm, b->lsm))
		return 0;
	if ((both & ACL_L_CGROUP) && !cgroups_may_meet(a->cgroup, b->cgroup))
		return 0;
	return 1; /* labels of different kinds can all hold for one caller */
}

struct overlap_ctx {
	const struct acl_agent *a;
	struct acl_agent *other;
	int found;
};

static int overlap_one(void *arg, const struct acl_agent *b)
{
	struct overlap_ctx *o = arg;
	if (b->id == o->a->id || !acl_binding_overlap(o->a, b))
		return 0;
	*o->other = *b;
	o->found = 1;
	return 1;
}

int acl_agent_overlap(struct vault_db *db, const struct acl_agent *a, struct acl_agent *other,
		      struct vault_err *e)
{
	struct overlap_ctx o = { a, other, 0 };
	if (acl_agent_each_uid(db, a->uid, overlap_one, &o, e) < 0)
		return -1;
	return o.found;
}

/* The id of provider/key, -1 (with e) when it does not exist. */
static int64_t secret_id(struct vault_db *db, const char *provider, const char *key, struct vault_err *e)
{
	struct vault_secret s;
	int found = vault_secret_find(db, provider, key, &s, e);
	if (found == 0)
		return vault_fail(e, VAULT_ENOENT, "secret '%s/%s' does not exist", provider, key);
	return found < 0 ? -1 : s.id;
}

/* Insert (on) or delete (off) the pair (a, b) with sql_on/sql_off: 0 when
 * it changed; 1 when the pair was already there (on) or not there (off),
 * with e naming both ("agent 'x' has no grant of 'p/k'"). */
static int toggle(struct vault_db *db, int on, const char *sql_on, const char *sql_off,
		  int64_t a, int64_t b, const char *kind1, const char *name1, const char *what,
		  const char *name2, struct vault_err *e)
{
	sqlite3_stmt *st = vault_db_stmt(db, on ? sql_on : sql_off, e);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	if (on)
		sqlite3_bind_int64(st, 3, vault_now_ns());
	if (vault_db_begin(db, e) < 0)
		return -1;
	int rc = vault_db_step_done(db, st, what, e);
	if (rc == 0 && sqlite3_changes(vault_db_handle(db)) == 0) {
		vault_fail(e, on ? VAULT_EEXIST : VAULT_ENOENT, "%s '%s' %s %s%s '%s'", kind1, name1,
			   on ? "already has" : "has no", !on ? "" : strchr("aeiou", what[0]) ? "an " : "a ",
			   what, name2);
		vault_db_rollback(db);
		return 1;
	}
	if (rc < 0 || vault_generation_bump(db, e) < 0 || vault_db_commit(db, e) < 0) {
		vault_db_rollback(db);
		return -1;
	}
	return 0;
}

int acl_assign(struct vault_db *db, const char *provider, const char *key, const char *project,
	       int assign, struct vault_err *e)
{
	if (vault_name_check("project", project, e) < 0)
		return -1;
	int64_t sid = secret_id(db, provider, key, e);
	if (sid < 0)
		return -1;
	int64_t pid = acl_project_id(db, project, e);
	if (pid == 0)
		return vault_fail(e, VAULT_ENOENT, "project '%s' does not exist", project);
	if (pid < 0)
		return -1;
	char sk[2 * VAULT_NAME_MAX + 2];
	snprintf(sk, sizeof sk, "%s/%s", provider, key);
	int rc = toggle(db, assign,
			"INSERT OR IGNORE INTO assignments(secret_id, project_id, created_ns) VALUES (?, ?, ?)",
			"DELETE FROM assignments WHERE secret_id = ? AND project_id = ?",
			sid, pid, "secret", sk, "assignment to project", project, e);
	return rc == 1 ? -1 : rc;
}

int acl_grant_get(struct vault_db *db, int64_t agent_id, int64_t secret_id, int64_t *expires_ns,
		  struct vault_err *e)
{
	sqlite3_stmt *st = vault_db_stmt(db, "SELECT coalesce(expires_ns, 0) FROM grants WHERE agent_id = ? AND secret_id = ?", e);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, agent_id);
	sqlite3_bind_int64(st, 2, secret_id);
	return step_one(db, st, expires_ns, "reading a grant", e);
}

/* The ids of agent and provider/key: 0, or -1 naming the one missing. */
static int grant_ids(struct vault_db *db, const char *agent, const char *provider, const char *key,
		     int64_t *aid, int64_t *sid, struct vault_err *e)
{
	if ((*aid = agent_id(db, agent, e)) < 0 || (*sid = secret_id(db, provider, key, e)) < 0)
		return -1;
	return 0;
}

int acl_grant_until(struct vault_db *db, const char *agent, const char *provider, const char *key,
		    int64_t expires_ns, struct vault_err *e)
{
	int64_t aid, sid;
	if (grant_ids(db, agent, provider, key, &aid, &sid, e) < 0)
		return -1;
	if (expires_ns < 0)
		return vault_fail(e, VAULT_EINVAL, "a grant's expiry must be a time after 1970");
	int64_t old;
	int found = acl_grant_get(db, aid, sid, &old, e);
	if (found < 0)
		return -1;
	if (found && old == expires_ns)
		return vault_fail(e, VAULT_EEXIST, "agent '%s' already has a grant of '%s/%s'", agent, provider,
				  key), 1;
	sqlite3_stmt *st = vault_db_stmt(db, found ? "UPDATE grants SET expires_ns = ?3 WHERE agent_id = ?1 AND secret_id = ?2"
						   : "INSERT INTO grants(agent_id, secret_id, expires_ns, created_ns)"
						     " VALUES (?1, ?2, ?3, ?4)", e);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, aid);
	sqlite3_bind_int64(st, 2, sid);
	if (expires_ns)
		sqlite3_bind_int64(st, 3, expires_ns);
	if (!found)
		sqlite3_bind_int64(st, 4, vault_now_ns());
	return change(db, st, found ? "changing a grant's expiry" : "adding a grant", e);
}

int acl_grant(struct vault_db *db, const char *agent, const char *provider, const char *key,
	      int grant, struct vault_err *e)
{
	if (grant)
		return acl_grant_until(db, agent, provider, key, 0, e);
	int64_t aid, sid;
	if (grant_ids(db, agent, provider, key, &aid, &sid, e) < 0)
		return -1;
	char sk[2 * VAULT_NAME_MAX + 2];
	snprintf(sk, sizeof sk, "%s/%s", provider, key);
	return toggle(db, 0, NULL, "DELETE FROM grants WHERE agent_id = ? AND secret_id = ?",
		      aid, sid, "agent", agent, "grant of", sk, e);
}

const char *acl_decision_str(enum acl_decision d)
{
	switch (d) {
	case ACL_ALLOW: return "allowed";
	case ACL_NO_SECRET: return "no such secret";
	case ACL_NO_GRANT: return "no grant";
	case ACL_NOT_ASSIGNED: return "granted, but the secret is not assigned to the agent's project";
	case ACL_DISABLED: return "agent is disabled";
	case ACL_EXPIRED: return "the grant has expired";
	case ACL_DB_ERROR: return "database error";
	}
	return "?";
}

/* A grant (alias g, or the grants table itself) that has not expired at ?9
 * (now, in ns): part of the access rule, evaluated at each request. */
#define UNEXPIRED " AND (expires_ns IS NULL OR expires_ns > ?9)"

enum acl_decision acl_check(struct vault_db *db, const struct acl_agent *agent,
			    const char *provider, const char *key,
			    struct vault_secret *s, struct vault_err *e)
{
	memset(s, 0, sizeof *s);
	int found = vault_secret_find(db, provider, key, s, e);
	if (found < 0)
		return ACL_DB_ERROR;
	if (!found)
		return ACL_NO_SECRET;
	sqlite3_stmt *st = vault_db_stmt(db,
		"SELECT a.enabled,"
		" EXISTS (SELECT 1 FROM grants WHERE agent_id = a.id AND secret_id = ?2),"
		" EXISTS (SELECT 1 FROM assignments WHERE project_id = a.project_id AND secret_id = ?2),"
		" EXISTS (SELECT 1 FROM grants WHERE agent_id = a.id AND secret_id = ?2" UNEXPIRED ")"
		" FROM agents a WHERE a.id = ?1", e);
	if (!st)
		return ACL_DB_ERROR;
	sqlite3_bind_int64(st, 1, agent->id);
	sqlite3_bind_int64(st, 2, s->id);
	sqlite3_bind_int64(st, 9, vault_now_ns());
	int rc = sqlite3_step(st);
	enum acl_decision d;
	if (rc == SQLITE_ROW) {
		if (!sqlite3_column_int(st, 1))
			d = ACL_NO_GRANT;
		else if (!sqlite3_column_int(st, 3))
			d = ACL_EXPIRED;
		else if (!sqlite3_column_int(st, 2))
			d = ACL_NOT_ASSIGNED;
		else if (!sqlite3_column_int(st, 0))
			d = ACL_DISABLED;
		else
			d = ACL_ALLOW;
	} else if (rc == SQLITE_DONE) {
		d = ACL_NO_GRANT; /* the agent was removed */
	} else {
		vault_fail_sql(e, vault_db_handle(db), rc, "checking a grant");
		d = ACL_DB_ERROR;
	}
	sqlite3_reset(st);
	return d;
}

/* The effective grants of an agent: the access rule as a join. ?1 agent id,
 * ?9 now (ns): bound by every statement that uses it. */
#define EFFECTIVE \
	" FROM agents a JOIN grants g ON g.agent_id = a.id AND (g.expires_ns IS NULL OR g.expires_ns > ?9)" \
	" JOIN assignments x ON x.secret_id = g.secret_id AND x.project_id = a.project_id" \
	" JOIN secrets s ON s.id = g.secret_id" \
	" WHERE a.id = ?1 AND a.enabled = 1"

int acl_view_providers(struct vault_db *db, const struct acl_agent *agent,
		       int (*fn)(void *, int64_t provider_id, const char *name), void *arg,
		       struct vault_err *e)
{
	sqlite3_stmt *st = vault_db_stmt(db, "SELECT p.id, p.name FROM providers p WHERE p.id IN"
					     " (SELECT s.provider_id" EFFECTIVE ") ORDER BY p.name", e);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, agent->id);
	sqlite3_bind_int64(st, 9, vault_now_ns());
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (fn(arg, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1)))
			break;
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return vault_fail_sql(e, vault_db_handle(db), rc, "listing providers");
	return 0;
}

static void secret_row(sqlite3_stmt *st, struct vault_secret *s)
{
	s->id = sqlite3_column_int64(st, 0);
	s->provider_id = sqlite3_column_int64(st, 1);
	s->version = sqlite3_column_int64(st, 2);
	s->len = sqlite3_column_int64(st, 3);
	s->created_ns = sqlite3_column_int64(st, 4);
	snprintf(s->key, sizeof s->key, "%s", (const char *)sqlite3_column_text(st, 5));
	snprintf(s->provider, sizeof s->provider, "%s", (const char *)sqlite3_column_text(st, 6));
}

/* created_ns of the view is the current version's: a key file's mtime moves
 * with every rotation or rollback, for tools that poll it. */
#define SECRET_COLS "s.id, s.provider_id, s.version, s.len," \
	" COALESCE((SELECT created_ns FROM secret_versions v WHERE v.secret_id = s.id AND v.version = s.version)," \
	" s.created_ns), s.key, (SELECT name FROM providers WHERE id = s.provider_id)"

int acl_view_keys(struct vault_db *db, const struct acl_agent *agent, int64_t provider_id,
		  int (*fn)(void *, const struct vault_secret *), void *arg, struct vault_err *e)
{
	sqlite3_stmt *st = vault_db_stmt(db, "SELECT " SECRET_COLS EFFECTIVE
					     " AND s.provider_id = ?2 ORDER BY s.key", e);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, agent->id);
	sqlite3_bind_int64(st, 9, vault_now_ns());
	sqlite3_bind_int64(st, 2, provider_id);
	struct vault_secret s;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		secret_row(st, &s);
		if (fn(arg, &s))
			break;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return vault_fail_sql(e, vault_db_handle(db), rc, "listing keys");
	return 0;
}

int acl_view_provider(struct vault_db *db, const struct acl_agent *agent, const char *name,
		      int64_t *provider_id, struct vault_err *e)
{
	sqlite3_stmt *st = vault_db_stmt(db, "SELECT p.id FROM providers p WHERE p.name = ?2 AND EXISTS"
					     " (SELECT 1" EFFECTIVE " AND s.provider_id = p.id)", e);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, agent->id);
	sqlite3_bind_int64(st, 9, vault_now_ns());
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	return step_one(db, st, provider_id, "looking up a provider", e);
}

int acl_view_key(struct vault_db *db, const struct acl_agent *agent, int64_t provider_id,
		 const char *key, struct vault_secret *s, struct vault_err *e)
{
	/* the rule of EFFECTIVE, correlated with this secret s */
	sqlite3_stmt *st = vault_db_stmt(db, "SELECT " SECRET_COLS ", EXISTS (SELECT 1 FROM agents a"
					     " JOIN grants g ON g.agent_id = a.id AND g.secret_id = s.id"
					     " AND (g.expires_ns IS NULL OR g.expires_ns > ?9)"
					     " JOIN assignments x ON x.secret_id = s.id AND x.project_id = a.project_id"
					     " WHERE a.id = ?1 AND a.enabled = 1)"
					     " FROM secrets s WHERE s.provider_id = ?2 AND s.key = ?3", e);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, agent->id);
	sqlite3_bind_int64(st, 9, vault_now_ns());
	sqlite3_bind_int64(st, 2, provider_id);
	sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st), found = 2;
	if (rc == SQLITE_ROW) {
		secret_row(st, s);
		found = sqlite3_column_int(st, 7) ? 1 : 0;
	} else if (rc != SQLITE_DONE) {
		found = vault_fail_sql(e, vault_db_handle(db), rc, "looking up a secret");
	}
	sqlite3_reset(st);
	return found;
}

int acl_view_secret(struct vault_db *db, const struct acl_agent *agent, int64_t sid,
		    struct vault_secret *s, struct vault_err *e)
{
	sqlite3_stmt *st = vault_db_stmt(db, "SELECT " SECRET_COLS EFFECTIVE " AND s.id = ?2", e);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, agent->id);
	sqlite3_bind_int64(st, 9, vault_now_ns());
	sqlite3_bind_int64(st, 2, sid);
	int rc = sqlite3_step(st), found = 0;
	if (rc == SQLITE_ROW) {
		secret_row(st, s);
		found = 1;
	} else if (rc != SQLITE_DONE) {
		found = vault_fail_sql(e, vault_db_handle(db), rc, "looking up a secret");
	}
	sqlite3_reset(st);
	return found;
}
