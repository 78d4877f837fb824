/* helpers.h - what the unit tests share: a private temporary directory and
 * a fresh initialised vault in it. */
#ifndef SCOPEHOLD_TEST_HELPERS_H
#define SCOPEHOLD_TEST_HELPERS_H

#include <limits.h>

#include "acl/acl.h"
#include "vault/vault.h"

struct tvault {
	char dir[PATH_MAX];
	char db_path[PATH_MAX];
	char key_path[PATH_MAX];
	struct vault_db *db;
	struct vault_key *key;
};

/* mkdtemp a 0700 directory; returns its path (static storage per call site
 * is the caller's: dir must hold PATH_MAX). */
void th_tmpdir(char *dir);
/* rm -rf dir. */
void th_rmrf(const char *dir);
/* New vault: database with every schema, master key, data key loaded. */
struct tvault *th_vault_new(void);
void th_vault_free(struct tvault *v);

#endif
