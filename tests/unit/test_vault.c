/* test_vault.c - sealing, keys and the database: round trips, tampered or
 * moved ciphertexts, wrong keys, file permission checks, size caps. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "acl/audit.h"
#include "tests/unit/helpers.h"

static int setup(void **state)
{
	*state = th_vault_new();
	return 0;
}

static int teardown(void **state)
{
	th_vault_free(*state);
	return 0;
}

/* put value as provider/key, then load the current version and open it */
static void put_and_read(struct tvault *v, const char *p, const char *k, const uint8_t *val, size_t len)
{
	struct vault_err e = { 0 };
	int64_t ver = 0;
	if (vault_secret_put(v->db, v->key, p, k, val, len, 1, &ver, &e) < 0)
		fail_msg("put: %s", e.msg);
	struct vault_secret s;
	assert_int_equal(vault_secret_find(v->db, p, k, &s, &e), 1);
	assert_int_equal(s.version, ver);
	assert_int_equal(s.len, (int64_t)len);
	struct vault_sealed sl;
	assert_int_equal(vault_sealed_load(v->db, s.id, s.version, &sl, &e), 1);
	uint8_t *pt = malloc(len + 1);
	assert_int_equal(vault_sealed_open(v->key, &sl, pt, &e), 0);
	assert_memory_equal(pt, val, len);
	free(pt);
	vault_sealed_clear(&sl);
}

static void test_roundtrip_sizes(void **state)
{
	struct tvault *v = *state;
	const uint8_t small[] = "sk_test_4eC39HqLyjWDarjtT1zdp7dc";
	put_and_read(v, "stripe", "test_key", small, sizeof small - 1);
	put_and_read(v, "stripe", "empty", (const uint8_t *)"", 0);
	uint8_t *big = malloc(VAULT_VALUE_MAX);
	randombytes_buf(big, VAULT_VALUE_MAX);
	put_and_read(v, "stripe", "big", big, VAULT_VALUE_MAX);
	free(big);
}

static void test_over_cap_refused(void **state)
{
	struct tvault *v = *state;
	struct vault_err e = { 0 };
	uint8_t *big = calloc(1, VAULT_VALUE_MAX + 1);
	assert_int_equal(vault_secret_put(v->db, v->key, "stripe", "huge", big, VAULT_VALUE_MAX + 1, 1, NULL, &e), -1);
	assert_int_equal(e.code, VAULT_EINVAL);
	assert_non_null(strstr(e.msg, "limit"));
	struct vault_secret s;
	assert_int_equal(vault_secret_find(v->db, "stripe", "huge", &s, &e), 0);
	free(big);
}

static void test_versions_and_ad(void **state)
{
	struct tvault *v = *state;
	struct vault_err e = { 0 };
	int64_t v1, v2;
	assert_int_equal(vault_secret_put(v->db, v->key, "gh", "token", (const uint8_t *)"one", 3, 1, &v1, &e), 0);
	assert_int_equal(vault_secret_put(v->db, v->key, "gh", "token", (const uint8_t *)"two!", 4, 1, &v2, &e), 0);
	assert_int_equal(v1, 1);
	assert_int_equal(v2, 2);
	struct vault_secret s;
	assert_int_equal(vault_secret_find(v->db, "gh", "token", &s, &e), 1);
	struct vault_sealed sl;
	uint8_t pt[8];
	assert_int_equal(vault_sealed_load(v->db, s.id, 1, &sl, &e), 1);
	assert_int_equal(vault_sealed_open(v->key, &sl, pt, &e), 0);
	assert_memory_equal(pt, "one", 3);

	/* the same ciphertext claimed by another version, secret or name fails */
	struct vault_sealed moved = sl;
	moved.ad.version = 2;
	assert_int_equal(vault_sealed_open(v->key, &moved, pt, &e), -1);
	assert_int_equal(e.code, VAULT_ECRYPTO);
	moved = sl;
	moved.ad.secret_id = s.id + 1;
	assert_int_equal(vault_sealed_open(v->key, &moved, pt, &e), -1);
	moved = sl;
	strcpy(moved.key, "tokem");
	assert_int_equal(vault_sealed_open(v->key, &moved, pt, &e), -1);
	moved = sl;
	strcpy(moved.provider, "gi");
	assert_int_equal(vault_sealed_open(v->key, &moved, pt, &e), -1);
	/* a flipped bit fails */
	sl.ct[0] ^= 1;
	assert_int_equal(vault_sealed_open(v->key, &sl, pt, &e), -1);
	vault_sealed_clear(&sl);
}

