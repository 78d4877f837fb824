/* readall.c - for the crash tests: open the vault DB with the key file KEY
 * as the daemon does and check that every secret named on stdin ("P/K HEX",
 * one a line, HEX the expected value) reads back. Prints "read N secrets",
 * or one line naming the first that does not (never a value); exit 0 or 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "acl/acl.h"
#include "vault/vault.h"

static int check(struct vault_db *db, const struct vault_key *k, const char *pk, const char *hex)
{
	char p[VAULT_NAME_MAX + 1], key[VAULT_NAME_MAX + 1];
	struct vault_err e = { 0 };
	struct vault_secret s;
	struct vault_sealed sl;
	static uint8_t want[VAULT_VALUE_MAX], got[VAULT_VALUE_MAX];
	size_t wlen;
	if (vault_path_split(pk, p, key, &e) < 0 ||
	    sodium_hex2bin(want, sizeof want, hex, strlen(hex), NULL, &wlen, NULL) != 0)
		return fprintf(stderr, "readall: bad input line for '%s'\n", pk), 1;
	if (vault_secret_find(db, p, key, &s, &e) != 1)
		return fprintf(stderr, "readall: %s: not found %s\n", pk, e.msg), 1;
	int r = vault_sealed_load(db, s.id, s.version, &sl, &e);
	if (r != 1)
		return fprintf(stderr, "readall: %s: cannot load: %s\n", pk, e.msg), 1;
	r = vault_sealed_open(k, &sl, got, &e);
	size_t len = sl.ctlen - VAULT_TAG_BYTES;
	vault_sealed_clear(&sl);
	if (r < 0)
		return fprintf(stderr, "readall: %s: %s\n", pk, e.msg), 1;
	r = len != wlen || sodium_memcmp(got, want, len) != 0;
	sodium_memzero(got, len);
	sodium_memzero(want, wlen);
	if (r)
		fprintf(stderr, "readall: %s: reads back a different value\n", pk);
	return r;
}

int main(int argc, char **argv)
{
	if (argc != 3)
		return fprintf(stderr, "usage: scopehold-readall DB KEY < 'P/K HEX' lines\n"), 2;
	if (sodium_init() < 0)
		return 1;
	struct vault_err e = { 0 };
	struct vault_db *db = acl_db_open(argv[1], VAULT_DB_NOMIGRATE, &e); /* read only what is there */
	struct vault_key *k = db ? vault_key_load(db, argv[2], &e) : NULL;
	if (!k) {
		fprintf(stderr, "readall: %s\n", e.msg);
		vault_db_close(db);
		return 1;
	}
	static char line[2 * VAULT_VALUE_MAX + 512];
	int bad = 0, n = 0;
	while (!bad && fgets(line, sizeof line, stdin)) {
		line[strcspn(line, "\n")] = 0;
		char *sp = strchr(line, ' ');
		if (!sp)
			continue;
		*sp = 0;
		bad = check(db, k, line, sp + 1);
		n++;
	}
	vault_key_free(k);
	vault_db_close(db);
	if (!bad)
		printf("read %d secrets\n", n);
	return bad;
}
