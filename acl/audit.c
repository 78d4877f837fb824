/* audit.c - the audit trail: the table and its indexes, the BLAKE2b-256 hash
 * chain (append, verify, prune with an anchor), queries, and the daemon's
 * writer thread that group-commits the rows of concurrent opens.
 *
 * MUST:
 * - never store a value, a hash of a value, or a key: rows hold only names,
 *   ids, numbers and the caller's labels (no field of struct audit_row can
 *   carry a value, and no secret ever passes through the writer's queue);
 * - chain every row: hash = BLAKE2b-256(prev_hash || encode(id, row)), with
 *   prev_hash read from the last row inside the appending transaction (the
 *   daemon and scopeholdctl both append), never from memory;
 * - assign ids max(last id, sqlite_sequence) + 1, so ids have no gaps and a
 *   deleted row, even the last one, leaves a visible hole;
 * - a row submitted with wait=1 is reported 0 only after the transaction
 *   holding it committed; a failed commit fails every waiter of that batch
 *   and the next batch tries again (no restart needed after a fault);
 * - never print; every statement uses bound parameters.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include <sodium.h>

#include "acl/audit.h"

#define NS_PER_S 1000000000LL
#define ENCODING_TAG "scopehold-audit-v1"
#define COALESCE_SLOTS 64
#define LIMIT_COST (NS_PER_S / AUDIT_LIMIT_RATE)     /* credit (ns) one limited row costs */
#define LIMIT_FULL (AUDIT_LIMIT_BURST * LIMIT_COST)  /* a full bucket */
#define LIMIT_UIDS 256                              /* uids tracked one by one */
#define LIMIT_PROBE 8

/* ---- schema --------------------------------------------------------------- */

static const char *const audit_steps[] = {
	/* 1. No foreign keys: rows outlive the secrets, agents and providers they
	 * name. The indexes serve `audit list` filters (newest first by id within
	 * an agent, path or result), time ranges, and finding the latest prune
	 * anchor without a scan. */
	"CREATE TABLE audit ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  time_ns INTEGER NOT NULL,"
	"  event TEXT NOT NULL,"
	"  result TEXT NOT NULL,"
	"  reason TEXT,"
	"  agent TEXT,"
	"  uid INTEGER NOT NULL,"
	"  gid INTEGER NOT NULL,"
	"  pid INTEGER NOT NULL,"
	"  tgid INTEGER NOT NULL,"
	"  sudo_uid INTEGER NOT NULL,"
	"  exe TEXT,"
	"  cgroup TEXT,"
	"  lsm TEXT,"
	"  path TEXT,"
	"  secret_id INTEGER NOT NULL,"
	"  version INTEGER NOT NULL,"
	"  count INTEGER NOT NULL,"
	"  prev_hash BLOB NOT NULL,"
	"  hash BLOB NOT NULL"
	") STRICT;"
	"CREATE INDEX audit_agent ON audit(agent, id);"
	"CREATE INDEX audit_path ON audit(path, id);"
	"CREATE INDEX audit_result ON audit(result, id);"
	"CREATE INDEX audit_time ON audit(time_ns);"
	"CREATE INDEX audit_anchor ON audit(id) WHERE event = '" AUDIT_EVENT_PRUNE "';",
};

struct vault_db *audit_db_open(const char *path, unsigned flags, struct vault_err *e)
{
	struct stat st;
	if (!(flags & VAULT_DB_CREATE) && lstat(path, &st) < 0 && errno == ENOENT) {
		vault_fail(e, VAULT_ENOENT, "audit store '%s' does not exist (removed, or [audit] db names "
			   "another file); refusing to start a new, empty trail", path);
		return NULL;
	}
	struct vault_db *db = vault_db_open(path, flags | VAULT_DB_NOVAULT, e);
	if (db && !(flags & VAULT_DB_NOMIGRATE) && audit_schema(db, e) < 0) {
		vault_db_close(db);
		return NULL;
	}
	return db;
}

int audit_schema(struct vault_db *db, struct vault_err *e)
{
	if (sodium_init() < 0)
		return vault_fail(e, VAULT_ECRYPTO, "libsodium failed to initialise");
	return vault_migrate(db, "audit", audit_steps, (int)(sizeof audit_steps / sizeof *audit_steps), e);
}

/* ---- the chain ------------------------------------------------------------ */

static void enc_int(crypto_generichash_state *st, int64_t v)
{
	uint8_t b[9];
	uint64_t u = (uint64_t)v;
	b[0] = 0x01;
	for (int i = 0; i < 8; i++)
		b[1 + i] = (uint8_t)(u >> (56 - 8 * i));
	crypto_generichash_update(st, b, sizeof b);
}

static void enc_text(crypto_generichash_state *st, const char *s)
{
	if (!s) {
		uint8_t nul = 0x00;
		crypto_generichash_update(st, &nul, 1);
		return;
	}
	size_t n = strlen(s);
	uint8_t b[5] = { 0x02, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n };
	crypto_generichash_update(st, b, sizeof b);
	crypto_generichash_update(st, (const uint8_t *)s, n);
}

void audit_hash(const uint8_t prev[AUDIT_HASH_BYTES], int64_t id, const struct audit_row *r,
		uint8_t out[AUDIT_HASH_BYTES])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, AUDIT_HASH_BYTES);
	crypto_generichash_update(&st, prev, AUDIT_HASH_BYTES);
	crypto_generichash_update(&st, (const uint8_t *)ENCODING_TAG, sizeof ENCODING_TAG); /* with its NUL */
	enc_int(&st, id);
	enc_int(&st, r->time_ns);
	enc_text(&st, r->event);
	enc_text(&st, r->result);
	enc_text(&st, r->reason);
	enc_text(&st, r->agent);
	enc_int(&st, r->uid);
	enc_int(&st, r->gid);
	enc_int(&st, r->pid);
	enc_int(&st, r->tgid);
	enc_int(&st, r->sudo_uid);
	enc_text(&st, r->exe);
	enc_text(&st, r->cgroup);
	enc_text(&st, r->lsm);
	enc_text(&st, r->path);
	enc_int(&st, r->secret_id);
	enc_int(&st, r->version);
	enc_int(&st, r->count);
	crypto_generichash_final(&st, out, AUDIT_HASH_BYTES);
}

static void hex(const uint8_t *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = 0;
}

static int unhex(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < 2 * n; i++) {
		char c = s[i];
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (v < 0)
			return -1;
		if (i & 1)
			out[i / 2] = (uint8_t)(out[i / 2] << 4 | v);
		else
			out[i / 2] = (uint8_t)v;
	}
	return s[2 * n] == 0 || s[2 * n] == ';' ? 0 : -1;
}

/* ---- append --------------------------------------------------------------- */

static const char sql_last[] = "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1";
static const char sql_seq[] = "SELECT seq FROM sqlite_sequence WHERE name = 'audit'";
static const char sql_insert[] =
	"INSERT INTO audit (id, time_ns, event, result, reason, agent, uid, gid, pid, tgid,"
	" sudo_uid, exe, cgroup, lsm, path, secret_id, version, count, prev_hash, hash)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,"
	" ?18, ?19, ?20)";