/* A ciphertext copied in the database to another row does not decrypt. */
static void test_row_copy_fails(void **state)
{
	struct tvault *v = *state;
	struct vault_err e = { 0 };
	assert_int_equal(vault_secret_put(v->db, v->key, "a", "one", (const uint8_t *)"AAAA", 4, 1, NULL, &e), 0);
	assert_int_equal(vault_secret_put(v->db, v->key, "a", "two", (const uint8_t *)"BBBB", 4, 1, NULL, &e), 0);
	struct vault_secret one, two;
	assert_int_equal(vault_secret_find(v->db, "a", "one", &one, &e), 1);
	assert_int_equal(vault_secret_find(v->db, "a", "two", &two, &e), 1);
	char sql[256];
	snprintf(sql, sizeof sql,
		 "UPDATE secret_versions SET (nonce, ct) = (SELECT nonce, ct FROM secret_versions"
		 " WHERE secret_id = %lld) WHERE secret_id = %lld", (long long)one.id, (long long)two.id);
	assert_int_equal(sqlite3_exec(vault_db_handle(v->db), sql, NULL, NULL, NULL), SQLITE_OK);
	struct vault_sealed sl;
	uint8_t pt[8];
	assert_int_equal(vault_sealed_load(v->db, two.id, 1, &sl, &e), 1);
	assert_int_equal(vault_sealed_open(v->key, &sl, pt, &e), -1);
	assert_int_equal(e.code, VAULT_ECRYPTO);
	vault_sealed_clear(&sl);
}

static void write_file(const char *path, const void *buf, size_t len, mode_t mode)
{
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
	chmod(path, mode);
}

static void test_wrong_master_key(void **state)
{
	struct tvault *v = *state;
	struct vault_err e = { 0 };
	char other[PATH_MAX + 8];
	snprintf(other, sizeof other, "%s/other.key", v->dir);
	uint8_t k[VAULT_KEY_BYTES];
	randombytes_buf(k, sizeof k);
	write_file(other, k, sizeof k, 0400);
	assert_null(vault_key_load(v->db, other, &e));
	assert_int_equal(e.code, VAULT_ECRYPTO);
	assert_null(strchr(e.msg, '\n'));
	/* a key file of the wrong size */
	write_file(other, k, 16, 0400);
	assert_null(vault_key_load(v->db, other, &e));
	assert_int_equal(e.code, VAULT_ECORRUPT);
}

static void test_key_file_checks(void **state)
{
	struct tvault *v = *state;
	struct vault_err e = { 0 };
	char path[PATH_MAX + 8];
	snprintf(path, sizeof path, "%s/missing.key", v->dir);
	assert_null(vault_key_load(v->db, path, &e));
	assert_int_equal(e.code, VAULT_ENOENT);
	assert_non_null(strstr(e.msg, path));

	chmod(v->key_path, 0644);
	assert_null(vault_key_load(v->db, v->key_path, &e));
	assert_int_equal(e.code, VAULT_EPERM);
	assert_non_null(strstr(e.msg, "chmod"));
	assert_non_null(strstr(e.msg, v->key_path));
	chmod(v->key_path, 0440);
	assert_null(vault_key_load(v->db, v->key_path, &e));
	chmod(v->key_path, 0400);
	struct vault_key *k = vault_key_load(v->db, v->key_path, &e);
	assert_non_null(k);
	vault_key_free(k);

	/* a symbolic link is refused */
	snprintf(path, sizeof path, "%s/link.key", v->dir);
	assert_int_equal(symlink(v->key_path, path), 0);
	assert_null(vault_key_load(v->db, path, &e));
	assert_int_equal(e.code, VAULT_EPERM);

	/* init refuses an existing key file and an initialised database */
	assert_int_equal(vault_key_init(v->db, v->key_path, &e), -1);
	assert_int_equal(e.code, VAULT_EEXIST);
}

