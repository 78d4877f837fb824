/* test_names.c - name validation: what DESIGN.md allows and refuses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vault/vault.h"

static void refused(const char *name, const char *needle)
{
	struct vault_err e = { 0 };
	assert_int_equal(vault_name_check("provider", name, &e), -1);
	assert_int_equal(e.code, VAULT_EINVAL);
	assert_non_null(strstr(e.msg, needle));
	assert_null(strchr(e.msg, '\n'));
}

static void test_refuses_bad_names(void **state)
{
	(void)state;
	refused("", "empty");
	refused(".", "not allowed");
	refused("..", "not allowed");
	refused("a/b", "'/'");
	refused("/", "'/'");
	refused(".hidden", "character");
	refused("-x", "character");
	refused("a b", "character");
	refused("caf\xc3\xa9", "character");
	char n129[130], n300[301];
	memset(n129, 'a', 129);
	n129[129] = 0;
	memset(n300, 'b', 300);
	n300[300] = 0;
	refused(n129, "129 characters");
	refused(n300, "300 characters");
}

static void test_refuses_nul(void **state)
{
	(void)state;
	struct vault_err e = { 0 };
	assert_int_equal(vault_name_checkn("key", "ab\0cd", 5, &e), -1);
	assert_non_null(strstr(e.msg, "NUL"));
	assert_int_equal(vault_name_checkn("key", "abcd", 4, &e), 0);
}

/* A counted name is read only within its length (fuzz_names found
 * shown_name and the "."/".." test reading on to a NUL): the launch socket
 * hands over names that are not NUL-terminated. */
static void test_counted_name_not_read_past_len(void **state)
{
	(void)state;
	struct vault_err e = { 0 };
	const char buf[] = "a/SECRETBYTES";
	assert_int_equal(vault_name_checkn("agent", buf, 2, &e), -1);
	assert_non_null(strstr(e.msg, "'a/'"));
	assert_null(strstr(e.msg, "SECRET"));
	assert_int_equal(vault_name_checkn("agent", "..x", 2, &e), -1);
	assert_non_null(strstr(e.msg, "not allowed"));
	assert_int_equal(vault_name_checkn("agent", ".x", 1, &e), -1);
	assert_int_equal(vault_name_checkn("agent", "ok!", 2, &e), 0);
}

static void test_accepts_good_names(void **state)
{
	(void)state;
	struct vault_err e = { 0 };
	char n128[129];
	memset(n128, 'z', 128);
	n128[128] = 0;
	const char *good[] = { "stripe", "a", "0", "test_key", "sk-live.v2", "A_b-c.d", n128 };
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		assert_int_equal(vault_name_check("key", good[i], &e), 0);
}

static void test_path_split(void **state)
{
	(void)state;
	struct vault_err e = { 0 };
	char p[VAULT_NAME_MAX + 1], k[VAULT_NAME_MAX + 1];
	assert_int_equal(vault_path_split("stripe/test_key", p, k, &e), 0);
	assert_string_equal(p, "stripe");
	assert_string_equal(k, "test_key");
	const char *bad[] = { "", "stripe", "/key", "stripe/", "a/b/c", "../x", "x/..", "./x" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		memset(&e, 0, sizeof e);
		assert_int_equal(vault_path_split(bad[i], p, k, &e), -1);
		assert_int_equal(e.code, VAULT_EINVAL);
	}
	char longp[400];
	memset(longp, 'p', 300);
	strcpy(longp + 300, "/k");
	assert_int_equal(vault_path_split(longp, p, k, &e), -1);
	assert_non_null(strstr(e.msg, "longer than 128"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refuses_bad_names),
		cmocka_unit_test(test_refuses_nul),
		cmocka_unit_test(test_counted_name_not_read_past_len),
		cmocka_unit_test(test_accepts_good_names),
		cmocka_unit_test(test_path_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