/* Inside a transaction: the id the next row gets and the hash it chains to. */
static int chain_head(struct vault_db *db, int64_t *next_id, uint8_t prev[AUDIT_HASH_BYTES],
		      struct vault_err *e)
{
	sqlite3 *h = vault_db_handle(db);
	int64_t last = 0, seq = 0;
	memset(prev, 0, AUDIT_HASH_BYTES);
	sqlite3_stmt *st = vault_db_stmt(db, sql_last, e);
	if (!st)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		last = sqlite3_column_int64(st, 0);
		const void *b = sqlite3_column_blob(st, 1);
		int n = sqlite3_column_bytes(st, 1);
		/* A damaged hash is chained as read; verify reports that row. */
		if (b)
			memcpy(prev, b, n < AUDIT_HASH_BYTES ? (size_t)n : AUDIT_HASH_BYTES);
	} else if (rc != SQLITE_DONE) {
		sqlite3_reset(st);
		return vault_fail_sql(e, h, rc, "reading the last audit row");
	}
	sqlite3_reset(st);
	if (!(st = vault_db_stmt(db, sql_seq, e)))
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		seq = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return vault_fail_sql(e, h, rc, "reading the audit sequence");
	*next_id = (last > seq ? last : seq) + 1;
	return 0;
}

/* internal: prune's anchor may use the reserved event. lengths: refuse
 * strings over AUDIT_TEXT_MAX (the writer cuts them instead). */
static int row_check(const struct audit_row *r, int internal, int lengths, struct vault_err *e)
{
	if (!r->event || !*r->event || !r->result || !*r->result)
		return vault_fail(e, VAULT_EINVAL, "an audit row needs an event and a result");
	if (!internal && !strcmp(r->event, AUDIT_EVENT_PRUNE))
		return vault_fail(e, VAULT_EINVAL, "audit event '%s' is reserved for audit prune",
				  AUDIT_EVENT_PRUNE);
	const char *s[] = { r->event, r->result, r->reason, r->agent, r->exe, r->cgroup, r->lsm, r->path };
	for (size_t i = 0; lengths && i < sizeof s / sizeof *s; i++)
		if (s[i] && strnlen(s[i], AUDIT_TEXT_MAX + 1) > AUDIT_TEXT_MAX)
			return vault_fail(e, VAULT_EINVAL, "an audit row field is longer than %d bytes",
					  AUDIT_TEXT_MAX);
	return 0;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

/* Append rows (or *ptrs[i] when ptrs) in one (nested) transaction. prune
 * passes the hash the anchor must chain to as chain_to (the head before its
 * delete, which may have removed every row); else NULL: read it. */
static int append_rows(struct vault_db *db, const struct audit_row *rows, size_t n,
		       const struct audit_row *const *ptrs, const uint8_t *chain_to,
		       struct vault_err *e)
{
	sqlite3 *h = vault_db_handle(db);
	for (size_t i = 0; i < n; i++)
		if (row_check(ptrs ? ptrs[i] : &rows[i], chain_to != NULL, 1, e) < 0)
			return -1;
	if (vault_db_begin(db, e) < 0)
		return -1;
	int64_t id;
	uint8_t prev[AUDIT_HASH_BYTES], hash[AUDIT_HASH_BYTES];
	if (chain_head(db, &id, prev, e) < 0)
		goto fail;
	if (chain_to)
		memcpy(prev, chain_to, AUDIT_HASH_BYTES);
	int64_t now = vault_now_ns();
	for (size_t i = 0; i < n; i++, id++) {
		struct audit_row r = ptrs ? *ptrs[i] : rows[i];
		if (r.time_ns == 0)
			r.time_ns = now;
		if (r.count <= 0)
			r.count = 1;
		audit_hash(prev, id, &r, hash);
		sqlite3_stmt *st = vault_db_stmt(db, sql_insert, e);
		if (!st)
			goto fail;
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, r.time_ns);
		bind_text(st, 3, r.event);
		bind_text(st, 4, r.result);
		bind_text(st, 5, r.reason);
		bind_text(st, 6, r.agent);
		sqlite3_bind_int64(st, 7, r.uid);
		sqlite3_bind_int64(st, 8, r.gid);
		sqlite3_bind_int64(st, 9, r.pid);
		sqlite3_bind_int64(st, 10, r.tgid);
		sqlite3_bind_int64(st, 11, r.sudo_uid);
		bind_text(st, 12, r.exe);
		bind_text(st, 13, r.cgroup);
		bind_text(st, 14, r.lsm);
		bind_text(st, 15, r.path);
		sqlite3_bind_int64(st, 16, r.secret_id);
		sqlite3_bind_int64(st, 17, r.version);
		sqlite3_bind_int64(st, 18, r.count);
		sqlite3_bind_blob(st, 19, prev, AUDIT_HASH_BYTES, SQLITE_STATIC);
		sqlite3_bind_blob(st, 20, hash, AUDIT_HASH_BYTES, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		if (rc != SQLITE_DONE) {
			vault_fail_sql(e, h, rc, "writing an audit row");
			goto fail;
		}
		memcpy(prev, hash, AUDIT_HASH_BYTES);
	}
	if (vault_db_commit(db, e) < 0)
		goto fail;
	return 0;
fail:
	vault_db_rollback(db);
	return -1;
}

int audit_append(struct vault_db *db, const struct audit_row *rows, size_t n, struct vault_err *e)
{
	if (n == 0)
		return 0;
	return append_rows(db, rows, n, NULL, NULL, e);
}

/* ---- reading -------------------------------------------------------------- */

#define ROW_COLUMNS "id, time_ns, event, result, reason, agent, uid, gid, pid, tgid, sudo_uid," \
	" exe, cgroup, lsm, path, secret_id, version, count"

static const char *col_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

/* Fill r from columns 1.. of st (column 0 is id). */
static void row_from(sqlite3_stmt *st, struct audit_row *r)
{
	r->time_ns = sqlite3_column_int64(st, 1);
	r->event = col_text(st, 2);
	r->result = col_text(st, 3);
	r->reason = col_text(st, 4);
	r->agent = col_text(st, 5);
	r->uid = sqlite3_column_int64(st, 6);
	r->gid = sqlite3_column_int64(st, 7);
	r->pid = sqlite3_column_int64(st, 8);
	r->tgid = sqlite3_column_int64(st, 9);
	r->sudo_uid = sqlite3_column_int64(st, 10);
	r->exe = col_text(st, 11);
	r->cgroup = col_text(st, 12);
	r->lsm = col_text(st, 13);
	r->path = col_text(st, 14);
	r->secret_id = sqlite3_column_int64(st, 15);
	r->version = sqlite3_column_int64(st, 16);
	r->count = sqlite3_column_int64(st, 17);
}

int audit_query(struct vault_db *db, const struct audit_filter *f,
		int (*fn)(void *arg, int64_t id, const struct audit_row *row),
		void *arg, struct vault_err *e)
{
	/* Only the filters given appear in the SQL, so that SQLite can use the
	 * (agent, id), (path, id), (result, id) or time_ns index. The text is
	 * built from fixed pieces; every value is bound. */
	char where[256] = "", sql[2048];
	size_t n = 0;
	const struct { int on; const char *cond; } conds[] = {
		{ f->after_id != 0, " AND id > :after" },
		{ f->agent != NULL, " AND agent = :agent" },
		{ f->result != NULL, " AND result = :result" },
		{ f->since_ns != 0, " AND time_ns >= :since" },
		{ f->until_ns != 0, " AND time_ns < :until" },
	};
	for (size_t i = 0; i < sizeof conds / sizeof *conds; i++)
		if (conds[i].on)
			n += (size_t)snprintf(where + n, sizeof where - n, "%s", conds[i].cond);
#define SEL "SELECT " ROW_COLUMNS " FROM audit WHERE 1"
	if (f->secret && f->limit > 0) {
		/* "P/K" and the admin rows "P/K -> ..." apart, each newest first
		 * through the (path, id) index, so a hot secret needs no sort */
		snprintf(sql, sizeof sql,
			 "SELECT * FROM ("
			 "SELECT * FROM (" SEL "%s AND path = :path ORDER BY id DESC LIMIT :limit)"
			 " UNION ALL "
			 "SELECT * FROM (" SEL "%s AND path GLOB :glob ORDER BY id DESC LIMIT :limit)"
			 " ORDER BY id DESC LIMIT :limit) ORDER BY id", where, where);
	} else if (f->secret) {
		snprintf(sql, sizeof sql, SEL "%s AND (path = :path OR path GLOB :glob) ORDER BY id", where);
	} else if (f->limit > 0) {
		snprintf(sql, sizeof sql, "SELECT * FROM (" SEL "%s ORDER BY id DESC LIMIT :limit) ORDER BY id",
			 where);
	} else {
		snprintf(sql, sizeof sql, SEL "%s ORDER BY id", where);
	}
#undef SEL

	sqlite3 *h = vault_db_handle(db);
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(h, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return vault_fail_sql(e, h, rc, "querying the audit trail");
	if (f->after_id)
		sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":after"), f->after_id);
	if (f->agent)
		sqlite3_bind_text(st, sqlite3_bind_parameter_index(st, ":agent"), f->agent, -1, SQLITE_STATIC);
	if (f->secret) {
		sqlite3_bind_text(st, sqlite3_bind_parameter_index(st, ":path"), f->secret, -1, SQLITE_STATIC);
		char *glob = sqlite3_mprintf("%s -> *", f->secret);
		if (!glob) {
			sqlite3_finalize(st);
			return vault_fail(e, VAULT_ENOMEM, "out of memory");
		}
		sqlite3_bind_text(st, sqlite3_bind_parameter_index(st, ":glob"), glob, -1, sqlite3_free);
	}
	if (f->result)
		sqlite3_bind_text(st, sqlite3_bind_parameter_index(st, ":result"), f->result, -1, SQLITE_STATIC);
	if (f->since_ns)
		sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":since"), f->since_ns);
	if (f->until_ns)
		sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":until"), f->until_ns);
	if (f->limit > 0)
		sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":limit"), f->limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct audit_row r;
		row_from(st, &r);
		if (fn(arg, sqlite3_column_int64(st, 0), &r)) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return vault_fail_sql(e, h, rc, "reading the audit trail");
	return 0;
}