static void test_db_checks(void **state)
{
	struct tvault *v = *state;
	struct vault_err e = { 0 };
	chmod(v->db_path, 0644);
	assert_null(vault_db_open(v->db_path, 0, &e));
	assert_int_equal(e.code, VAULT_EPERM);
	assert_non_null(strstr(e.msg, "chmod 600"));
	chmod(v->db_path, 0600);

	char path[PATH_MAX + 8];
	snprintf(path, sizeof path, "%s/nope.db", v->dir);
	assert_null(vault_db_open(path, 0, &e));
	assert_int_equal(e.code, VAULT_ENOENT);
	assert_non_null(strstr(e.msg, "scopeholdctl init"));

	snprintf(path, sizeof path, "%s/corrupt.db", v->dir);
	uint8_t junk[8192];
	randombytes_buf(junk, sizeof junk);
	write_file(path, junk, sizeof junk, 0600);
	assert_null(vault_db_open(path, 0, &e));
	assert_int_equal(e.code, VAULT_ECORRUPT);

	/* a database written by a newer program is refused, not migrated */
	assert_int_equal(sqlite3_exec(vault_db_handle(v->db),
				      "UPDATE schema_version SET version = 99 WHERE module = 'vault'",
				      NULL, NULL, NULL), SQLITE_OK);
	assert_null(vault_db_open(v->db_path, 0, &e));
	assert_int_equal(e.code, VAULT_ECORRUPT);
	assert_non_null(strstr(e.msg, "newer"));
}

/* issue 16 item 3: a store this open did not create is never started
 * anew: empty, or SQLite without our schema; the message names the file
 * and which store it is, and the file is left as it was. */
