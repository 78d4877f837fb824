/* secret.c - providers, secrets and their sealed versions in the database.
 * A put seals the value under the data key with additional data that binds
 * it to (secret id, version, provider, key); plaintext never reaches SQLite. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "vault/vault.h"

int64_t vault_provider_id(struct vault_db *db, const char *name, struct vault_err *e)
{
	sqlite3_stmt *st = vault_db_stmt(db, "SELECT id FROM providers WHERE name = ?", e);
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	int64_t id = 0;
	if (rc == SQLITE_ROW)
		id = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		id = vault_fail_sql(e, vault_db_handle(db), rc, "looking up a provider");
	sqlite3_reset(st);
	return id;
}

static int provider_insert(struct vault_db *db, const char *name, struct vault_err *e)
{
	sqlite3_stmt *st = vault_db_stmt(db, "INSERT INTO providers(name, created_ns) VALUES (?, ?)", e);
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, vault_now_ns());
	return vault_db_step_done(db, st, "adding a provider", e);
}

int vault_provider_add(struct vault_db *db, const char *name, struct vault_err *e)
{
	if (vault_name_check("provider", name, e) < 0 || vault_db_begin(db, e) < 0)
		return -1;
	int64_t id = vault_provider_id(db, name, e);
	if (id > 0)
		vault_fail(e, VAULT_EEXIST, "provider '%s' already exists", name);
	if (id != 0 || provider_insert(db, name, e) < 0 || vault_db_commit(db, e) < 0) {
		vault_db_rollback(db);
		return -1;
	}
	return 0;
}

int vault_provider_rm(struct vault_db *db, const char *name, struct vault_err *e)
{
	if (vault_name_check("provider", name, e) < 0 || vault_db_begin(db, e) < 0)
		return -1;
	int64_t id = vault_provider_id(db, name, e);
	if (id == 0)
		vault_fail(e, VAULT_ENOENT, "provider '%s' does not exist", name);
	if (id <= 0)
		goto fail;
	sqlite3_stmt *st = vault_db_stmt(db, "SELECT count(*) FROM secrets WHERE provider_id = ?", e);
	if (!st)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	int64_t n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_reset(st);
	if (n < 0) {
		vault_fail_sql(e, vault_db_handle(db), rc, "counting a provider's secrets");
		goto fail;
	}
	if (n != 0) {
		vault_fail(e, VAULT_EEXIST, "provider '%s' still has %lld secret(s); remove them first",
			   name, (long long)n);
		goto fail;
	}
	st = vault_db_stmt(db, "DELETE FROM providers WHERE id = ?", e);
	if (!st)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	if (vault_db_step_done(db, st, "removing a provider", e) < 0 || vault_db_commit(db, e) < 0)
		goto fail;
	return 0;
fail:
	vault_db_rollback(db);
	return -1;
}

int vault_secret_find(struct vault_db *db, const char *provider, const char *key,
		      struct vault_secret *out, struct vault_err *e)
{
	sqlite3_stmt *st = vault_db_stmt(db,
		"SELECT s.id, s.provider_id, s.version, s.len, s.created_ns FROM secrets s"
		" JOIN providers p ON p.id = s.provider_id WHERE p.name = ? AND s.key = ?", e);
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, provider, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st), found = 0;
	if (rc == SQLITE_ROW) {
		out->id = sqlite3_column_int64(st, 0);
		out->provider_id = sqlite3_column_int64(st, 1);
		out->version = sqlite3_column_int64(st, 2);
		out->len = sqlite3_column_int64(st, 3);
		out->created_ns = sqlite3_column_int64(st, 4);
		snprintf(out->provider, sizeof out->provider, "%s", provider);
		snprintf(out->key, sizeof out->key, "%s", key);
		found = 1;
	} else if (rc != SQLITE_DONE) {
		found = vault_fail_sql(e, vault_db_handle(db), rc, "looking up a secret");
	}
	sqlite3_reset(st);
	return found;
}

int vault_secret_put(struct vault_db *db, const struct vault_key *k,
		     const char *provider, const char *key,
		     const uint8_t *value, size_t len, int create_provider,
		     int64_t *version, struct vault_err *e)
{
	if (vault_name_check("provider", provider, e) < 0 || vault_name_check("key", key, e) < 0)
		return -1;
	if (len > VAULT_VALUE_MAX)
		return vault_fail(e, VAULT_EINVAL, "value is %zu bytes; the limit is %d bytes (1 MiB)",
				  len, VAULT_VALUE_MAX);
	uint8_t *ct = malloc(len + VAULT_TAG_BYTES);
	if (!ct)
		return vault_fail(e, VAULT_ENOMEM, "out of memory");
	if (vault_db_begin(db, e) < 0) {
		free(ct);
		return -1;
	}
	struct vault_secret s;
	int64_t pid = vault_provider_id(db, provider, e);
	if (pid == 0 && !create_provider) {
		vault_fail(e, VAULT_ENOENT, "provider '%s' does not exist; run: scopeholdctl provider add %s",
			   provider, provider);
		goto fail;
	}
	if (pid == 0) {
		if (provider_insert(db, provider, e) < 0)
			goto fail;
		pid = sqlite3_last_insert_rowid(vault_db_handle(db));
	}
	if (pid < 0)
		goto fail;
	int found = vault_secret_find(db, provider, key, &s, e);
	if (found < 0)
		goto fail;
	if (!found) {
		sqlite3_stmt *st = vault_db_stmt(db, "INSERT INTO secrets(provider_id, key, created_ns) VALUES (?, ?, ?)", e);
		if (!st)
			goto fail;
		sqlite3_bind_int64(st, 1, pid);
		sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, vault_now_ns());
		if (vault_db_step_done(db, st, "adding a secret", e) < 0)
			goto fail;
		s.id = sqlite3_last_insert_rowid(vault_db_handle(db));
	}
	/* after a rollback the current version is not the highest */
	int64_t top = 0;
	sqlite3_stmt *mx = vault_db_stmt(db, "SELECT coalesce(max(version), 0) FROM secret_versions WHERE secret_id = ?", e);
	if (!mx)
		goto fail;
	sqlite3_bind_int64(mx, 1, s.id);
	int mrc = sqlite3_step(mx);
	if (mrc == SQLITE_ROW)
		top = sqlite3_column_int64(mx, 0);
	sqlite3_reset(mx);
	if (mrc != SQLITE_ROW) {
		vault_fail_sql(e, vault_db_handle(db), mrc, "numbering a secret version");
		goto fail;
	}
	struct vault_ad ad = { s.id, top + 1, provider, key };
	uint8_t nonce[VAULT_NONCE_BYTES];
	if (vault_seal(k, &ad, value, len, nonce, ct, e) < 0)
		goto fail;
	int64_t now = vault_now_ns();
	sqlite3_stmt *st = vault_db_stmt(db, "INSERT INTO secret_versions(secret_id, version, nonce, ct, len, created_ns,"
					     " created_uid) VALUES (?, ?, ?, ?, ?, ?, ?)", e);
	if (!st)
		goto fail;
	sqlite3_bind_int64(st, 1, s.id);
	sqlite3_bind_int64(st, 2, ad.version);
	sqlite3_bind_blob(st, 3, nonce, sizeof nonce, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, ct, (int)(len + VAULT_TAG_BYTES), SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (int64_t)len);
	sqlite3_bind_int64(st, 6, now);
	sqlite3_bind_int64(st, 7, (int64_t)getuid());
	if (vault_db_step_done(db, st, "storing a secret version", e) < 0)
		goto fail;
	/* History bound: the newest keep_versions versions stay (secure_delete
	 * overwrites the ciphertext of the others in the file). */
	st = vault_db_stmt(db, "DELETE FROM secret_versions WHERE secret_id = ? AND version <= ?", e);
	if (!st)
		goto fail;
	sqlite3_bind_int64(st, 1, s.id);
	sqlite3_bind_int64(st, 2, ad.version - vault_db_keep_versions(db));
	if (vault_db_step_done(db, st, "removing old secret versions", e) < 0)
		goto fail;
	st = vault_db_stmt(db, "UPDATE secrets SET version = ?, len = ? WHERE id = ?", e);
	if (!st)
		goto fail;
	sqlite3_bind_int64(st, 1, ad.version);
	sqlite3_bind_int64(st, 2, (int64_t)len);
	sqlite3_bind_int64(st, 3, s.id);
	if (vault_db_step_done(db, st, "updating a secret", e) < 0 || vault_generation_bump(db, e) < 0 ||
	    vault_db_commit(db, e) < 0)
		goto fail;
	free(ct);
	if (version)
		*version = ad.version;
	return 0;