static const char sql_each[] =
	"SELECT " ROW_COLUMNS ", prev_hash, hash FROM audit WHERE id > ?1 ORDER BY id";

int audit_each(struct vault_db *db, int64_t after_id,
	       int (*fn)(void *arg, int64_t id, const struct audit_row *row,
			 const uint8_t *prev_hash, const uint8_t *hash),
	       void *arg, struct vault_err *e)
{
	sqlite3 *h = vault_db_handle(db);
	sqlite3_stmt *st = vault_db_stmt(db, sql_each, e);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, after_id);
	int rc;
	uint8_t prev[AUDIT_HASH_BYTES], hash[AUDIT_HASH_BYTES];
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct audit_row r;
		row_from(st, &r);
		memset(prev, 0, sizeof prev);
		memset(hash, 0, sizeof hash);
		int np = sqlite3_column_bytes(st, 18), nh = sqlite3_column_bytes(st, 19);
		if (np == AUDIT_HASH_BYTES)
			memcpy(prev, sqlite3_column_blob(st, 18), AUDIT_HASH_BYTES);
		if (nh == AUDIT_HASH_BYTES)
			memcpy(hash, sqlite3_column_blob(st, 19), AUDIT_HASH_BYTES);
		if (fn(arg, sqlite3_column_int64(st, 0), &r, prev, hash)) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return vault_fail_sql(e, h, rc, "reading the audit trail");
	return 0;
}

/* ---- verify --------------------------------------------------------------- */

static const char sql_anchor[] =
	"SELECT " ROW_COLUMNS ", prev_hash, hash FROM audit WHERE event = '" AUDIT_EVENT_PRUNE "'"
	" ORDER BY id DESC LIMIT 1";
static const char sql_walk[] =
	"SELECT " ROW_COLUMNS ", prev_hash, hash FROM audit ORDER BY id";

/* "cut at id N prev_hash HEX; ..." */
static int parse_anchor(const char *reason, int64_t *cut_id, uint8_t cut_hash[AUDIT_HASH_BYTES])
{
	long long id;
	int off = 0;
	if (!reason || sscanf(reason, "cut at id %lld prev_hash %n", &id, &off) != 1 || !off)
		return -1;
	if (strlen(reason + off) < 2 * AUDIT_HASH_BYTES || unhex(reason + off, cut_hash, AUDIT_HASH_BYTES) < 0)
		return -1;
	*cut_id = id;
	return 0;
}

static const char *const col_names[] = {
	"id", "time_ns", "event", "result", "reason", "agent", "uid", "gid", "pid", "tgid",
	"sudo_uid", "exe", "cgroup", "lsm", "path", "secret_id", "version", "count",
	"prev_hash", "hash",
};

/* Column i of the walk holds what the schema says it should; else its name. */
static const char *bad_column(sqlite3_stmt *st)
{
	for (int i = 0; i < 20; i++) {
		int t = sqlite3_column_type(st, i);
		switch (i) {
		case 2: case 3: /* event, result */
		case 4: case 5: case 11: case 12: case 13: case 14:
			if (t == SQLITE_NULL && i > 3)
				break;
			if (t != SQLITE_TEXT)
				return col_names[i];
			/* embedded NUL: the stored bytes are not what was hashed */
			const char *txt = col_text(st, i);
			size_t nbytes = (size_t)sqlite3_column_bytes(st, i);
			if (!txt || nbytes != strlen(txt))
				return col_names[i];
			break;
		case 18: case 19:
			if (t != SQLITE_BLOB || sqlite3_column_bytes(st, i) != AUDIT_HASH_BYTES)
				return col_names[i];
			break;
		default:
			if (t != SQLITE_INTEGER)
				return col_names[i];
		}
	}
	return NULL;
}

static void what(struct audit_verify_result *r, int64_t id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void what(struct audit_verify_result *r, int64_t id, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->what, sizeof r->what, fmt, ap);
	va_end(ap);
	r->bad_id = id;
	r->broken = 1;
}

/* Decide about one row whose hash, link or id is not what the chain expects.
 * exp_id is the id it should have, pred names its predecessor. */