static void test_empty_or_foreign_store_refused(void **state)
{
	struct tvault *v = *state;
	struct vault_err e = { 0 };
	char path[PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/zero.db", v->dir);
	write_file(path, (const uint8_t *)"", 0, 0600);
	for (int create = 0; create <= 1; create++) {
		assert_null(vault_db_open(path, create ? VAULT_DB_CREATE : 0, &e));
		assert_int_equal(e.code, VAULT_ECORRUPT);
		assert_non_null(strstr(e.msg, "vault"));
		assert_non_null(strstr(e.msg, path));
		assert_non_null(strstr(e.msg, "empty"));
		assert_null(vault_db_open(path, create ? VAULT_DB_CREATE | VAULT_DB_NOVAULT : VAULT_DB_NOVAULT, &e));
		assert_non_null(strstr(e.msg, "audit store"));
	}
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 0);

	snprintf(path, sizeof path, "%s/foreign.db", v->dir);
	sqlite3 *f;
	assert_int_equal(sqlite3_open(path, &f), SQLITE_OK);
	assert_int_equal(sqlite3_exec(f, "CREATE TABLE notes (t TEXT)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(f);
	chmod(path, 0600);
	assert_int_equal(stat(path, &st), 0);
	off_t size = st.st_size;
	assert_null(vault_db_open(path, 0, &e));
	assert_int_equal(e.code, VAULT_ECORRUPT);
	assert_non_null(strstr(e.msg, "not a ScopeHold vault"));
	assert_null(vault_db_open(path, VAULT_DB_NOMIGRATE, &e));
	assert_int_equal(e.code, VAULT_ECORRUPT);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, size);
	char wal[PATH_MAX + 32];
	snprintf(wal, sizeof wal, "%s-wal", path);
	assert_int_equal(access(wal, F_OK), -1); /* not even put into WAL mode */

	/* the vault given as the audit store has no audit schema */
	assert_null(audit_db_open(v->db_path, 0, &e));
	assert_non_null(strstr(e.msg, "not a ScopeHold audit store"));
}

static void test_locked_db(void **state)
{
	struct tvault *v = *state;
	struct vault_err e = { 0 };
	sqlite3 *other;
	assert_int_equal(sqlite3_open(v->db_path, &other), SQLITE_OK);
	assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
	/* the writer waits its busy timeout, then says the database is locked */
	assert_int_equal(vault_provider_add(v->db, "locked", &e), -1);
	assert_int_equal(e.code, VAULT_EBUSY);
	assert_non_null(strstr(e.msg, "locked"));
	sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(other);
	assert_int_equal(vault_provider_add(v->db, "locked", &e), 0);
}

static void test_rekey(void **state)
{
	struct tvault *v = *state;
	struct vault_err e = { 0 };
	assert_int_equal(vault_secret_put(v->db, v->key, "p", "k", (const uint8_t *)"value", 5, 1, NULL, &e), 0);
	struct vault_rekey rk = { 0 };
	if (vault_key_rekey(v->db, v->key_path, &rk, &e) < 0)
		fail_msg("rekey: %s", e.msg);
	assert_int_equal(rk.resumed, 0);
	assert_int_equal(vault_key_pending(v->db, &e), 0);
	/* the old key no longer opens the data key; the new one does, and
	 * values sealed before still decrypt */
	const char *old = rk.retired;
	assert_non_null(strstr(old, ".retired-"));
	assert_null(vault_key_load(v->db, old, &e));
	assert_int_equal(e.code, VAULT_ECRYPTO);
	struct vault_key *k = vault_key_load(v->db, v->key_path, &e);
	assert_non_null(k);
	struct vault_secret s;
	struct vault_sealed sl;
	uint8_t pt[8];
	assert_int_equal(vault_secret_find(v->db, "p", "k", &s, &e), 1);
	assert_int_equal(vault_sealed_load(v->db, s.id, s.version, &sl, &e), 1);
	assert_int_equal(vault_sealed_open(k, &sl, pt, &e), 0);
	assert_memory_equal(pt, "value", 5);
	vault_sealed_clear(&sl);
	vault_key_free(k);
	struct stat st;
	assert_int_equal(stat(v->key_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0400);
}

/* Two rekeys keep two retired keys (issue 9: a second rekey overwrote
 * KEY.old): the first opens a copy of the database taken before them. */
static void test_rekey_keeps_every_retired_key(void **state)
{
	struct tvault *v = *state;
	struct vault_err e = { 0 };
	char copy[PATH_MAX + 8], first[PATH_MAX], second[PATH_MAX];
	snprintf(copy, sizeof copy, "%s/before.db", v->dir);
	sqlite3_exec(vault_db_handle(v->db), "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
	char cmd[3 * PATH_MAX];
	snprintf(cmd, sizeof cmd, "cp '%s' '%s'", v->db_path, copy);
	assert_int_equal(system(cmd), 0);
	struct vault_rekey rk = { 0 };
	assert_int_equal(vault_key_rekey(v->db, v->key_path, &rk, &e), 0);
	snprintf(first, sizeof first, "%s", rk.retired);
	assert_int_equal(vault_key_rekey(v->db, v->key_path, &rk, &e), 0);
	snprintf(second, sizeof second, "%s", rk.retired);
	assert_string_not_equal(first, second);
	struct stat a, b;
	assert_int_equal(stat(first, &a), 0);
	assert_int_equal(stat(second, &b), 0);
	assert_int_equal(a.st_mode & 0777, 0400);
	assert_true(a.st_ino != b.st_ino);
	struct vault_db *old = acl_db_open(copy, 0, &e);
	assert_non_null(old);
	struct vault_key *k = vault_key_load(old, first, &e);
	if (!k)
		fail_msg("the first retired key no longer opens the copy: %s", e.msg);
	vault_key_free(k);
	vault_db_close(old);
	k = vault_key_load(v->db, v->key_path, &e);
	assert_non_null(k);
	vault_key_free(k);
}

/* 1 when the bytes occur in the database file or its WAL. */
static int in_db_files(struct tvault *v, const uint8_t *bytes, size_t len)
{
	const char *suffix[] = { "", "-wal" };
	int found = 0;
	for (int i = 0; i < 2; i++) {
		char path[PATH_MAX + 8];
		snprintf(path, sizeof path, "%s%s", v->db_path, suffix[i]);
		FILE *f = fopen(path, "rb");
		if (!f)
			continue;
		static char buf[4 << 20];
		size_t n = fread(buf, 1, sizeof buf, f);
		fclose(f);
		found |= memmem(buf, n, bytes, len) != NULL;
	}
	return found;
}

static void test_plaintext_not_in_file(void **state)
{
	struct tvault *v = *state;
	struct vault_err e = { 0 };
	const char *val = "plaintext-marker-7f3a9c1e5b";
	assert_int_equal(vault_secret_put(v->db, v->key, "p", "marker", (const uint8_t *)val, strlen(val), 1, NULL, &e), 0);
	sqlite3_exec(vault_db_handle(v->db), "PRAGMA wal_checkpoint(FULL)", NULL, NULL, NULL);
	assert_false(in_db_files(v, (const uint8_t *)val, strlen(val)));
}

static int64_t count_versions(struct tvault *v, int64_t sid)
{
	sqlite3_stmt *st;
	sqlite3_prepare_v2(vault_db_handle(v->db), "SELECT count(*) FROM secret_versions WHERE secret_id = ?", -1, &st, NULL);
	sqlite3_bind_int64(st, 1, sid);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* keep_versions bounds the history; destroyed ciphertexts are gone from
 * the file; rollback moves the current version to a kept one only. */
static void test_keep_versions_and_rollback(void **state)
{
	struct tvault *v = *state;
	struct vault_err e = { 0 };
	vault_db_set_keep_versions(v->db, 3);
	struct vault_sealed old[2];
	struct vault_secret s;
	char val[32];
	for (int i = 1; i <= 5; i++) {
		snprintf(val, sizeof val, "value-%d", i);
		assert_int_equal(vault_secret_put(v->db, v->key, "p", "k", (const uint8_t *)val, strlen(val), 1, NULL, &e), 0);
		assert_int_equal(vault_secret_find(v->db, "p", "k", &s, &e), 1);
		if (i <= 2) /* the ciphertexts that must be destroyed */
			assert_int_equal(vault_sealed_load(v->db, s.id, i, &old[i - 1], &e), 1);
	}
	assert_int_equal(s.version, 5);
	assert_int_equal(count_versions(v, s.id), 3);
	struct vault_sealed sl;
	assert_int_equal(vault_sealed_load(v->db, s.id, 2, &sl, &e), 0);
	assert_int_equal(vault_sealed_load(v->db, s.id, 3, &sl, &e), 1);
	vault_sealed_clear(&sl);
	sqlite3_exec(vault_db_handle(v->db), "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
	for (int i = 0; i < 2; i++) {
		assert_false(in_db_files(v, old[i].ct, old[i].ctlen));
		vault_sealed_clear(&old[i]);
	}
	/* rollback to a kept version: current, its length; to a destroyed one: refused */
	int64_t was = 0, g = vault_generation(v->db, &e);
	assert_int_equal(vault_secret_rollback(v->db, "p", "k", 3, &was, &e), 0);
	assert_int_equal(was, 5);
	assert_true(vault_generation(v->db, &e) > g);
	assert_int_equal(vault_secret_find(v->db, "p", "k", &s, &e), 1);
	assert_int_equal(s.version, 3);
	assert_int_equal(s.len, 7);
	assert_int_equal(vault_secret_rollback(v->db, "p", "k", 3, &was, &e), 1);
	assert_int_equal(vault_secret_rollback(v->db, "p", "k", 2, &was, &e), -1);
	assert_int_equal(e.code, VAULT_ENOENT);
	assert_non_null(strstr(e.msg, "kept: 3 to 5"));
	assert_int_equal(vault_secret_rollback(v->db, "p", "nope", 1, &was, &e), -1);
	/* the next put is numbered above the highest, and is current */
	int64_t ver = 0;
	assert_int_equal(vault_secret_put(v->db, v->key, "p", "k", (const uint8_t *)"six", 3, 1, &ver, &e), 0);
	assert_int_equal(ver, 6);
	assert_int_equal(count_versions(v, s.id), 3);
}

static void test_provider_rules(void **state)
{
	struct tvault *v = *state;
	struct vault_err e = { 0 };
	assert_int_equal(vault_provider_add(v->db, "openai", &e), 0);
	assert_int_equal(vault_provider_add(v->db, "openai", &e), -1);
	assert_int_equal(e.code, VAULT_EEXIST);
	assert_int_equal(vault_secret_put(v->db, v->key, "nope", "k", (const uint8_t *)"x", 1, 0, NULL, &e), -1);
	assert_int_equal(e.code, VAULT_ENOENT);
	assert_non_null(strstr(e.msg, "provider add"));
	assert_int_equal(vault_secret_put(v->db, v->key, "openai", "k", (const uint8_t *)"x", 1, 0, NULL, &e), 0);
	assert_int_equal(vault_provider_rm(v->db, "openai", &e), -1);
	assert_non_null(strstr(e.msg, "still has 1 secret"));
	assert_int_equal(vault_secret_rm(v->db, "openai", "k", &e), 0);
	assert_int_equal(vault_provider_rm(v->db, "openai", &e), 0);
	assert_int_equal(vault_provider_rm(v->db, "openai", &e), -1);
	assert_int_equal(e.code, VAULT_ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_over_cap_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_versions_and_ad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_row_copy_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_master_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_file_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_db_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_or_foreign_store_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_locked_db, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rekey, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rekey_keeps_every_retired_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plaintext_not_in_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_provider_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keep_versions_and_rollback, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
