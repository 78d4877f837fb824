/* test_audit.c - the audit trail: the hash chain catches an edited, deleted,
 * inserted or reordered row and names it; prune keeps it verifiable; the
 * writer group-commits concurrent rows, fails cleanly on a fault and recovers
 * without a restart, and coalesces denied lookups. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "acl/audit.h"

#define NS ((int64_t)1000000000)

struct fx {
	char dir[64];
	char path[128];
	struct vault_db *db;
	int mounted; /* dir/t is a tmpfs this test mounted */
};

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(p);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	assert_non_null(f);
	strcpy(f->dir, "/tmp/test_audit.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/audit.db", f->dir);
	struct vault_err e = { 0 };
	f->db = vault_db_open(f->path, VAULT_DB_CREATE, &e);
	if (!f->db)
		fail_msg("open: %s", e.msg);
	if (audit_schema(f->db, &e) < 0)
		fail_msg("schema: %s", e.msg);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	vault_db_close(f->db);
	if (f->mounted) {
		char t[128];
		snprintf(t, sizeof t, "%s/t", f->dir);
		umount2(t, MNT_DETACH);
	}
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static sqlite3 *H(struct fx *f)
{
	return vault_db_handle(f->db);
}

static void sql(struct fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sql(struct fx *f, const char *fmt, ...)
{
	char q[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q, sizeof q, fmt, ap);
	va_end(ap);
	char *err = NULL;
	if (sqlite3_exec(H(f), q, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", q, err);
}

static int64_t sql_int(struct vault_db *db, const char *q)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(vault_db_handle(db), q, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", q, sqlite3_errmsg(vault_db_handle(db)));
	int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -999;
	sqlite3_finalize(st);
	return v;
}

/* A varied row: NULL and "" strings, labels on some rows. */
static struct audit_row row_n(int64_t i, char *buf, size_t len)
{
	snprintf(buf, len, "stripe/key%" PRId64, i % 17);
	struct audit_row r = {
		.time_ns = 1700000000 * NS + i * NS,
		.event = i % 5 ? "open" : "lookup",
		.result = i % 3 ? "granted" : "denied",
		.reason = i % 3 ? NULL : "not granted",
		.agent = i % 7 == 0 ? NULL : i % 7 == 1 ? "" : (i % 2 ? "bot-a" : "bot-b"),
		.uid = 1000 + i % 3, .gid = 1000, .pid = 4000 + i, .tgid = 4000 + i,
		.sudo_uid = -1,
		.exe = i % 4 ? "/usr/bin/cat" : NULL,
		.cgroup = i % 6 ? "/system.slice/bot.service" : NULL,
		.lsm = NULL,
		.path = buf,
		.secret_id = 1 + i % 17, .version = 1 + i % 3, .count = 1,
	};
	return r;
}

static void append_n(struct fx *f, int64_t n)
{
	struct vault_err e = { 0 };
	int64_t base = sql_int(f->db, "SELECT count(*) FROM audit");
	for (int64_t i = 0; i < n;) {
		struct audit_row rows[100];
		char bufs[100][64];
		size_t k = 0;
		for (; k < 100 && i < n; k++, i++)
			rows[k] = row_n(base + i + 1, bufs[k], sizeof bufs[k]);
		if (audit_append(f->db, rows, k, &e) < 0)
			fail_msg("append: %s", e.msg);
	}
}

static struct audit_verify_result verify(struct fx *f)
{
	struct audit_verify_result r;
	struct vault_err e = { 0 };
	if (audit_verify(f->db, &r, &e) < 0)
		fail_msg("verify: %s", e.msg);
	return r;
}

static void expect_bad(struct fx *f, int64_t id, const char *word)
{
	struct audit_verify_result r = verify(f);
	if (!r.broken || r.bad_id != id || (word && !strstr(r.what, word)))
		fail_msg("expected row %" PRId64 " (%s), got row %" PRId64 ": %s", id, word ? word : "",
			 r.bad_id, r.what);
}

static void expect_intact(struct fx *f, int64_t rows)
{
	struct audit_verify_result r = verify(f);
	if (r.broken || r.bad_id)
		fail_msg("row %" PRId64 ": %s", r.bad_id, r.what);
	assert_int_equal(r.rows, rows);
}

/* ---- schema and encoding -------------------------------------------------- */

static void test_no_value_field(void **state)
{
	struct fx *f = *state;
	static const char *const want[] = {
		"id", "time_ns", "event", "result", "reason", "agent", "uid", "gid", "pid", "tgid",
		"sudo_uid", "exe", "cgroup", "lsm", "path", "secret_id", "version", "count",
		"prev_hash", "hash",
	};
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(H(f), "SELECT name FROM pragma_table_info('audit') ORDER BY cid",
					    -1, &st, NULL), SQLITE_OK);
	size_t i = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		assert_true(i < sizeof want / sizeof *want);
		assert_string_equal((const char *)sqlite3_column_text(st, 0), want[i]);
		i++;
	}
	sqlite3_finalize(st);
	assert_int_equal(i, sizeof want / sizeof *want);
	/* rows outlive secrets: no foreign keys */
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM pragma_foreign_key_list('audit')"), 0);
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM sqlite_schema WHERE type = 'index'"
				 " AND tbl_name = 'audit' AND name LIKE 'audit_%'"), 5);
}