static void diagnose(struct audit_verify_result *res, int64_t id, const struct audit_row *row,
		     const uint8_t *prev, const uint8_t *stored, int content_ok, int link_ok,
		     int64_t exp_id, const uint8_t *exp_prev, const char *pred)
{
	uint8_t h[AUDIT_HASH_BYTES];
	if (content_ok) {
		if (id > exp_id && link_ok) {
			what(res, id, "row %" PRId64 " was inserted: it chains to %s but ids %" PRId64 "..%" PRId64
			     " before it never existed", id, pred, exp_id, id - 1);
		} else if (id > exp_id) {
			if (id - 1 == exp_id)
				what(res, exp_id, "row %" PRId64 " was deleted: row %" PRId64 " does not chain to %s",
				     exp_id, id, pred);
			else
				what(res, exp_id, "rows %" PRId64 "..%" PRId64 " were deleted: row %" PRId64
				     " does not chain to %s", exp_id, id - 1, id, pred);
		} else if (id < exp_id) {
			what(res, id, "row %" PRId64 " was inserted: the trail starts at row %" PRId64,
			     id, exp_id);
		} else {
			what(res, id, "row %" PRId64 " does not chain to %s: rows were reordered, row %" PRId64
			     " was inserted or replaced, or %s was edited and its hash recomputed",
			     id, pred, id, pred);
		}
		return;
	}
	if (link_ok && id == exp_id) {
		what(res, id, "row %" PRId64 " was edited: its contents do not match its hash", id);
		return;
	}
	if (id == exp_id && res->rows > 0 && !memcmp(stored, exp_prev, AUDIT_HASH_BYTES)) {
		what(res, id, "row %" PRId64 " was replaced by a copy of %s", id, pred);
		return;
	}
	/* Moved rows: the hash covers the id, so a row renumbered by one is
	 * recognised by the id it was written with (an id at either end of
	 * int64 has no neighbour there). */
	if (id == exp_id && res->rows > 0 && id > INT64_MIN) {
		audit_hash(prev, id - 1, row, h);
		if (!memcmp(h, stored, AUDIT_HASH_BYTES)) {
			what(res, id - 1, "row %" PRId64 " was inserted: the row after it was written as row %"
			     PRId64 " and was renumbered", id - 1, id - 1);
			return;
		}
	}
	if (id < INT64_MAX) {
		audit_hash(prev, id + 1, row, h);
		if (!memcmp(h, stored, AUDIT_HASH_BYTES)) {
			what(res, id, "row %" PRId64 " holds row %" PRId64 " moved down: rows were reordered, or row %"
			     PRId64 " was deleted and the rest renumbered", id, id + 1, id);
			return;
		}
	}
	if (id != exp_id && id > exp_id) {
		what(res, exp_id, "row %" PRId64 " is missing and row %" PRId64 " neither matches its hash "
		     "nor chains to %s (rows deleted, edited or reordered)", exp_id, id, pred);
		return;
	}
	what(res, id, "row %" PRId64 " does not belong here: its contents do not match its hash and it "
	     "does not chain to %s (inserted, replaced or reordered)", id, pred);
}

int audit_verify(struct vault_db *db, struct audit_verify_result *res, struct vault_err *e)
{
	sqlite3 *h = vault_db_handle(db);
	memset(res, 0, sizeof *res);
	/* One read transaction: the anchor and the walk see the same rows. */
	int own = sqlite3_get_autocommit(h);
	if (own) {
		int rc = sqlite3_exec(h, "BEGIN", NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			return vault_fail_sql(e, h, rc, "starting to verify the audit trail");
	}
	int ret = -1, rc;
	int64_t exp_id = 1;
	uint8_t exp_prev[AUDIT_HASH_BYTES] = { 0 };
	char pred[96] = "the start of the trail";

	sqlite3_stmt *st = vault_db_stmt(db, sql_anchor, e);
	if (!st)
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		/* The anchor says where the trail starts: check it before using it. */
		res->anchor_id = sqlite3_column_int64(st, 0);
		struct audit_row a;
		row_from(st, &a);
		uint8_t ah[AUDIT_HASH_BYTES];
		int ok = !bad_column(st);
		if (ok) {
			audit_hash(sqlite3_column_blob(st, 18), res->anchor_id, &a, ah);
			ok = !memcmp(ah, sqlite3_column_blob(st, 19), AUDIT_HASH_BYTES);
		}
		if (!ok) {
			what(res, res->anchor_id, "row %" PRId64 " (the latest prune anchor) was edited: its "
			     "contents do not match its hash", res->anchor_id);
			sqlite3_reset(st);
			ret = 0;
			goto out;
		}
		if (parse_anchor(a.reason, &exp_id, exp_prev) < 0) {
			what(res, res->anchor_id, "prune anchor row %" PRId64 " does not say where the trail "
			     "starts: it was edited", res->anchor_id);
			sqlite3_reset(st);
			ret = 0;
			goto out;
		}
		snprintf(pred, sizeof pred, "the cut recorded by prune anchor row %" PRId64, res->anchor_id);
	} else if (rc != SQLITE_DONE) {
		sqlite3_reset(st);
		vault_fail_sql(e, h, rc, "reading the audit trail");
		goto out;
	}
	sqlite3_reset(st);

	if (!(st = vault_db_stmt(db, sql_walk, e)))
		goto out;
	uint8_t hash[AUDIT_HASH_BYTES];
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		const char *col = bad_column(st);
		if (col) {
			what(res, id, "row %" PRId64 " was edited: column %s does not hold what the schema "
			     "says", id, col);
			break;
		}
		struct audit_row row;
		row_from(st, &row);
		const uint8_t *prev = sqlite3_column_blob(st, 18);
		const uint8_t *stored = sqlite3_column_blob(st, 19);
		audit_hash(prev, id, &row, hash);
		int content_ok = !memcmp(hash, stored, AUDIT_HASH_BYTES);
		int link_ok = !memcmp(prev, exp_prev, AUDIT_HASH_BYTES);
		if (!res->rows)
			res->first_id = id;
		if (!content_ok || !link_ok || id != exp_id) {
			diagnose(res, id, &row, prev, stored, content_ok, link_ok, exp_id, exp_prev, pred);
			break;
		}
		res->rows++;
		res->last_id = id;
		memcpy(res->last_hash, stored, AUDIT_HASH_BYTES);
		memcpy(exp_prev, stored, AUDIT_HASH_BYTES);
		exp_id = id + 1;
		snprintf(pred, sizeof pred, "row %" PRId64, id);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		vault_fail_sql(e, h, rc, "reading the audit trail");
		goto out;
	}
	if (!res->broken) {
		/* Rows removed from the end leave the sequence ahead of the last id. */
		if (!(st = vault_db_stmt(db, sql_seq, e)))
			goto out;
		int64_t seq = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
		sqlite3_reset(st);
		if (seq >= exp_id) {
			if (seq == exp_id)
				what(res, exp_id, "row %" PRId64 " (the last one written) was deleted", exp_id);
			else
				what(res, exp_id, "rows %" PRId64 "..%" PRId64 " (the last ones written) were "
				     "deleted", exp_id, seq);
		}
	}
	ret = 0;
out:
	if (own)
		sqlite3_exec(h, "COMMIT", NULL, NULL, NULL);
	return ret;
}

/* ---- prune ---------------------------------------------------------------- */

static const char sql_cut[] =
	"SELECT id, prev_hash FROM audit WHERE time_ns >= ?1 ORDER BY id LIMIT 1";
static const char sql_prune[] = "DELETE FROM audit WHERE id < ?1";

