/* fuzz_names.c - vault_name_check, vault_name_checkn and vault_path_split on
 * any bytes: never crash, and accept exactly [A-Za-z0-9][A-Za-z0-9._-]{0,127}
 * (never ".", "..", a '/' or a NUL), the P/K split agreeing with the checks. */
#include <assert.h>

#include "tests/fuzz/fuzz.h"
#include "vault/vault.h"

static int name_ok(const char *s, size_t n)
{
	if (n < 1 || n > VAULT_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
			return 0;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vault_err e;
	char provider[VAULT_NAME_MAX + 1], key[VAULT_NAME_MAX + 1];
	char *s = fuzz_str(data, size);
	size_t n = strlen(s);
	int want = n == size && name_ok(s, n);

	int rn = vault_name_checkn("name", (const char *)data, size, &e);
	if ((rn == 0) != want)
		abort();
	if (rn < 0 && strlen(e.msg) == 0)
		abort(); /* a refusal says why */
	int r = vault_name_check("name", s, &e);
	if ((r == 0) != name_ok(s, n))
		abort();

	memset(provider, 0x55, sizeof provider);
	memset(key, 0x55, sizeof key);
	r = vault_path_split(s, provider, key, &e);
	const char *slash = strchr(s, '/');
	int pk_ok = slash && name_ok(s, (size_t)(slash - s)) && name_ok(slash + 1, strlen(slash + 1));
	if ((r == 0) != pk_ok)
		abort();
	if (r == 0 && (strlen(provider) != (size_t)(slash - s) || memcmp(provider, s, strlen(provider)) ||
		       strcmp(key, slash + 1)))
		abort();
	free(s);
	return 0;
}