static void hexstr(const uint8_t *b, char *out)
{
	for (int i = 0; i < AUDIT_HASH_BYTES; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

static void test_hash_known_answer(void **state)
{
	(void)state;
	uint8_t zero[AUDIT_HASH_BYTES] = { 0 }, h1[AUDIT_HASH_BYTES], h2[AUDIT_HASH_BYTES];
	struct audit_row r = {
		.time_ns = 1700000000123456789LL, .event = "open", .result = "granted",
		.reason = NULL, .agent = "bot", .uid = 1000, .gid = 1000, .pid = 42, .tgid = 41,
		.sudo_uid = -1, .exe = "/usr/bin/cat", .cgroup = "/a.service", .lsm = NULL,
		.path = "stripe/test_key", .secret_id = 3, .version = 2, .count = 1,
	};
	audit_hash(zero, 1, &r, h1);
	char hx[2 * AUDIT_HASH_BYTES + 1];
	hexstr(h1, hx);
	/* The encoding documented in audit.h, computed independently (Python's
	 * hashlib.blake2b). Changing it breaks every existing trail: don't. */
	assert_string_equal(hx, "6685c3c44d0d647837401ca0cad464d1f9c1ed14ad4e32f3b2c391bc9c6d8616");
	/* NULL and "" differ; the id is covered; field boundaries are kept. */
	r.reason = "";
	audit_hash(zero, 1, &r, h2);
	assert_memory_not_equal(h1, h2, AUDIT_HASH_BYTES);
	r.reason = NULL;
	audit_hash(zero, 2, &r, h2);
	assert_memory_not_equal(h1, h2, AUDIT_HASH_BYTES);
	r.agent = "bo";
	r.exe = "t/usr/bin/cat";
	audit_hash(zero, 1, &r, h2);
	assert_memory_not_equal(h1, h2, AUDIT_HASH_BYTES);
}

/* ---- append and verify ---------------------------------------------------- */

static void test_intact_10000(void **state)
{
	struct fx *f = *state;
	expect_intact(f, 0);
	append_n(f, 10000);
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM audit"), 10000);
	assert_int_equal(sql_int(f->db, "SELECT max(id) - min(id) + 1 FROM audit"), 10000);
	struct audit_verify_result r = verify(f);
	assert_int_equal(r.bad_id, 0);
	assert_int_equal(r.rows, 10000);
	assert_int_equal(r.first_id, 1);
	assert_int_equal(r.last_id, 10000);
	/* the first row chains to zeros */
	assert_int_equal(sql_int(f->db, "SELECT prev_hash = zeroblob(32) FROM audit WHERE id = 1"), 1);
}

static void test_append_checks(void **state)
{
	struct fx *f = *state;
	struct vault_err e = { 0 };
	struct audit_row r = { .event = "open", .result = "granted", .uid = 1, .gid = 1, .pid = 1,
			       .tgid = 1, .sudo_uid = -1 };
	/* defaults: time now, count 1 */
	assert_int_equal(audit_append(f->db, &r, 1, &e), 0);
	assert_int_equal(sql_int(f->db, "SELECT count FROM audit WHERE id = 1"), 1);
	assert_true(sql_int(f->db, "SELECT time_ns FROM audit WHERE id = 1") > 1700000000 * NS);
	r.event = AUDIT_EVENT_PRUNE;
	assert_int_equal(audit_append(f->db, &r, 1, &e), -1);
	assert_int_equal(e.code, VAULT_EINVAL);
	r.event = NULL;
	assert_int_equal(audit_append(f->db, &r, 1, &e), -1);
	char *big = malloc(AUDIT_TEXT_MAX + 2);
	memset(big, 'x', AUDIT_TEXT_MAX + 1);
	big[AUDIT_TEXT_MAX + 1] = 0;
	r.event = "open";
	r.exe = big;
	assert_int_equal(audit_append(f->db, &r, 1, &e), -1);
	free(big);
	/* nested in the caller's transaction: rolled back with it */
	r.exe = NULL;
	assert_int_equal(vault_db_begin(f->db, &e), 0);
	assert_int_equal(audit_append(f->db, &r, 1, &e), 0);
	vault_db_rollback(f->db);
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM audit"), 1);
	assert_int_equal(vault_db_begin(f->db, &e), 0);
	assert_int_equal(audit_append(f->db, &r, 1, &e), 0);
	assert_int_equal(audit_append(f->db, &r, 1, &e), 0);
	assert_int_equal(vault_db_commit(f->db, &e), 0);
	expect_intact(f, 3);
}

/* ---- tampering ------------------------------------------------------------ */

static void test_edit(void **state)
{
	struct fx *f = *state;
	append_n(f, 100);
	static const char *const edits[] = {
		"reason = 'ok'", "agent = 'bot-z'", "uid = 0", "time_ns = time_ns + 1",
		"path = 'stripe/other'", "count = 2", "version = 9", "event = 'lookup'",
		"exe = ''", "lsm = 'unconfined'", "sudo_uid = 1000", "secret_id = 99",
	};
	for (size_t i = 0; i < sizeof edits / sizeof *edits; i++) {
		sql(f, "SAVEPOINT t; UPDATE audit SET %s WHERE id = 37", edits[i]);
		expect_bad(f, 37, "edited");
		sql(f, "ROLLBACK TO t; RELEASE t");
	}
	expect_intact(f, 100);
	/* NULL to "" is an edit too (row 7 has agent NULL, row 8 ""). */
	sql(f, "UPDATE audit SET agent = '' WHERE id = 7");
	expect_bad(f, 7, "edited");
}

static void test_edit_hash(void **state)
{
	struct fx *f = *state;
	append_n(f, 50);
	sql(f, "UPDATE audit SET hash = zeroblob(32) WHERE id = 20");
	expect_bad(f, 20, "edited");
}

static void test_delete(void **state)
{
	struct fx *f = *state;
	append_n(f, 100);
	sql(f, "SAVEPOINT t; DELETE FROM audit WHERE id = 50");
	expect_bad(f, 50, "deleted");
	sql(f, "ROLLBACK TO t; DELETE FROM audit WHERE id BETWEEN 40 AND 45");
	expect_bad(f, 40, "rows 40..45 were deleted");
	sql(f, "ROLLBACK TO t; DELETE FROM audit WHERE id = 1");
	expect_bad(f, 1, "deleted");
	/* the last row: the sequence is ahead of the last id */
	sql(f, "ROLLBACK TO t; DELETE FROM audit WHERE id = 100");
	expect_bad(f, 100, "deleted");
	sql(f, "ROLLBACK TO t; RELEASE t");
	expect_intact(f, 100);
	/* deleted, and the rest renumbered */
	sql(f, "DELETE FROM audit WHERE id = 60; UPDATE audit SET id = id - 1 WHERE id > 60");
	expect_bad(f, 60, "deleted");
}

/* Insert a row with the hash a forger who knows the algorithm would give it. */
static void forge(struct fx *f, int64_t id, const uint8_t *prev, int good_hash)
{
	struct audit_row r = { .time_ns = 1700000000 * NS, .event = "open", .result = "granted",
			       .agent = "bot-a", .uid = 1000, .gid = 1000, .pid = 1, .tgid = 1,
			       .sudo_uid = -1, .path = "stripe/key1", .secret_id = 1, .version = 1,
			       .count = 1 };
	uint8_t h[AUDIT_HASH_BYTES];
	audit_hash(prev, id, &r, h);
	if (!good_hash)
		h[0] ^= 1;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(H(f),
		"INSERT INTO audit (id, time_ns, event, result, agent, uid, gid, pid, tgid, sudo_uid,"
		" path, secret_id, version, count, prev_hash, hash)"
		" VALUES (?, ?, 'open', 'granted', 'bot-a', 1000, 1000, 1, 1, -1, 'stripe/key1', 1, 1, 1, ?, ?)",
		-1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, r.time_ns);
	sqlite3_bind_blob(st, 3, prev, AUDIT_HASH_BYTES, SQLITE_TRANSIENT);
	sqlite3_bind_blob(st, 4, h, AUDIT_HASH_BYTES, SQLITE_TRANSIENT);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
}

static void hash_of(struct fx *f, int64_t id, uint8_t *out)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(H(f), "SELECT hash FROM audit WHERE id = ?", -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(st, 1, id);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	memcpy(out, sqlite3_column_blob(st, 0), AUDIT_HASH_BYTES);
	sqlite3_finalize(st);
}

static void test_insert(void **state)
{
	struct fx *f = *state;
	append_n(f, 100);
	uint8_t last[AUDIT_HASH_BYTES], h40[AUDIT_HASH_BYTES], zero[AUDIT_HASH_BYTES] = { 0 };
	hash_of(f, 100, last);
	hash_of(f, 40, h40);

	/* a row added at the end with a made-up hash */
	sql(f, "SAVEPOINT t");
	forge(f, 101, zero, 0);
	expect_bad(f, 101, NULL);
	/* chained to the last row, but its hash is wrong */
	sql(f, "ROLLBACK TO t");
	forge(f, 101, last, 0);
	expect_bad(f, 101, NULL);
	/* a correct hash, but an id the sequence never gave */
	sql(f, "ROLLBACK TO t");
	forge(f, 105, last, 1);
	expect_bad(f, 105, "inserted");
	/* before the first row */
	sql(f, "ROLLBACK TO t");
	forge(f, 0, zero, 1);
	expect_bad(f, 0, "inserted");
	/* in the middle, making room by renumbering the rest */
	sql(f, "ROLLBACK TO t");
	sql(f, "UPDATE audit SET id = -id WHERE id > 40; UPDATE audit SET id = 1 - id WHERE id < 0");
	forge(f, 41, h40, 1);
	expect_bad(f, 41, "inserted");
	sql(f, "ROLLBACK TO t; RELEASE t");
	expect_intact(f, 100);
}

static void swap(struct fx *f, int64_t a, int64_t b)
{
	/* every column but id */
	sql(f, "UPDATE audit SET id = -1 WHERE id = %" PRId64 ";"
	       "UPDATE audit SET id = %" PRId64 " WHERE id = %" PRId64 ";"
	       "UPDATE audit SET id = %" PRId64 " WHERE id = -1", a, a, b, b);
}

static void test_reorder(void **state)
{
	struct fx *f = *state;
	append_n(f, 100);
	sql(f, "SAVEPOINT t");
	swap(f, 20, 21);
	expect_bad(f, 20, NULL);
	sql(f, "ROLLBACK TO t");
	swap(f, 30, 70);
	expect_bad(f, 30, NULL);
	/* only the contents swapped, the hashes left in place */
	sql(f, "ROLLBACK TO t");
	sql(f, "UPDATE audit SET (time_ns, event, result, reason, agent, pid, tgid, path) ="
	       " (SELECT time_ns, event, result, reason, agent, pid, tgid, path FROM audit b WHERE b.id ="
	       "  CASE audit.id WHEN 10 THEN 11 ELSE 10 END) WHERE id IN (10, 11)");
	expect_bad(f, 10, "edited");
	/* a row replaced by a copy of the one before */
	sql(f, "ROLLBACK TO t");
	sql(f, "UPDATE audit SET (time_ns, event, result, reason, agent, uid, gid, pid, tgid, sudo_uid,"
	       " exe, cgroup, lsm, path, secret_id, version, count, prev_hash, hash) ="
	       " (SELECT time_ns, event, result, reason, agent, uid, gid, pid, tgid, sudo_uid,"
	       " exe, cgroup, lsm, path, secret_id, version, count, prev_hash, hash FROM audit b"
	       " WHERE b.id = 54) WHERE id = 55");
	expect_bad(f, 55, "copy");
	sql(f, "ROLLBACK TO t; RELEASE t");
	expect_intact(f, 100);
}

/* ---- prune ---------------------------------------------------------------- */

static void test_prune(void **state)
{
	struct fx *f = *state;
	struct vault_err e = { 0 };
	append_n(f, 100); /* row i has time 1700000000 + i seconds */
	int64_t removed = -1;
	struct audit_row who = { .uid = 0, .gid = 0, .pid = 7, .tgid = 7, .sudo_uid = 1000 };
	assert_int_equal(audit_prune(f->db, (1700000000 + 50) * NS, &who, &removed, &e), 0);
	assert_int_equal(removed, 49);
	assert_int_equal(sql_int(f->db, "SELECT min(id) FROM audit"), 50);
	assert_int_equal(sql_int(f->db, "SELECT id FROM audit WHERE event = 'audit.prune'"), 101);
	assert_int_equal(sql_int(f->db, "SELECT sudo_uid FROM audit WHERE id = 101"), 1000);
	struct audit_verify_result r = verify(f);
	assert_int_equal(r.bad_id, 0);
	assert_int_equal(r.rows, 52);
	assert_int_equal(r.first_id, 50);
	assert_int_equal(r.anchor_id, 101);
	/* the chain goes on after the anchor */
	append_n(f, 10);
	expect_intact(f, 62);
	/* a later edit is still caught, and so is a deleted first row */
	sql(f, "SAVEPOINT t; UPDATE audit SET agent = 'x' WHERE id = 60");
	expect_bad(f, 60, "edited");
	sql(f, "ROLLBACK TO t; DELETE FROM audit WHERE id = 50");
	expect_bad(f, 50, "deleted");
	sql(f, "ROLLBACK TO t; UPDATE audit SET reason = replace(reason, 'id 50', 'id 51') WHERE id = 101");
	expect_bad(f, 101, "anchor");
	sql(f, "ROLLBACK TO t; RELEASE t");
	/* a second prune, past the first anchor; then everything */
	assert_int_equal(audit_prune(f->db, (1700000000 + 80) * NS, NULL, &removed, &e), 0);
	assert_int_equal(removed, 30);
	expect_intact(f, 111 - 80 + 1 + 1);
	assert_int_equal(audit_prune(f->db, vault_now_ns() + 3600 * NS, NULL, &removed, &e), 0);
	expect_intact(f, 1);
	append_n(f, 5);
	expect_intact(f, 6);
	assert_int_equal(audit_prune(f->db, 0, NULL, &removed, &e), -1);
}

/* ---- query ---------------------------------------------------------------- */

struct seen {
	int n;
	int64_t ids[64];
};

static int collect(void *arg, int64_t id, const struct audit_row *row)
{
	struct seen *s = arg;
	(void)row;
	if (s->n < 64)
		s->ids[s->n] = id;
	s->n++;
	return 0;
}

static void test_query(void **state)
{
	struct fx *f = *state;
	struct vault_err e = { 0 };
	append_n(f, 200);
	struct seen s = { 0 };
	struct audit_filter q = { .limit = 5 };
	assert_int_equal(audit_query(f->db, &q, collect, &s, &e), 0);
	assert_int_equal(s.n, 5);
	assert_int_equal(s.ids[0], 196);
	assert_int_equal(s.ids[4], 200);

	memset(&s, 0, sizeof s);
	q = (struct audit_filter){ .agent = "bot-a", .secret = "stripe/key3", .result = "granted" };
	assert_int_equal(audit_query(f->db, &q, collect, &s, &e), 0);
	int64_t want = sql_int(f->db, "SELECT count(*) FROM audit WHERE agent = 'bot-a' AND"
			       " path = 'stripe/key3' AND result = 'granted'");
	assert_true(want > 0);
	assert_int_equal(s.n, want);
	for (int i = 1; i < s.n && i < 64; i++)
		assert_true(s.ids[i] > s.ids[i - 1]);

	memset(&s, 0, sizeof s);
	q = (struct audit_filter){ .since_ns = (1700000000 + 10) * NS, .until_ns = (1700000000 + 20) * NS };
	assert_int_equal(audit_query(f->db, &q, collect, &s, &e), 0);
	assert_int_equal(s.n, 10);
	assert_int_equal(s.ids[0], 10);

	memset(&s, 0, sizeof s);
	q = (struct audit_filter){ .after_id = 190 };
	assert_int_equal(audit_query(f->db, &q, collect, &s, &e), 0);
	assert_int_equal(s.n, 10);
	assert_int_equal(s.ids[0], 191);
}

/* ---- the writer ----------------------------------------------------------- */

struct worker {
	struct audit_writer *w;
	int n, ok;
	int tid;
};

static void *worker_main(void *arg)
{
	struct worker *k = arg;
	char path[64];
	for (int i = 0; i < k->n; i++) {
		snprintf(path, sizeof path, "stripe/key%d", i % 5);
		struct audit_row r = { .event = "open", .result = "granted", .agent = "bot",
				       .uid = 1000 + k->tid, .gid = 1000, .pid = 100 + k->tid,
				       .tgid = 100 + k->tid, .sudo_uid = -1, .path = path,
				       .secret_id = 1, .version = 1, .count = 1 };
		if (audit_writer_submit(k->w, &r, 1) == 0)
			k->ok++;
	}
	return NULL;
}

static void test_writer_concurrent(void **state)
{
	struct fx *f = *state;
	struct vault_err e = { 0 };
	struct audit_writer *w = audit_writer_start(f->path, VAULT_SYNC_NORMAL, 4096, &e);
	if (!w)
		fail_msg("writer: %s", e.msg);
	pthread_t t[8];
	struct worker k[8];
	for (int i = 0; i < 8; i++) {
		k[i] = (struct worker){ .w = w, .n = 500, .tid = i };
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &k[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(k[i].ok, 500);
	}
	/* committed before submit returned: visible before stop */
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM audit"), 4000);
	for (int i = 0; i < 8; i++) {
		char q[96];
		snprintf(q, sizeof q, "SELECT count(*) FROM audit WHERE uid = %d", 1000 + i);
		assert_int_equal(sql_int(f->db, q), 500);
	}
	assert_null(audit_writer_error(w));
	audit_writer_stop(w);
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM audit"), 4000);
	expect_intact(f, 4000);
	audit_writer_stop(NULL);
}

static int submit_open(struct audit_writer *w, int wait)
{
	struct audit_row r = { .event = "open", .result = "granted", .agent = "bot", .uid = 1000,
			       .gid = 1000, .pid = 1, .tgid = 1, .sudo_uid = -1,
			       .path = "stripe/test_key", .secret_id = 1, .version = 1, .count = 1 };
	return audit_writer_submit(w, &r, wait);
}

/* The writer and scopeholdctl append to one chain. */
static void test_writer_shares_chain(void **state)
{
	struct fx *f = *state;
	struct vault_err e = { 0 };
	struct audit_writer *w = audit_writer_start(f->path, VAULT_SYNC_FULL, 16, &e);
	assert_non_null(w);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(submit_open(w, 1), 0);
		append_n(f, 1);
	}
	audit_writer_stop(w);
	expect_intact(f, 40);
}

/* A trigger makes every insert fail: a clean fault that goes away. */
static void test_writer_fault_recovers(void **state)
{
	struct fx *f = *state;
	struct vault_err e = { 0 };
	struct audit_writer *w = audit_writer_start(f->path, VAULT_SYNC_NORMAL, 64, &e);
	assert_non_null(w);
	assert_int_equal(submit_open(w, 1), 0);
	sql(f, "CREATE TRIGGER fault BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'simulated fault'); END");
	assert_int_equal(submit_open(w, 1), -1);
	assert_int_equal(submit_open(w, 1), -1);
	const char *why = audit_writer_error(w);
	assert_non_null(why);
	assert_non_null(strstr(why, "simulated fault"));
	sql(f, "DROP TRIGGER fault");
	assert_int_equal(submit_open(w, 1), 0);
	assert_null(audit_writer_error(w));
	audit_writer_stop(w);
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM audit"), 2);
	expect_intact(f, 2);
}

/* A file size limit: writes that grow the WAL fail with EFBIG (an I/O error
 * as SQLite sees it); after it is lifted the same writer goes on. */
static void test_writer_io_error_recovers(void **state)
{
	struct fx *f = *state;
	struct vault_err e = { 0 };
	struct audit_writer *w = audit_writer_start(f->path, VAULT_SYNC_FULL, 64, &e);
	assert_non_null(w);
	assert_int_equal(submit_open(w, 1), 0);
	char wal[160];
	snprintf(wal, sizeof wal, "%s-wal", f->path);
	struct stat st, sd;
	assert_int_equal(stat(wal, &st), 0);
	assert_int_equal(stat(f->path, &sd), 0);
	struct rlimit old, lim;
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = (rlim_t)(st.st_size > sd.st_size ? st.st_size : sd.st_size);
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	int a = submit_open(w, 1), b = submit_open(w, 1);
	const char *why = audit_writer_error(w);
	char saved[600] = "";
	if (why)
		snprintf(saved, sizeof saved, "%s", why);
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(a, -1);
	assert_int_equal(b, -1);
	assert_non_null(strstr(saved, "cannot write 1 audit row"));
	for (int i = 0; i < 5; i++)
		assert_int_equal(submit_open(w, 1), 0);
	assert_null(audit_writer_error(w));
	audit_writer_stop(w);
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM audit"), 6);
	expect_intact(f, 6);
}

/* The real thing where we may: the database on a tiny tmpfs that fills up. */
static void test_writer_disk_full_recovers(void **state)
{
	struct fx *f = *state;
	struct vault_err e = { 0 };
	char t[128], db[160], filler[160];
	snprintf(t, sizeof t, "%s/t", f->dir);
	assert_int_equal(mkdir(t, 0700), 0);
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", t, "tmpfs", 0, "size=2m,mode=0700") < 0) {
		skip(); /* needs CAP_SYS_ADMIN; the trigger and EFBIG tests still ran */
		return;
	}
	f->mounted = 1;
	snprintf(db, sizeof db, "%s/full.db", t);
	snprintf(filler, sizeof filler, "%s/filler", t);
	struct vault_db *d = vault_db_open(db, VAULT_DB_CREATE, &e);
	assert_non_null(d);
	assert_int_equal(audit_schema(d, &e), 0);
	struct audit_writer *w = audit_writer_start(db, VAULT_SYNC_NORMAL, 64, &e);
	assert_non_null(w);
	assert_int_equal(submit_open(w, 1), 0);

	int fd = open(filler, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	static char block[4096];
	while (write(fd, block, sizeof block) > 0)
		;
	assert_int_equal(errno, ENOSPC);
	close(fd);
	/* the next commits need WAL pages the disk does not have */
	int failed = 0;
	for (int i = 0; i < 50 && !failed; i++)
		failed = submit_open(w, 1) < 0;
	assert_true(failed);
	const char *why = audit_writer_error(w);
	assert_non_null(why);
	assert_non_null(strstr(why, "full"));
	unlink(filler);
	for (int i = 0; i < 20; i++)
		assert_int_equal(submit_open(w, 1), 0);
	assert_null(audit_writer_error(w));
	audit_writer_stop(w);
	struct audit_verify_result r;
	assert_int_equal(audit_verify(d, &r, &e), 0);
	assert_int_equal(r.bad_id, 0);
	assert_int_equal(r.rows, sql_int(d, "SELECT count(*) FROM audit"));
	vault_db_close(d);
}

struct waiter {
	struct audit_writer *w;
	atomic_int started, returned;
	int rc;
};

static void *waiter_main(void *arg)
{
	struct waiter *t = arg;
	atomic_store(&t->started, 1);
	t->rc = submit_open(t->w, 1);
	atomic_store(&t->returned, 1);
	return NULL;
}

/* Another connection holds the write lock: rows nobody waits for queue up
 * to the bound and the next is dropped; a waited row (a granted open) is
 * not refused for them: it waits for the lock and commits once it is free
 * (issue 16 item 10). Held past the busy timeout, the waited row fails; all
 * goes on afterwards, and the lost row is counted in an audit.dropped row. */
static void test_writer_queue_full_and_busy(void **state)
{
	struct fx *f = *state;
	struct vault_err e = { 0 };
	struct audit_writer *w = audit_writer_start(f->path, VAULT_SYNC_NORMAL, 4, &e);
	assert_non_null(w);
	sql(f, "BEGIN EXCLUSIVE");
	assert_int_equal(submit_open(w, 0), 0);
	usleep(200000); /* the writer takes it and waits for the lock */
	for (int i = 0; i < 4; i++)
		assert_int_equal(submit_open(w, 0), 0);
	assert_int_equal(submit_open(w, 0), -1);
	assert_int_equal(audit_writer_dropped(w), 1);
	struct waiter t = { .w = w };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, waiter_main, &t), 0);
	while (!atomic_load(&t.started))
		usleep(1000);
	usleep(300000);
	int early = atomic_load(&t.returned);
	sql(f, "COMMIT");
	pthread_join(th, NULL);
	if (early)
		fail_msg("a waited row was refused (%d) while rows nobody waits for filled the queue", t.rc);
	assert_int_equal(t.rc, 0);
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM audit WHERE event = 'open'"), 6);

	/* held past the busy timeout: the batch fails, the next one works */
	sql(f, "BEGIN EXCLUSIVE");
	assert_int_equal(submit_open(w, 1), -1);
	assert_non_null(strstr(audit_writer_error(w), "locked"));
	sql(f, "COMMIT");
	assert_int_equal(submit_open(w, 1), 0);
	audit_writer_stop(w);
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM audit WHERE event = 'open'"), 7);
	assert_int_equal(sql_int(f->db, "SELECT sum(count) FROM audit WHERE event = 'audit.dropped'"), 1);
	expect_intact(f, 8);
}