int audit_prune(struct vault_db *db, int64_t before_ns, const struct audit_row *who,
		int64_t *removed, struct vault_err *e)
{
	sqlite3 *h = vault_db_handle(db);
	if (removed)
		*removed = 0;
	if (before_ns <= 0)
		return vault_fail(e, VAULT_EINVAL, "prune needs a time after the epoch");
	if (vault_db_begin(db, e) < 0)
		return -1;
	int64_t next_id, cut_id;
	uint8_t last[AUDIT_HASH_BYTES], cut_hash[AUDIT_HASH_BYTES];
	if (chain_head(db, &next_id, last, e) < 0)
		goto fail;
	sqlite3_stmt *st = vault_db_stmt(db, sql_cut, e);
	if (!st)
		goto fail;
	sqlite3_bind_int64(st, 1, before_ns);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		/* Keep everything from the first row that is new enough. */
		cut_id = sqlite3_column_int64(st, 0);
		memset(cut_hash, 0, sizeof cut_hash);
		if (sqlite3_column_bytes(st, 1) == AUDIT_HASH_BYTES)
			memcpy(cut_hash, sqlite3_column_blob(st, 1), AUDIT_HASH_BYTES);
	} else if (rc == SQLITE_DONE) {
		/* Every row is older: the anchor itself starts the trail. */
		cut_id = next_id;
		memcpy(cut_hash, last, AUDIT_HASH_BYTES);
	} else {
		sqlite3_reset(st);
		vault_fail_sql(e, h, rc, "finding where to prune the audit trail");
		goto fail;
	}
	sqlite3_reset(st);
	if (!(st = vault_db_stmt(db, sql_prune, e)))
		goto fail;
	sqlite3_bind_int64(st, 1, cut_id);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		vault_fail_sql(e, h, rc, "pruning the audit trail");
		goto fail;
	}
	int64_t n = sqlite3_changes(h);

	char hx[2 * AUDIT_HASH_BYTES + 1], reason[160];
	hex(cut_hash, AUDIT_HASH_BYTES, hx);
	snprintf(reason, sizeof reason, "cut at id %" PRId64 " prev_hash %s; removed %" PRId64 " rows",
		 cut_id, hx, n);
	struct audit_row a = {
		.uid = -1, .gid = -1, .pid = -1, .tgid = -1, .sudo_uid = -1,
	};
	if (who) {
		a.uid = who->uid;
		a.gid = who->gid;
		a.pid = who->pid;
		a.tgid = who->tgid;
		a.sudo_uid = who->sudo_uid;
		a.agent = who->agent;
	}
	a.event = AUDIT_EVENT_PRUNE;
	a.result = "ok";
	a.reason = reason;
	a.count = 1;
	if (append_rows(db, &a, 1, NULL, last, e) < 0)
		goto fail;
	if (vault_db_commit(db, e) < 0)
		goto fail;
	if (removed)
		*removed = n;
	return 0;
fail:
	vault_db_rollback(db);
	return -1;
}

/* ---- the writer ----------------------------------------------------------- */

struct slot;

/* One queued row: the row, its strings copied behind it in one allocation. */
struct entry {
	struct entry *next;
	struct audit_row row;
	struct slot *slot;   /* the coalescing slot whose first row this is */
	int wait, done, rc;
	char buf[];
};

/* A (tgid, path) whose denied lookups are being coalesced in second `sec`. */
struct slot {
	struct entry *tmpl;    /* owned copy of the first row; NULL: slot free */
	struct entry *queued;  /* that row while it is still in the queue */
	int64_t sec;
	int64_t suppressed;    /* repeats after the first row left the queue */
	int64_t last_ns;
};

/* A uid's token bucket for refused lookups and opens (limitable()): credit
 * in ns, refilled by elapsed monotonic time up to LIMIT_FULL; a row costs
 * LIMIT_COST. Rows without credit are counted in excess, one summary row per
 * (uid, second of time_ns). */
struct bucket {
	int used;
	int64_t uid;
	int64_t credit, last;  /* credit at monotonic time last */
	int64_t excess;        /* rows suppressed in second sec */
	int64_t sec, last_ns;  /* ... and the time of the last of them */
};

struct audit_writer {
	pthread_mutex_t mu;
	pthread_cond_t work;   /* the writer waits for rows */
	pthread_cond_t done;   /* submitters wait for their batch */
	pthread_t thread;
	struct vault_db *db;
	struct entry *head, **tail;
	int queued, cap, stopping;
	int queued_nowait;     /* rows nobody waits for: these alone are capped */
	int busy;              /* a batch is being written (by anyone) */
	int ck_wanted;         /* the WAL has grown past CHECKPOINT_PAGES (under mu) */
	int64_t dropped;
	int64_t noted, noted_ns; /* dropped rows an audit.dropped row counted, and when */
	const char *drop_why;  /* what lost the latest of them */
	int64_t limited;       /* rows the per-uid limit counted into summaries */
	int64_t reserve;       /* bytes kept free for the rows of opens (0: none) */
	int64_t free_bytes;    /* on the store's filesystem at the last batch (-1: unknown) */
	int low;               /* that was below the reserve */
	dev_t dev;             /* the store the writer opened */
	ino_t ino;
	struct bucket buckets[LIMIT_UIDS], overflow;
	int has_err;
	char err[sizeof(((struct vault_err *)0)->msg) + 64];
	struct slot slots[COALESCE_SLOTS];
	const struct audit_row **rows; /* the batch being written (writer only) */
	size_t rows_cap;
};

static struct entry *entry_new(const struct audit_row *r)
{
	const char *src[8] = { r->event, r->result, r->reason, r->agent, r->exe, r->cgroup, r->lsm, r->path };
	size_t len[8], total = 0;
	for (int i = 0; i < 8; i++) {
		len[i] = src[i] ? strnlen(src[i], AUDIT_TEXT_MAX) : 0; /* longer: cut */
		total += src[i] ? len[i] + 1 : 0;
	}
	struct entry *e = malloc(sizeof *e + total);
	if (!e)
		return NULL;
	memset(e, 0, sizeof *e);
	e->row = *r;
	const char **dst[8] = { &e->row.event, &e->row.result, &e->row.reason, &e->row.agent,
				&e->row.exe, &e->row.cgroup, &e->row.lsm, &e->row.path };
	char *p = e->buf;
	for (int i = 0; i < 8; i++) {
		if (!src[i]) {
			*dst[i] = NULL;
			continue;
		}
		memcpy(p, src[i], len[i]);
		p[len[i]] = 0;
		*dst[i] = p;
		p += len[i] + 1;
	}
	if (e->row.count <= 0)
		e->row.count = 1;
	return e;
}

static void enqueue(struct audit_writer *w, struct entry *e)
{
	e->next = NULL;
	*w->tail = e;
	w->tail = &e->next;
	w->queued++;
	w->queued_nowait += !e->wait;
}

static void set_err(struct audit_writer *w, const char *msg)
{
	snprintf(w->err, sizeof w->err, "%s", msg);
	w->has_err = 1;
}

static int coalescible(const struct audit_row *r, int wait)
{
	/* every refused lookup (denied, unknown-caller, ambiguous, error): a
	 * probing loop must not flood the store, whoever runs it */
	return !wait && !strcmp(r->event, "lookup") && strcmp(r->result, "granted");
}

static int slot_key_is(const struct slot *s, const struct audit_row *r)
{
	if (!s->tmpl || s->tmpl->row.tgid != r->tgid)
		return 0;
	const char *a = s->tmpl->row.path, *b = r->path;
	return (!a && !b) || (a && b && !strncmp(a, b, AUDIT_TEXT_MAX));
}

static int slot_matches(const struct slot *s, const struct audit_row *r, int64_t sec)
{
	return slot_key_is(s, r) && s->sec == sec;
}

/* The slot of (tgid, path): the one holding it among SLOT_PROBE neighbours,
 * else a free one, else the one with the oldest second (to be flushed). */
#define SLOT_PROBE 4
static struct slot *slot_of(struct audit_writer *w, const struct audit_row *r)
{
	uint64_t hsh = 1469598103934665603ULL ^ (uint64_t)r->tgid; /* FNV-1a */
	for (const char *p = r->path ? r->path : ""; *p; p++)
		hsh = (hsh ^ (unsigned char)*p) * 1099511628211ULL;
	struct slot *spare = NULL;
	for (int k = 0; k < SLOT_PROBE; k++) {
		struct slot *s = &w->slots[(hsh + (uint64_t)k) % COALESCE_SLOTS];
		if (slot_key_is(s, r))
			return s;
		if (!spare || (spare->tmpl && (!s->tmpl || s->sec < spare->sec)))
			spare = s;
	}
	return spare;
}

/* Count a repeat of the slot's row (mu held): into the row while it is
 * still queued, else as suppressed, for the row written when the second
 * ends. */
