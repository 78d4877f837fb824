/* fuzz_audit.c - the audit chain (acl/audit.c) against a mutated row set.
 * A store of a dozen rows (NULL and set fields, a prune anchor in the
 * middle) is built once; each input is a program of edits run inside a
 * transaction that is rolled back afterwards:
 *   op byte % 4: 0 set a column of a row to a value, 1 delete a row,
 *                2 copy a row to another id, 3 renumber a row,
 *   then a row id byte (low 4 bits: id 0..15; high bit: an extreme id),
 *   then for 0: a column byte and a value (type byte: int 8 bytes, text or
 *   blob with a length byte, or NULL), for 2 and 3: the new id byte.
 * Then audit_verify, audit_each and audit_query must never crash, and
 * verify must call the trail broken exactly when the rows (or the id
 * sequence) differ from the untouched store: an edit that no hash covers is
 * a hole in the chain. Nothing else is mutated (the id sequence itself,
 * lowered with the rows cut from the end, is the documented limit). */
#include <sqlite3.h>
#include <unistd.h>

#include "acl/audit.h"
#include "tests/fuzz/fuzz.h"

static struct vault_db *db;
static char path[PATH_MAX];
static char *pristine;
static size_t pristine_len;

static const char *const cols[] = {
	"id", "time_ns", "event", "result", "reason", "agent", "uid", "gid", "pid", "tgid",
	"sudo_uid", "exe", "cgroup", "lsm", "path", "secret_id", "version", "count",
	"prev_hash", "hash",
};
static const int64_t extreme[] = { INT64_MIN, INT64_MIN + 1, -1, 0, INT64_MAX - 1, INT64_MAX,
				   1LL << 32, 100 };

static void cleanup(void)
{
	char p[PATH_MAX];
	vault_db_close(db);
	unlink(path);
	snprintf(p, sizeof p, "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", path);
	unlink(p);
	rmdir(fuzz_tmpdir());
}

/* Every row and the id sequence, as bytes (type, length, value per column). */
static char *dump(size_t *len)
{
	sqlite3 *h = vault_db_handle(db);
	sqlite3_stmt *st;
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	if (!f || sqlite3_prepare_v2(h, "SELECT *, (SELECT seq FROM sqlite_sequence WHERE name = 'audit')"
				     " FROM audit ORDER BY id", -1, &st, NULL) != SQLITE_OK)
		abort();
	while (sqlite3_step(st) == SQLITE_ROW) {
		for (int i = 0; i < sqlite3_column_count(st); i++) {
			int t = sqlite3_column_type(st, i);
			int64_t v = t == SQLITE_INTEGER ? sqlite3_column_int64(st, i) : 0;
			const void *b = t == SQLITE_TEXT || t == SQLITE_BLOB ? sqlite3_column_blob(st, i) : NULL;
			int bl = b ? sqlite3_column_bytes(st, i) : 0;
			fprintf(f, "%d:%lld:%d:", t, (long long)v, bl);
			if (bl)
				fwrite(b, 1, (size_t)bl, f);
		}
		fputc('\n', f);
	}
	sqlite3_finalize(st);
	fclose(f);
	*len = n;
	return buf;
}

static void setup(void)
{
	struct vault_err e;
	struct audit_verify_result r;
	snprintf(path, sizeof path, "%s/audit.db", fuzz_tmpdir());
	if (!(db = audit_db_open(path, VAULT_DB_CREATE, &e)))
		abort();
	atexit(cleanup);
	const int64_t s = 1000000000LL;
	struct audit_row rows[] = {
		{ 1 * s, "init", "ok", NULL, NULL, 0, 0, 1, 1, -1, NULL, NULL, NULL, NULL, 0, 0, 1 },
		{ 2 * s, "open", "granted", NULL, "mcp", 1000, 1000, 42, 42, -1, "/usr/bin/node",
		  "/user.slice/x.scope", "unconfined", "stripe/test_key", 1, 1, 1 },
		{ 3 * s, "lookup", "denied", "no grant", "mcp", 1000, 1000, 43, 43, -1, "/bin/sh", "/a",
		  NULL, "github/token", 2, 0, 7 },
		{ 4 * s, "grant", "ok", NULL, "mcp", 0, 0, 9, 9, 1000, NULL, NULL, NULL,
		  "github/token", 2, 0, 1 },
		{ 5 * s, "open", "unknown-caller", "no binding", NULL, 1001, 1001, 50, 49, -1, "", "",
		  "", "x/y", 0, 0, 1 },
		{ 6 * s, "rotate", "ok", "", NULL, 0, 0, 9, 9, -1, NULL, NULL, NULL, "stripe/test_key", 1, 2,
		  1 },
	};
	struct audit_row more[] = {
		{ 8 * s, "open", "granted", NULL, "mcp", 1000, 1000, 44, 44, -1, "/usr/bin/node", "/u",
		  NULL, "stripe/test_key", 1, 2, 1 },
		{ 9 * s, "open", "ambiguous", "two bindings", NULL, 1000, 1000, 45, 45, -1, NULL, NULL,
		  NULL, "stripe/test_key", 1, 2, 1 },
		{ 10 * s, "revoke", "ok", NULL, "mcp", 0, 0, 9, 9, -1, NULL, NULL, NULL, "github/token", 2,
		  0, 1 },
	};
	struct audit_row who = { .uid = 0, .gid = 0, .pid = 9, .tgid = 9, .sudo_uid = -1 };
	if (audit_append(db, rows, sizeof rows / sizeof *rows, &e) < 0 ||
	    audit_prune(db, 3 * s, &who, NULL, &e) < 0 ||
	    audit_append(db, more, sizeof more / sizeof *more, &e) < 0 ||
	    audit_verify(db, &r, &e) < 0 || r.broken || r.rows < 8)
		abort();
	pristine = dump(&pristine_len);
}