static void refused(struct audit_writer *w, const char *event, const char *result, int64_t uid,
		    int64_t tgid, int wait)
{
	struct audit_row r = { .event = event, .result = result, .reason = "no agent", .uid = uid,
			       .gid = uid, .pid = tgid, .tgid = tgid, .sudo_uid = -1, .path = "stripe",
			       .count = 1 };
	assert_int_equal(audit_writer_submit(w, &r, wait), 0);
}

/* Refused lookups and opens of one uid from ever new processes (nothing to
 * coalesce) are written up to the uid's burst, the rest counted into
 * audit.limited rows; another uid has its own bucket; granted opens are
 * never limited; the counts add up (issue 16 item 9). */
static void test_writer_limits_refused_rows_per_uid(void **state)
{
	struct fx *f = *state;
	struct vault_err e = { 0 };
	struct audit_writer *w = audit_writer_start(f->path, VAULT_SYNC_NORMAL, 4096, &e);
	assert_non_null(w);
	int64_t t0 = vault_now_ns();
	for (int i = 0; i < 1000; i++) {
		refused(w, "lookup", i % 2 ? "unknown-caller" : "denied", 1000, 5000 + i, 0);
		if (i % 10 == 0)
			refused(w, "open", "unknown-caller", 1000, 9000 + i, 1);
		if (i % 50 == 0)
			assert_int_equal(submit_open(w, 1), 0);
		if (i % 100 == 0)
			refused(w, "lookup", "denied", 1001, 7000 + i, 0);
	}
	int64_t secs = (vault_now_ns() - t0) / NS + 1;
	audit_writer_stop(w);
	int64_t written = sql_int(f->db, "SELECT count(*) FROM audit WHERE uid = 1000 AND event IN ('lookup', 'open')"
				 " AND result != 'granted'");
	int64_t limit = AUDIT_LIMIT_BURST + secs * AUDIT_LIMIT_RATE;
	if (written > limit)
		fail_msg("%" PRId64 " refused rows of uid 1000 written one by one, more than %" PRId64, written, limit);
	assert_int_equal(sql_int(f->db, "SELECT sum(count) FROM audit WHERE uid = 1000 AND result != 'granted'"
				 " AND event IN ('lookup', 'open', 'audit.limited')"), 1100);
	assert_true(sql_int(f->db, "SELECT count(*) FROM audit WHERE event = 'audit.limited' AND uid = 1000") <= secs + 1);
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM audit WHERE uid = 1001"), 10);
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM audit WHERE result = 'granted'"), 20);
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM audit WHERE event = 'audit.dropped'"), 0);
	expect_intact(f, sql_int(f->db, "SELECT count(*) FROM audit"));
}