static void slot_count(struct audit_writer *w, struct slot *s, const struct audit_row *r)
{
	if (s->queued) {
		s->queued->row.count += r->count;
		return;
	}
	if (!s->suppressed) /* arm the writer's end-of-second wake-up */
		pthread_cond_signal(&w->work);
	s->suppressed += r->count;
	if (r->time_ns > s->last_ns)
		s->last_ns = r->time_ns;
}

/* ---- the per-uid limit of refused rows ---------------------------------- */

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* Rows a caller can have written at will: every refused lookup, and opens
 * refused for who the caller is or what it may read. Never a granted open,
 * nor the error of an open an agent was granted. */
static int limitable(const struct audit_row *r)
{
	if (!strcmp(r->result, "granted"))
		return 0;
	if (!strcmp(r->event, "lookup"))
		return 1;
	if (!strcmp(r->event, "launch")) /* a refused launch socket client */
		return !strcmp(r->result, "denied");
	return !strcmp(r->event, "open") && (strcmp(r->result, "error") || !r->agent);
}

/* uid's bucket (mu held): the one holding it among LIMIT_PROBE neighbours,
 * else a free one or one that is idle (full, nothing counted: the same as a
 * new one), else the bucket all other uids share. */
static struct bucket *bucket_of(struct audit_writer *w, int64_t uid, int64_t now)
{
	uint64_t h = ((uint64_t)uid * 0x9e3779b97f4a7c15ULL) >> 32;
	struct bucket *spare = NULL;
	for (int k = 0; k < LIMIT_PROBE; k++) {
		struct bucket *b = &w->buckets[(h + (uint64_t)k) % LIMIT_UIDS];
		if (b->used && b->uid == uid)
			return b;
		if (!spare && (!b->used || (!b->excess && now - b->last + b->credit >= LIMIT_FULL)))
			spare = b;
	}
	if (!spare)
		return &w->overflow;
	memset(spare, 0, sizeof *spare);
	spare->used = 1;
	spare->uid = uid;
	spare->credit = LIMIT_FULL;
	spare->last = now;
	return spare;
}

/* Queue the summary row of the bucket's excess (mu held). */
static void bucket_flush(struct audit_writer *w, struct bucket *b)
{
	if (!b->excess)
		return;
	char reason[200];
	snprintf(reason, sizeof reason, "refused lookups and opens over the limit of %d a second per uid"
		 " (burst %d)%s: counted here, not written one by one", AUDIT_LIMIT_RATE, AUDIT_LIMIT_BURST,
		 b == &w->overflow ? ", of uids beyond the ones tracked apart" : "");
	struct audit_row r = {
		.time_ns = b->last_ns, .event = AUDIT_EVENT_LIMITED, .result = "denied", .reason = reason,
		.uid = b == &w->overflow ? -1 : b->uid, .gid = -1, .pid = -1, .tgid = -1, .sudo_uid = -1,
		.count = b->excess,
	};
	struct entry *e = w->queued_nowait < w->cap ? entry_new(&r) : NULL;
	if (e) {
		enqueue(w, e);
	} else {
		w->dropped += b->excess;
		w->drop_why = "the audit queue was full";
	}
	b->excess = 0;
}

/* May the limitable row r be written (mu held)? 1: a token was taken; 0: it
 * is counted into its uid's summary instead. */
static int take(struct audit_writer *w, const struct audit_row *r)
{
	int64_t now = mono_ns();
	struct bucket *b = bucket_of(w, r->uid, now);
	b->credit += now - b->last;
	if (b->credit > LIMIT_FULL)
		b->credit = LIMIT_FULL;
	b->last = now;
	if (b->credit >= LIMIT_COST) {
		b->credit -= LIMIT_COST;
		return 1;
	}
	int64_t sec = r->time_ns / NS_PER_S;
	if (b->excess && b->sec != sec)
		bucket_flush(w, b);
	if (!b->excess) {
		b->sec = sec;
		b->last_ns = 0;
		pthread_cond_signal(&w->work); /* arm the writer's end-of-second wake-up */
	}
	b->excess += r->count;
	w->limited += r->count;
	if (r->time_ns > b->last_ns)
		b->last_ns = r->time_ns;
	return 0;
}

/* Queue the summaries of seconds before now_sec (mu held). 1 when a bucket
 * still counts rows of the current second. */
static int buckets_flush(struct audit_writer *w, int64_t now_sec)
{
	int pending = 0;
	for (int i = 0; i <= LIMIT_UIDS; i++) {
		struct bucket *b = i < LIMIT_UIDS ? &w->buckets[i] : &w->overflow;
		if (!b->excess)
			continue;
		if (b->sec < now_sec)
			bucket_flush(w, b);
		else
			pending = 1;
	}
	return pending;
}

/* Queue one audit.dropped row for the rows lost since the last one, at most
 * one a second and not while the store fails (mu held). 1 when lost rows
 * wait for their row. */
static int note_dropped(struct audit_writer *w, int64_t now_ns, int force)
{
	if (w->dropped == w->noted)
		return 0;
	if (w->has_err && force)
		return 0; /* stopping on a failing store: its row would only be lost too */
	if (!force && (w->has_err || now_ns - w->noted_ns < NS_PER_S))
		return 1;
	char reason[160];
	snprintf(reason, sizeof reason, "rows of refused lookups lost: %s",
		 w->drop_why ? w->drop_why : "the audit store could not be written");
	struct audit_row r = {
		.event = AUDIT_EVENT_DROPPED, .result = "error", .reason = reason, .uid = -1, .gid = -1,
		.pid = -1, .tgid = -1, .sudo_uid = -1, .count = w->dropped - w->noted, .time_ns = now_ns,
	};
	struct entry *e = entry_new(&r); /* one a second: not capped */
	if (!e)
		return 1;
	enqueue(w, e);
	w->noted = w->dropped;
	w->noted_ns = now_ns;
	return 0;
}

/* Queue the row that counts the repeats the slot suppressed, then free it. */
static void slot_flush(struct audit_writer *w, struct slot *s)
{
	if (!s->tmpl)
		return;
	if (s->suppressed > 0) {
		s->tmpl->row.count = s->suppressed;
		s->tmpl->row.time_ns = s->last_ns;
		if (w->queued_nowait >= w->cap) {
			w->dropped += s->suppressed;
			w->drop_why = "the audit queue was full";
		} else if (take(w, &s->tmpl->row)) {
			struct entry *e = s->tmpl;
			e->slot = NULL;
			enqueue(w, e);
			s->tmpl = NULL;
		}
	}
	free(s->tmpl);
	if (s->queued)
		s->queued->slot = NULL;
	memset(s, 0, sizeof *s);
}

/* Flush the slots of seconds before now_sec (all with now_sec = INT64_MAX).
 * 1 when a slot still holds suppressed repeats of the current second. */
static int slots_flush(struct audit_writer *w, int64_t now_sec)
{
	int pending = 0;
	for (int i = 0; i < COALESCE_SLOTS; i++) {
		struct slot *s = &w->slots[i];
		if (!s->tmpl)
			continue;
		if (s->sec < now_sec)
			slot_flush(w, s);
		else if (s->suppressed > 0)
			pending = 1;
	}
	return pending;
}

static void complete(struct audit_writer *w, struct entry *batch, int rc)
{
	while (batch) {
		struct entry *next = batch->next;
		if (batch->wait) {
			batch->rc = rc;
			batch->done = 1; /* the submitter frees it */
		} else {
			if (rc < 0) {
				w->dropped += batch->row.count;
				w->drop_why = "the audit store could not be written";
			}
			free(batch);
		}
		batch = next;
	}
	pthread_cond_broadcast(&w->done);
}