fail:
	vault_db_rollback(db);
	free(ct);
	return -1;
}

/* Begin a transaction and find provider/key in it: 0 (transaction open), or
 * -1 (rolled back; a missing secret is VAULT_ENOENT). */
static int begin_find(struct vault_db *db, const char *provider, const char *key, struct vault_secret *s,
		      struct vault_err *e)
{
	if (vault_db_begin(db, e) < 0)
		return -1;
	int found = vault_secret_find(db, provider, key, s, e);
	if (found == 0)
		vault_fail(e, VAULT_ENOENT, "secret '%s/%s' does not exist", provider, key);
	if (found <= 0) {
		vault_db_rollback(db);
		return -1;
	}
	return 0;
}

int vault_secret_rm(struct vault_db *db, const char *provider, const char *key, struct vault_err *e)
{
	struct vault_secret s;
	if (begin_find(db, provider, key, &s, e) < 0)
		return -1;
	/* Dependent rows of other modules (grants, assignments) cascade. */
	sqlite3_stmt *st = vault_db_stmt(db, "DELETE FROM secrets WHERE id = ?", e);
	if (!st)
		goto fail;
	sqlite3_bind_int64(st, 1, s.id);
	if (vault_db_step_done(db, st, "removing a secret", e) < 0 || vault_generation_bump(db, e) < 0 ||
	    vault_db_commit(db, e) < 0)
		goto fail;
	return 0;
fail:
	vault_db_rollback(db);
	return -1;
}