/* Many uids: past the ones tracked apart they share one bucket; nothing
 * is lost from the counts. */
static void test_writer_limits_many_uids(void **state)
{
	struct fx *f = *state;
	struct vault_err e = { 0 };
	struct audit_writer *w = audit_writer_start(f->path, VAULT_SYNC_NORMAL, 100000, &e);
	assert_non_null(w);
	for (int u = 0; u < 5000; u++)
		for (int i = 0; i < 3; i++)
			refused(w, "lookup", "unknown-caller", 100000 + u, 100000 + 3 * u + i, 0);
	audit_writer_stop(w);
	assert_int_equal(sql_int(f->db, "SELECT sum(count) FROM audit"), 15000);
	assert_true(sql_int(f->db, "SELECT count(*) FROM audit WHERE event = 'lookup'") < 15000);
	assert_true(sql_int(f->db, "SELECT count(*) FROM audit WHERE event = 'audit.limited' AND uid = -1") >= 1);
	expect_intact(f, sql_int(f->db, "SELECT count(*) FROM audit"));
}

/* Below [audit] reserve only the rows of opens are written; the others are
 * counted in an audit.dropped row that says why (issue 16 item 10). */
static void test_writer_reserve_keeps_rows_of_opens(void **state)
{
	struct fx *f = *state;
	struct vault_err e = { 0 };
	struct audit_writer *w = audit_writer_start(f->path, VAULT_SYNC_NORMAL, 4096, &e);
	assert_non_null(w);
	audit_writer_set_reserve(w, INT64_MAX / 4);
	for (int i = 0; i < 10; i++) {
		refused(w, "lookup", "denied", 1000, 100 + i, 0);
		assert_int_equal(submit_open(w, 1), 0);
	}
	refused(w, "open", "denied", 1000, 99, 1);
	struct audit_writer_status st;
	audit_writer_status(w, &st);
	assert_true(st.low);
	assert_true(st.free_bytes > 0);
	audit_writer_set_reserve(w, 0);
	refused(w, "lookup", "denied", 1000, 200, 0);
	assert_int_equal(submit_open(w, 1), 0);
	audit_writer_stop(w);
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM audit WHERE event = 'open'"), 12);
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM audit WHERE event = 'lookup'"), 1);
	assert_int_equal(sql_int(f->db, "SELECT tgid FROM audit WHERE event = 'lookup'"), 200);
	assert_int_equal(sql_int(f->db, "SELECT sum(count) FROM audit WHERE event = 'audit.dropped'"), 10);
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM audit WHERE event = 'audit.dropped'"
				 " AND reason LIKE '%reserve%'"), sql_int(f->db, "SELECT count(*) FROM audit WHERE"
									  " event = 'audit.dropped'"));
	expect_intact(f, sql_int(f->db, "SELECT count(*) FROM audit"));
}