static int write_batch(struct audit_writer *w, struct entry *batch, size_t n, struct vault_err *e)
{
	if (n > w->rows_cap) {
		size_t cap = w->rows_cap ? w->rows_cap : 64;
		while (cap < n)
			cap *= 2;
		const struct audit_row **rows = realloc(w->rows, cap * sizeof *rows);
		if (!rows)
			return vault_fail(e, VAULT_ENOMEM, "out of memory");
		w->rows = rows;
		w->rows_cap = cap;
	}
	size_t i = 0;
	for (struct entry *p = batch; p; p = p->next)
		w->rows[i++] = &p->row;
	return append_rows(w->db, NULL, n, w->rows, NULL, e);
}

/* Is the file at the configured path still the store this writer writes?
 * (at most once per batch: SQLite compares the path's inode with its
 * descriptor's, and the path's (dev, ino) must be those seen at start; a
 * removed file has no path, a moved one another inode there) */
static int store_check(struct audit_writer *w, struct vault_err *e)
{
	sqlite3 *h = vault_db_handle(w->db);
	const char *path = sqlite3_db_filename(h, "main");
	int moved = 0;
	struct stat st;
	if (sqlite3_file_control(h, "main", SQLITE_FCNTL_HAS_MOVED, &moved) != SQLITE_OK)
		moved = 0;
	if (!moved && (!path || stat(path, &st) < 0 || st.st_dev != w->dev || st.st_ino != w->ino))
		moved = 1;
	if (moved)
		return vault_fail(e, VAULT_EIO, "the audit store was removed or moved away: the file at that path "
				  "is not the one this daemon writes; opens fail until it is back");
	return 0;
}

/* Free space on the store's filesystem (bytes), or -1 when unknown. */
static int64_t store_free(struct audit_writer *w)
{
	const char *path = sqlite3_db_filename(vault_db_handle(w->db), "main");
	struct statvfs sv;
	if (!path || statvfs(path, &sv) < 0)
		return -1;
	return (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
}

/* Below the reserve: keep the rows of opens (and what counts the loss),
 * free the others and add their counts to *lost. The batch is private to
 * lead() and none of the freed rows has a waiter. */
static struct entry *keep_opens(struct entry *batch, size_t *n, int64_t *lost)
{
	struct entry *head = NULL, **tail = &head;
	while (batch) {
		struct entry *next = batch->next;
		if (batch->wait || !strcmp(batch->row.event, "open") ||
		    !strcmp(batch->row.event, AUDIT_EVENT_DROPPED)) {
			*tail = batch;
			tail = &batch->next;
		} else {
			*lost += batch->row.count;
			(*n)--;
			free(batch);
		}
		batch = next;
	}
	*tail = NULL;
	return head;
}

/* Take the whole queue and write it in one transaction; called with mu
 * held and !busy, returns with mu held. The caller is the writer thread or
 * a submitter that leads the commit itself (no hand-off to another thread
 * when nobody else is writing). */
static void lead(struct audit_writer *w)
{
	struct entry *batch = w->head;
	size_t n = (size_t)w->queued;
	for (struct entry *p = batch; p; p = p->next) {
		if (p->slot) {
			/* repeats from now on are counted in the slot */
			if (p->slot->queued == p)
				p->slot->queued = NULL;
			p->slot = NULL;
		}
	}
	w->head = NULL;
	w->tail = &w->head;
	w->queued = 0;
	w->queued_nowait = 0;
	w->busy = 1;
	int64_t reserve = w->reserve;
	pthread_mutex_unlock(&w->mu);

	struct vault_err e = { 0 };
	int64_t lost = 0, avail = -1;
	int rc = store_check(w, &e);
	if (rc == 0 && reserve > 0 && (avail = store_free(w)) >= 0 && avail < reserve)
		batch = keep_opens(batch, &n, &lost);
	if (rc == 0 && n > 0)
		rc = write_batch(w, batch, n, &e);

	pthread_mutex_lock(&w->mu);
	w->busy = 0;
	w->free_bytes = avail;
	w->low = lost > 0 || (avail >= 0 && avail < reserve);
	if (lost) {
		w->dropped += lost;
		w->drop_why = "free space on the audit store's filesystem was below [audit] reserve";
	}
	if (rc < 0) {
		char msg[sizeof w->err];
		snprintf(msg, sizeof msg, "cannot write %zu audit row%s to '%s': %s", n, n == 1 ? "" : "s",
			 vault_db_path(w->db), e.msg);
		set_err(w, msg);
	} else {
		w->has_err = 0;
	}
	complete(w, batch, rc);
	/* rows that came during the write: whoever is free leads; a wanted
	 * checkpoint or lost rows to count: the writer thread, now */
	if (w->head || w->ck_wanted || w->dropped != w->noted)
		pthread_cond_signal(&w->work);
}

/* Checkpoints run on the writer thread, not inside the commit that an open
 * waits for: SQLite's auto-checkpoint is off, and the WAL hook asks for one
 * past this many pages. The writer takes the commit token (busy) for it, so
 * no frame is added meanwhile: the checkpoint catches up and the next commit
 * rewinds the WAL instead of growing it. */
#define CHECKPOINT_PAGES 1000

static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct audit_writer *w = arg;
	if (pages >= CHECKPOINT_PAGES) {
		/* called during a commit, with mu released by lead() */
		pthread_mutex_lock(&w->mu);
		if (!w->ck_wanted) {
			w->ck_wanted = 1;
			pthread_cond_signal(&w->work);
		}
		pthread_mutex_unlock(&w->mu);
	}
	return SQLITE_OK;
}

