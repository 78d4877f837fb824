/* helpers.c - temporary directories and vaults for the unit tests. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ftw.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "tests/unit/helpers.h"

/* SCOPEHOLD_TEST_SKIP=PATTERN skips the tests whose names match (cmocka's
 * wildcards * and ?), for runs where a test cannot work, such as under a
 * valgrind that lacks a syscall (scripts/valgrind-unit says which and why). */
__attribute__((constructor)) static void th_skip_from_env(void)
{
	const char *skip = getenv("SCOPEHOLD_TEST_SKIP");
	if (skip && *skip)
		cmocka_set_skip_filter(skip);
}

void th_tmpdir(char *dir)
{
	const char *base = getenv("TMPDIR");
	snprintf(dir, PATH_MAX, "%s/scopehold-unit-XXXXXX", base && *base ? base : "/tmp");
	assert_non_null(mkdtemp(dir));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	chmod(path, 0700);
	return remove(path);
}

void th_rmrf(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

struct tvault *th_vault_new(void)
{
	struct vault_err e = { 0 };
	struct tvault *v = calloc(1, sizeof *v);
	assert_non_null(v);
	th_tmpdir(v->dir);
	snprintf(v->db_path, sizeof v->db_path, "%s/db", v->dir);
	snprintf(v->key_path, sizeof v->key_path, "%s/key", v->dir);
	v->db = acl_db_open(v->db_path, VAULT_DB_CREATE, &e);
	if (!v->db)
		fail_msg("acl_db_open: %s", e.msg);
	if (vault_key_init(v->db, v->key_path, &e) < 0)
		fail_msg("vault_key_init: %s", e.msg);
	v->key = vault_key_load(v->db, v->key_path, &e);
	if (!v->key)
		fail_msg("vault_key_load: %s", e.msg);
	return v;
}

void th_vault_free(struct tvault *v)
{
	if (!v)
		return;
	vault_key_free(v->key);
	vault_db_close(v->db);
	th_rmrf(v->dir);
	free(v);
}