/* The store moved away or removed under the writer: its batches fail (the
 * rows would go to a file nobody reads) until the same file is back at the
 * path; then it goes on without a restart (issue 16 item 4). */
static void test_writer_store_moved_fails_until_back(void **state)
{
	struct fx *f = *state;
	struct vault_err e = { 0 };
	struct audit_writer *w = audit_writer_start(f->path, VAULT_SYNC_NORMAL, 64, &e);
	assert_non_null(w);
	assert_int_equal(submit_open(w, 1), 0);
	char away[160];
	snprintf(away, sizeof away, "%s.away", f->path);
	assert_int_equal(rename(f->path, away), 0);
	assert_int_equal(submit_open(w, 1), -1);
	assert_non_null(strstr(audit_writer_error(w), "removed or moved"));
	/* another file at the path is not the store either */
	int fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(submit_open(w, 1), -1);
	assert_int_equal(rename(away, f->path), 0);
	assert_int_equal(submit_open(w, 1), 0);
	assert_null(audit_writer_error(w));
	/* removed (its last link): fails; linked back: goes on */
	assert_int_equal(link(f->path, away), 0);
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(submit_open(w, 1), -1);
	assert_int_equal(link(away, f->path), 0);
	assert_int_equal(unlink(away), 0);
	assert_int_equal(submit_open(w, 1), 0);
	audit_writer_stop(w);
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM audit WHERE event = 'open'"), 3);
	expect_intact(f, 3);
}