struct cursor {
	const uint8_t *p;
	size_t n;
};

static int take(struct cursor *c, uint8_t *b)
{
	if (!c->n)
		return 0;
	*b = *c->p++;
	c->n--;
	return 1;
}

static int64_t row_id(uint8_t b)
{
	return b & 0x80 ? extreme[b & 7] : (int64_t)(b & 15);
}

static void run(const char *sql, int64_t a, int64_t b)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(vault_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
		abort();
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	sqlite3_step(st); /* a constraint (duplicate id, STRICT type) may refuse it */
	sqlite3_finalize(st);
}

/* op 0: set column col of row id to the value at the cursor. */
static void set_column(struct cursor *c, int64_t id)
{
	uint8_t cb, tb, lb = 0, v[8] = { 0 };
	char sql[96];
	sqlite3_stmt *st;
	if (!take(c, &cb) || !take(c, &tb))
		return;
	snprintf(sql, sizeof sql, "UPDATE audit SET %s = ?2 WHERE id = ?1", cols[cb % 20]);
	if (sqlite3_prepare_v2(vault_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
		abort();
	sqlite3_bind_int64(st, 1, id);
	switch (tb % 4) {
	case 0: {
		uint64_t x = 0;
		for (int i = 0; i < 8; i++)
			x = x << 8 | (take(c, &v[i]) ? v[i] : 0);
		sqlite3_bind_int64(st, 2, (int64_t)x);
		break;
	}
	case 1:
	case 2:
		take(c, &lb);
		if (lb > c->n)
			lb = (uint8_t)c->n;
		if (tb % 4 == 1)
			sqlite3_bind_text(st, 2, (const char *)c->p, lb, SQLITE_TRANSIENT);
		else
			sqlite3_bind_blob(st, 2, c->p, lb, SQLITE_TRANSIENT);
		c->p += lb;
		c->n -= lb;
		break;
	default:
		sqlite3_bind_null(st, 2);
	}
	sqlite3_step(st);
	sqlite3_finalize(st);
}

static int count_row(void *arg, int64_t id, const struct audit_row *row)
{
	(*(int64_t *)arg)++;
	return strlen(row->event ? row->event : "") > 1u << 30;
}

static int each_row(void *arg, int64_t id, const struct audit_row *row, const uint8_t *prev,
		    const uint8_t *hash)
{
	(*(int64_t *)arg)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cursor c = { data, size };
	struct audit_verify_result r;
	struct vault_err e;
	uint8_t op, ib, nb;
	int64_t n = 0;

	if (!db)
		setup();
	if (sqlite3_exec(vault_db_handle(db), "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		abort();
	for (int k = 0; k < 8 && take(&c, &op) && take(&c, &ib); k++) {
		int64_t id = row_id(ib);
		switch (op % 4) {
		case 0:
			set_column(&c, id);
			break;
		case 1:
			run("DELETE FROM audit WHERE id = ?1", id, 0);
			break;
		case 2:
			if (take(&c, &nb))
				run("INSERT INTO audit SELECT ?2, time_ns, event, result, reason, agent, uid,"
				    " gid, pid, tgid, sudo_uid, exe, cgroup, lsm, path, secret_id, version,"
				    " count, prev_hash, hash FROM audit WHERE id = ?1", id, row_id(nb));
			break;
		default:
			if (take(&c, &nb))
				run("UPDATE audit SET id = ?2 WHERE id = ?1", id, row_id(nb));
		}
	}
	size_t len;
	char *now = dump(&len);
	int changed = len != pristine_len || memcmp(now, pristine, len) != 0;
	free(now);

	if (audit_verify(db, &r, &e) < 0)
		abort();
	if (r.broken != changed)
		abort(); /* tampering not found, or found where there was none */
	if (r.broken && !r.what[0])
		abort();
	if (audit_each(db, 0, each_row, &n, &e) < 0)
		abort();
	struct audit_filter f = { 0 };
	f.limit = 5;
	if (audit_query(db, &f, count_row, &n, &e) < 0)
		abort();
	if (sqlite3_exec(vault_db_handle(db), "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
		abort();
	return 0;
}