static void *writer_main(void *arg)
{
	struct audit_writer *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		if (w->ck_wanted && !w->busy) {
			w->busy = 1; /* the commit token: no frame is added meanwhile */
			w->ck_wanted = 0;
			pthread_mutex_unlock(&w->mu);
			sqlite3_wal_checkpoint_v2(vault_db_handle(w->db), NULL, SQLITE_CHECKPOINT_PASSIVE,
						  NULL, NULL);
			pthread_mutex_lock(&w->mu);
			w->busy = 0;
			pthread_cond_broadcast(&w->done); /* waiters may lead now */
			continue;
		}
		int64_t now = vault_now_ns();
		int64_t now_sec = w->stopping ? INT64_MAX : now / NS_PER_S;
		int pending = slots_flush(w, now_sec);
		pending |= buckets_flush(w, now_sec);
		pending |= note_dropped(w, now, w->stopping);
		if ((!w->head || w->busy) && !w->stopping) {
			if (pending) {
				/* wake just after this second ends to write the repeats */
				struct timespec ts;
				clock_gettime(CLOCK_REALTIME, &ts);
				ts.tv_sec += 1;
				ts.tv_nsec = 2000000;
				pthread_cond_timedwait(&w->work, &w->mu, &ts);
			} else {
				pthread_cond_wait(&w->work, &w->mu);
			}
			continue;
		}
		if (w->busy) { /* stopping: let the leader finish */
			pthread_cond_wait(&w->done, &w->mu);
			continue;
		}
		if (!w->head)
			break; /* stopping, and everything is written */
		lead(w);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static const char sql_writer_check[] = "SELECT id FROM audit LIMIT 0";

struct audit_writer *audit_writer_start(const char *db_path, enum vault_sync sync,
					int queue, struct vault_err *e)
{
	if (sodium_init() < 0) {
		vault_fail(e, VAULT_ECRYPTO, "libsodium failed to initialise");
		return NULL;
	}
	struct audit_writer *w = calloc(1, sizeof *w);
	if (!w) {
		vault_fail(e, VAULT_ENOMEM, "out of memory");
		return NULL;
	}
	w->cap = queue > 0 ? queue : 4096;
	w->tail = &w->head;
	w->free_bytes = -1;
	w->overflow.used = 1;
	w->overflow.uid = -1;
	w->overflow.credit = LIMIT_FULL;
	w->overflow.last = mono_ns();
	if (!(w->db = vault_db_open(db_path, VAULT_DB_NOMIGRATE, e)))
		goto err;
	sqlite3 *h = vault_db_handle(w->db);
	int rc = sqlite3_exec(h, sync == VAULT_SYNC_FULL ? "PRAGMA synchronous = FULL"
							 : "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		vault_fail_sql(e, h, rc, "setting the audit sync mode");
		goto err;
	}
	/* Prepare now: a database without the audit table fails here, once,
	 * and the batches never prepare again. */
	sqlite3_exec(h, "PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -512;"
		     " PRAGMA journal_size_limit = 67108864", NULL, NULL, NULL);
	sqlite3_wal_hook(h, wal_hook, w);
	struct stat st;
	const char *real = sqlite3_db_filename(h, "main");
	if (!real || stat(real, &st) < 0) {
		vault_fail(e, VAULT_EIO, "cannot stat the audit store '%s': %s", db_path, strerror(errno));
		goto err;
	}
	w->dev = st.st_dev;
	w->ino = st.st_ino;
	if (!vault_db_stmt(w->db, sql_writer_check, e) || !vault_db_stmt(w->db, sql_last, e) ||
	    !vault_db_stmt(w->db, sql_seq, e) || !vault_db_stmt(w->db, sql_insert, e))
		goto err;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->work, NULL);
	pthread_cond_init(&w->done, NULL);
	if ((rc = pthread_create(&w->thread, NULL, writer_main, w)) != 0) {
		vault_fail(e, VAULT_ENOMEM, "cannot start the audit writer thread: %s", strerror(rc));
		pthread_cond_destroy(&w->done);
		pthread_cond_destroy(&w->work);
		pthread_mutex_destroy(&w->mu);
		goto err;
	}
	return w;
err:
	vault_db_close(w->db);
	free(w);
	return NULL;
}

int audit_writer_submit(struct audit_writer *w, const struct audit_row *row, int wait)
{
	if (!w || !row || row_check(row, 0, 0, NULL) < 0)
		return -1;
	struct audit_row r = *row;
	if (r.time_ns == 0)
		r.time_ns = vault_now_ns(); /* the time of the event, not of the commit */
	if (r.count <= 0)
		r.count = 1;
	int co = coalescible(&r, wait);
	struct entry *e = NULL;
	if (!co && !(e = entry_new(&r)))
		goto nomem;

	pthread_mutex_lock(&w->mu);
	if (w->stopping) {
		pthread_mutex_unlock(&w->mu);
		free(e);
		return -1;
	}
	if (co) {
		int64_t sec = r.time_ns / NS_PER_S;
		struct slot *s = slot_of(w, &r);
		if (slot_matches(s, &r, sec)) {
			slot_count(w, s, &r);
			pthread_mutex_unlock(&w->mu);
			return 0;
		}
		if (!take(w, &r)) { /* over its uid's limit: counted in a summary */
			pthread_mutex_unlock(&w->mu);
			return 0;
		}
		pthread_mutex_unlock(&w->mu);
		/* allocate outside the lock */
		struct entry *tmpl = entry_new(&r);
		if (!tmpl || !(e = entry_new(&r))) {
			free(tmpl);
			goto nomem;
		}
		pthread_mutex_lock(&w->mu);
		if (w->stopping) {
			pthread_mutex_unlock(&w->mu);
			free(tmpl);
			free(e);
			return -1;
		}
		s = slot_of(w, &r); /* another thread may have got there first */
		if (slot_matches(s, &r, sec)) {
			slot_count(w, s, &r);
			pthread_mutex_unlock(&w->mu);
			free(tmpl);
			free(e);
			return 0;
		}
		slot_flush(w, s);
		if (w->queued_nowait >= w->cap) {
			free(tmpl);
			goto full;
		}
		s->tmpl = tmpl;
		s->queued = e;
		s->sec = sec;
		e->slot = s;
	} else if (limitable(&r) && !take(w, &r)) {
		pthread_mutex_unlock(&w->mu);
		free(e);
		return 0;
	} else if (!wait && w->queued_nowait >= w->cap) {
		goto full; /* a waited row is never refused for the rows nobody waits for */
	}
	e->wait = wait;
	enqueue(w, e);
	if (!wait) {
		pthread_cond_signal(&w->work);
		pthread_mutex_unlock(&w->mu);
		return 0;
	}
	/* Group commit without a hand-off: when nobody is writing, this
	 * thread writes the queue (its own row and any others) itself; else
	 * it waits for the batch in flight and leads the next one. */
	while (!e->done) {
		if (!w->busy && w->head && !w->ck_wanted)
			lead(w);
		else /* a batch in flight, or the writer's checkpoint goes first */
			pthread_cond_wait(&w->done, &w->mu);
	}
	int rc = e->rc;
	pthread_mutex_unlock(&w->mu);
	free(e);
	return rc < 0 ? -1 : 0;

full: /* never a waited row */
	w->dropped += r.count;
	w->drop_why = "the audit queue was full";
	pthread_cond_signal(&w->work);
	pthread_mutex_unlock(&w->mu);
	free(e);
	return -1;
nomem:
	pthread_mutex_lock(&w->mu);
	if (wait) {
		set_err(w, "out of memory queueing an audit row");
	} else {
		w->dropped += r.count;
		w->drop_why = "out of memory";
	}
	pthread_mutex_unlock(&w->mu);
	return -1;
}

const char *audit_writer_error(struct audit_writer *w)
{
	static __thread char copy[sizeof(((struct audit_writer *)0)->err)];
	if (!w)
		return NULL;
	pthread_mutex_lock(&w->mu);
	int has = w->has_err;
	if (has)
		memcpy(copy, w->err, sizeof copy);
	pthread_mutex_unlock(&w->mu);
	return has ? copy : NULL;
}

void audit_writer_set_reserve(struct audit_writer *w, int64_t bytes)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->reserve = bytes > 0 ? bytes : 0;
	pthread_mutex_unlock(&w->mu);
}

void audit_writer_status(struct audit_writer *w, struct audit_writer_status *st)
{
	memset(st, 0, sizeof *st);
	st->free_bytes = -1;
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	st->dropped = w->dropped;
	st->limited = w->limited;
	st->free_bytes = w->free_bytes;
	st->reserve = w->reserve;
	st->low = w->low;
	snprintf(st->drop_why, sizeof st->drop_why, "%s", w->drop_why ? w->drop_why : "");
	pthread_mutex_unlock(&w->mu);
}

int64_t audit_writer_dropped(struct audit_writer *w)
{
	if (!w)
		return 0;
	pthread_mutex_lock(&w->mu);
	int64_t n = w->dropped;
	pthread_mutex_unlock(&w->mu);
	return n;
}

void audit_writer_stop(struct audit_writer *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stopping = 1;
	pthread_cond_signal(&w->work);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	for (int i = 0; i < COALESCE_SLOTS; i++)
		free(w->slots[i].tmpl);
	free(w->rows);
	vault_db_close(w->db);
	pthread_cond_destroy(&w->done);
	pthread_cond_destroy(&w->work);
	pthread_mutex_destroy(&w->mu);
	free(w);
}