static void deny(struct audit_writer *w, int64_t tgid, const char *path, int64_t t)
{
	struct audit_row r = { .time_ns = t, .event = "lookup", .result = "denied",
			       .reason = "not granted", .agent = "bot", .uid = 1000, .gid = 1000,
			       .pid = tgid, .tgid = tgid, .sudo_uid = -1, .path = path,
			       .secret_id = 1, .version = 1, .count = 1 };
	assert_int_equal(audit_writer_submit(w, &r, 0), 0);
}

static int64_t q_int(struct fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int64_t q_int(struct fx *f, const char *fmt, ...)
{
	char q[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q, sizeof q, fmt, ap);
	va_end(ap);
	return sql_int(f->db, q);
}

static void test_writer_coalesce(void **state)
{
	struct fx *f = *state;
	struct vault_err e = { 0 };
	struct audit_writer *w = audit_writer_start(f->path, VAULT_SYNC_NORMAL, 4096, &e);
	assert_non_null(w);
	/* a real second with room to spare, so the test does not straddle two */
	int64_t now = vault_now_ns();
	if (now % NS > NS / 2) {
		usleep((useconds_t)((NS - now % NS) / 1000 + 1000));
		now = vault_now_ns();
	}
	int64_t s = now - now % NS;
	for (int i = 0; i < 1000; i++) {
		deny(w, 42, "stripe/a", s + i * 1000);
		if (i % 10 == 0)
			deny(w, 43, "stripe/a", s + i);
		if (i == 500)
			usleep(20000); /* let the writer take the first row */
	}
	deny(w, 42, "stripe/b", s);
	for (int i = 0; i < 7; i++)
		deny(w, 42, "stripe/a", s + NS + i); /* the next second */
	/* wait=1 rows are never coalesced */
	for (int i = 0; i < 3; i++) {
		struct audit_row r = { .time_ns = s, .event = "open", .result = "denied", .uid = 1000,
				       .gid = 1000, .pid = 42, .tgid = 42, .sudo_uid = -1,
				       .path = "stripe/a", .count = 1 };
		assert_int_equal(audit_writer_submit(w, &r, 1), 0);
	}
	/* repeats that came after the first row was written appear once their
	 * second is over, without a stop */
	int64_t sum = 0;
	for (int i = 0; i < 40 && sum != 1000; i++) {
		usleep(100000);
		sum = q_int(f, "SELECT sum(count) FROM audit WHERE tgid = 42 AND path = 'stripe/a'"
			    " AND event = 'lookup' AND time_ns < %" PRId64, s + NS);
	}
	assert_int_equal(sum, 1000);
	assert_int_equal(audit_writer_dropped(w), 0);
	audit_writer_stop(w);
	int64_t rows = q_int(f, "SELECT count(*) FROM audit WHERE tgid = 42 AND path = 'stripe/a'"
			     " AND event = 'lookup' AND time_ns < %" PRId64, s + NS);
	assert_true(rows >= 1 && rows <= 2);
	assert_int_equal(sql_int(f->db, "SELECT sum(count) FROM audit WHERE tgid = 43"), 100);
	assert_true(sql_int(f->db, "SELECT count(*) FROM audit WHERE tgid = 43") <= 2);
	assert_int_equal(q_int(f, "SELECT sum(count) FROM audit WHERE tgid = 42 AND path = 'stripe/a'"
			       " AND event = 'lookup' AND time_ns >= %" PRId64, s + NS), 7);
	assert_int_equal(sql_int(f->db, "SELECT sum(count) FROM audit WHERE path = 'stripe/b'"), 1);
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM audit WHERE event = 'open'"), 3);
	expect_intact(f, sql_int(f->db, "SELECT count(*) FROM audit"));
}

/* Another process (scopeholdctl) that closes the last connection it sees
 * checkpoints and deletes the WAL, and this process would go on committing
 * rows into the deleted file. What stops it is this process's SHARED lock on
 * the database file, which a plain close() of any descriptor of that file
 * drops (POSIX locks are per process): opening the writer's connection must
 * keep the locks of the connections already open. */
static void test_writer_keeps_db_lock(void **state)
{
	struct fx *f = *state;
	struct vault_err e = { 0 };
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM audit"), 0); /* holds SHARED */
	struct audit_writer *w = audit_writer_start(f->path, VAULT_SYNC_NORMAL, 16, &e);
	assert_non_null(w);
	assert_int_equal(submit_open(w, 1), 0);
	pid_t pid = fork();
	if (pid == 0) {
		/* no SQLite here: probe the lock bytes another process would take */
		int fd = open(f->path, O_RDWR | O_CLOEXEC);
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
				    .l_start = 0x40000000 + 2, .l_len = 510 }; /* SHARED_FIRST, SHARED_SIZE */
		_exit(fd >= 0 && fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK ? 0 : 1);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	audit_writer_stop(w);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("after opening the writer's connection no SHARED lock is held on '%s': "
			 "vault_db_open must not close() a descriptor of an open database "
			 "(use O_PATH for its file check)", f->path);
}

static void test_writer_stop_drains(void **state)
{
	struct fx *f = *state;
	struct vault_err e = { 0 };
	struct audit_writer *w = audit_writer_start(f->path, VAULT_SYNC_NORMAL, 4096, &e);
	assert_non_null(w);
	for (int i = 0; i < 300; i++)
		assert_int_equal(submit_open(w, 0), 0);
	/* a string over the cap is cut, not refused: the open goes on */
	char *big = malloc(AUDIT_TEXT_MAX + 100);
	memset(big, 'c', AUDIT_TEXT_MAX + 99);
	big[AUDIT_TEXT_MAX + 99] = 0;
	struct audit_row r = { .event = "open", .result = "granted", .uid = 1, .gid = 1, .pid = 1,
			       .tgid = 1, .sudo_uid = -1, .cgroup = big, .count = 1 };
	assert_int_equal(audit_writer_submit(w, &r, 1), 0);
	free(big);
	r.event = NULL;
	assert_int_equal(audit_writer_submit(w, &r, 1), -1);
	audit_writer_stop(w);
	assert_int_equal(sql_int(f->db, "SELECT count(*) FROM audit"), 301);
	assert_int_equal(sql_int(f->db, "SELECT length(cgroup) FROM audit WHERE id = 301"), AUDIT_TEXT_MAX);
	expect_intact(f, 301);
	/* a database without the audit table is refused at start */
	char other[160];
	snprintf(other, sizeof other, "%s/other.db", f->dir);
	struct vault_db *d = vault_db_open(other, VAULT_DB_CREATE, &e);
	assert_non_null(d);
	vault_db_close(d);
	assert_null(audit_writer_start(other, VAULT_SYNC_NORMAL, 16, &e));
}

/* Back-to-back waited rows from one thread: the writer's checkpoint takes
 * the commit token, so the WAL is rewound instead of growing by ~26 KiB per
 * row (5000 rows would be over 100 MiB). */
static void test_writer_wal_stays_bounded(void **state)
{
	struct fx *f = *state;
	struct vault_err e = { 0 };
	struct audit_writer *w = audit_writer_start(f->path, VAULT_SYNC_NORMAL, 64, &e);
	assert_non_null(w);
	char buf[64];
	for (int64_t i = 0; i < 5000; i++) {
		struct audit_row r = row_n(i, buf, sizeof buf);
		assert_int_equal(audit_writer_submit(w, &r, 1), 0);
	}
	char wal[sizeof f->path + 8];
	snprintf(wal, sizeof wal, "%s-wal", f->path);
	struct stat st;
	assert_int_equal(stat(wal, &st), 0);
	assert_true(st.st_size < 32 * 1024 * 1024);
	audit_writer_stop(w);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_value_field, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hash_known_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intact_10000, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edit_hash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_insert, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reorder, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query, setup, teardown),
		/* before any test starts a thread: unshare(CLONE_NEWNS) needs one */
		cmocka_unit_test_setup_teardown(test_writer_disk_full_recovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_shares_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_fault_recovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_io_error_recovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_queue_full_and_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_coalesce, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_limits_refused_rows_per_uid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_limits_many_uids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_reserve_keeps_rows_of_opens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_store_moved_fails_until_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_stop_drains, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_keeps_db_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_wal_stays_bounded, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
