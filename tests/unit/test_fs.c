/* test_fs.c - scopeholdfs's options: the config file fills the settings and
 * the command line overrides them; bad settings are refused by line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fs/fs.h"
#include "tests/unit/helpers.h"

static char dir[PATH_MAX];

static const char *write_ini(const char *text)
{
	static char path[PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/t.ini", dir);
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static int parse(int argc, char **argv, struct fs_opts *o, struct vault_config *cfg)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	int rc = fs_conf(&args, o, cfg);
	fs_opts_free(o);
	fuse_opt_free_args(&args);
	return rc;
}

static void test_config_then_cmdline(void **state)
{
	(void)state;
	const char *ini = write_ini("[vault]\ndb = /x/ini.db\nkey_file = /x/ini.key\n"
				    "[audit]\nsync = full\n[identity]\nproc_root = /fakeproc\n");
	char c_opt[] = "-c", db_opt[] = "--db=/cli.db", prog[] = "scopeholdfs", mp[] = "/mnt";
	char *ini_arg = strdup(ini);
	char *argv[] = { prog, c_opt, ini_arg, db_opt, mp, NULL };
	struct fs_opts o;
	struct vault_config cfg;
	assert_int_equal(parse(5, argv, &o, &cfg), 0);
	assert_string_equal(cfg.db, "/cli.db");          /* command line wins */
	assert_string_equal(cfg.key_file, "/x/ini.key"); /* from the file */
	assert_string_equal(cfg.proc_root, "/fakeproc");
	assert_int_equal(cfg.audit_sync, VAULT_SYNC_FULL);
	free(ini_arg);
}

static void test_bad_config(void **state)
{
	(void)state;
	struct vault_config cfg;
	struct vault_err e = { 0 };
	const char *ini = write_ini("[vault]\ndb = /x\n[audit]\nsync = sometimes\n");
	assert_int_equal(vault_config_load(&cfg, ini, &e), -1);
	assert_non_null(strstr(e.msg, "line 4"));
	assert_non_null(strstr(e.msg, "sync"));
	ini = write_ini("[vault]\npassword = hunter2\n");
	assert_int_equal(vault_config_load(&cfg, ini, &e), -1);
	assert_non_null(strstr(e.msg, "line 2"));
	char missing[PATH_MAX + 16];
	snprintf(missing, sizeof missing, "%s/none.ini", dir);
	assert_int_equal(vault_config_load(&cfg, missing, &e), -1);
	assert_int_equal(e.code, VAULT_ENOENT);
}

static void test_defaults(void **state)
{
	(void)state;
	struct vault_config cfg;
	struct vault_err e = { 0 };
	unsetenv("SCOPEHOLD_CONFIG");
	/* with no explicit file and none at the default path: defaults */
	if (access(VAULT_DEFAULT_CONFIG, F_OK) == 0)
		skip();
	assert_int_equal(vault_config_load(&cfg, NULL, &e), 0);
	assert_string_equal(cfg.db, VAULT_DEFAULT_DB);
	assert_string_equal(cfg.mountpoint, VAULT_DEFAULT_MOUNT);
	assert_string_equal(cfg.proc_root, "/proc");
	assert_int_equal(cfg.audit_sync, VAULT_SYNC_NORMAL);
	/* $SCOPEHOLD_CONFIG is read when no -c is given */
	setenv("SCOPEHOLD_CONFIG", write_ini("[fs]\nmountpoint = /run/x\n"), 1);
	assert_int_equal(vault_config_load(&cfg, NULL, &e), 0);
	assert_string_equal(cfg.mountpoint, "/run/x");
	unsetenv("SCOPEHOLD_CONFIG");
}

static void test_inode_kinds(void **state)
{
	(void)state;
	unsigned char key[16] = { 1, 2, 3 };
	fs_ino_init(key);
	fuse_ino_t p = FS_INO_PROVIDER_OF(42), s = FS_INO_SECRET_OF(0, 42);
	assert_true(p != s);
	assert_int_equal(FS_INO_KIND(p), FS_INO_PROVIDER);
	assert_int_equal(FS_INO_KIND(s), FS_INO_SECRET);
	assert_int_equal(FS_INO_ID(p), 42);
	assert_int_equal(FS_INO_SECRET_ID(s), 42);
	assert_int_equal(FS_INO_KIND(FS_INO_ROOT), 0);
	/* two agents never share a secret's node id */
	fuse_ino_t a = FS_INO_SECRET_OF(7, 42), b = FS_INO_SECRET_OF(8, 42);
	assert_true(a != b);
	assert_int_equal(FS_INO_KIND(a), FS_INO_SECRET);
	assert_int_equal(FS_INO_SECRET_ID(a), 42);
	assert_int_equal(FS_INO_AGENT(a), 7);
	fuse_ino_t m = FS_INO_SECRET_OF(FS_AGENT_MAX, FS_SECRET_MAX);
	assert_int_equal(FS_INO_KIND(m), FS_INO_SECRET);
	assert_int_equal(FS_INO_AGENT(m), FS_AGENT_MAX);
	assert_int_equal(FS_INO_SECRET_ID(m), FS_SECRET_MAX);
}

/* Node ids show no database id: consecutive ids give unrelated numbers,
 * every id decodes back, and another key gives other numbers. */
static void test_inode_numbers_are_opaque(void **state)
{
	(void)state;
	unsigned char key[16] = { 9 }, other[16] = { 10 };
	fs_ino_init(key);
	uint64_t prev = 0;
	int low = 0, near = 0;
	for (uint64_t id = 1; id <= 4096; id++) {
		fuse_ino_t x = FS_INO_SECRET_OF(3, id);
		assert_int_equal(FS_INO_SECRET_ID(x), (int64_t)id);
		assert_int_equal(FS_INO_AGENT(x), 3);
		assert_int_equal(FS_INO_ID(FS_INO_PROVIDER_OF(id)), (int64_t)id);
		uint64_t v = x & FS_INO_MASK;
		low += v < (1ULL << 40);            /* an id shows as a small number */
		near += prev && (v > prev ? v - prev : prev - v) < 1000; /* or one step apart */
		prev = v;
	}
	assert_true(low < 8);
	assert_true(near < 8);
	fuse_ino_t a = FS_INO_SECRET_OF(3, 77);
	fs_ino_init(other);
	assert_true(FS_INO_SECRET_OF(3, 77) != a);
	fs_ino_init(key);
	assert_true(FS_INO_SECRET_OF(3, 77) == a); /* stable under one key */
}

static int setup(void **state)
{
	(void)state;
	th_tmpdir(dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	th_rmrf(dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_then_cmdline),
		cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_inode_kinds),
		cmocka_unit_test(test_inode_numbers_are_opaque),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