int vault_secret_rollback(struct vault_db *db, const char *provider, const char *key,
			  int64_t version, int64_t *was, struct vault_err *e)
{
	struct vault_secret s;
	if (begin_find(db, provider, key, &s, e) < 0)
		return -1;
	if (was)
		*was = s.version;
	if (version == s.version) {
		vault_db_rollback(db);
		vault_fail(e, VAULT_EEXIST, "version %lld of '%s/%s' is already current", (long long)version,
			   provider, key);
		return 1;
	}
	sqlite3_stmt *st = vault_db_stmt(db, "SELECT len, (SELECT min(version) FROM secret_versions WHERE secret_id = ?1),"
					     " (SELECT max(version) FROM secret_versions WHERE secret_id = ?1)"
					     " FROM (SELECT 1) LEFT JOIN secret_versions ON secret_id = ?1 AND version = ?2", e);
	if (!st)
		goto fail;
	sqlite3_bind_int64(st, 1, s.id);
	sqlite3_bind_int64(st, 2, version);
	int rc = sqlite3_step(st);
	int kept = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
	int64_t len = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	long long lo = rc == SQLITE_ROW ? sqlite3_column_int64(st, 1) : 0, hi = rc == SQLITE_ROW ? sqlite3_column_int64(st, 2) : 0;
	sqlite3_reset(st);
	if (rc != SQLITE_ROW) {
		vault_fail_sql(e, vault_db_handle(db), rc, "looking up a secret version");
		goto fail;
	}
	if (!kept) {
		vault_fail(e, VAULT_ENOENT, "version %lld of '%s/%s' is not kept (kept: %lld to %lld; older ones "
			   "are destroyed beyond [vault] keep_versions)", (long long)version, provider, key, lo, hi);
		goto fail;
	}
	st = vault_db_stmt(db, "UPDATE secrets SET version = ?, len = ? WHERE id = ?", e);
	if (!st)
		goto fail;
	sqlite3_bind_int64(st, 1, version);
	sqlite3_bind_int64(st, 2, len);
	sqlite3_bind_int64(st, 3, s.id);
	if (vault_db_step_done(db, st, "rolling a secret back", e) < 0 || vault_generation_bump(db, e) < 0 ||
	    vault_db_commit(db, e) < 0)
		goto fail;
	return 0;
fail:
	vault_db_rollback(db);
	return -1;
}

int vault_sealed_load(struct vault_db *db, int64_t secret_id, int64_t version,
		      struct vault_sealed *out, struct vault_err *e)
{
	sqlite3_stmt *st = vault_db_stmt(db,
		"SELECT v.nonce, v.ct, p.name, s.key FROM secret_versions v"
		" JOIN secrets s ON s.id = v.secret_id JOIN providers p ON p.id = s.provider_id"
		" WHERE v.secret_id = ? AND v.version = ?", e);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, secret_id);
	sqlite3_bind_int64(st, 2, version);
	memset(out, 0, sizeof *out);
	int rc = sqlite3_step(st), found = 0;
	if (rc == SQLITE_ROW) {
		int nl = sqlite3_column_bytes(st, 0), cl = sqlite3_column_bytes(st, 1);
		const char *pn = (const char *)sqlite3_column_text(st, 2);
		const char *kn = (const char *)sqlite3_column_text(st, 3);
		if (nl != VAULT_NONCE_BYTES || cl < VAULT_TAG_BYTES || cl > VAULT_VALUE_MAX + VAULT_TAG_BYTES ||
		    !pn || !kn || strlen(pn) > VAULT_NAME_MAX || strlen(kn) > VAULT_NAME_MAX) {
			found = vault_fail(e, VAULT_ECORRUPT, "secret version %lld of secret id %lld is damaged",
					   (long long)version, (long long)secret_id);
		} else if (!(out->ct = malloc((size_t)cl))) {
			found = vault_fail(e, VAULT_ENOMEM, "out of memory");
		} else {
			memcpy(out->nonce, sqlite3_column_blob(st, 0), VAULT_NONCE_BYTES);
			memcpy(out->ct, sqlite3_column_blob(st, 1), (size_t)cl);
			out->ctlen = (size_t)cl;
			strcpy(out->provider, pn);
			strcpy(out->key, kn);
			out->ad.secret_id = secret_id;
			out->ad.version = version;
			found = 1;
		}
	} else if (rc != SQLITE_DONE) {
		found = vault_fail_sql(e, vault_db_handle(db), rc, "loading a secret version");
	}
	sqlite3_reset(st);
	return found;
}

void vault_sealed_clear(struct vault_sealed *s)
{
	if (!s)
		return;
	free(s->ct);
	s->ct = NULL;
	s->ctlen = 0;
}

int vault_sealed_open(const struct vault_key *k, const struct vault_sealed *s,
		      uint8_t *pt, struct vault_err *e)
{
	struct vault_ad ad = s->ad;
	ad.provider = s->provider;
	ad.key = s->key;
	return vault_unseal(k, &ad, s->nonce, s->ct, s->ctlen, pt, e);
}
