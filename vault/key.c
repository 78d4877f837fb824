/* key.c - the master key file, the data key it wraps, and sealing of values.
 *
 * MUST:
 * - key material lives only in sodium_malloc memory (guard pages, mlocked,
 *   excluded from core dumps) and is wiped on every path out;
 * - the master key file is refused when it is a link, not a regular file,
 *   owned by another user, or accessible by group/others;
 * - a value is sealed with XChaCha20-Poly1305 under a fresh random nonce and
 *   additional data binding secret id, version, provider and key. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "vault/vault.h"

struct vault_key {
	uint8_t *dk; /* sodium_malloc'd, read-only */
};

static int sodium_ready(struct vault_err *e)
{
	if (sodium_init() < 0)
		return vault_fail(e, VAULT_ECRYPTO, "libsodium failed to initialise");
	return 0;
}

/* Where the master key is read from: key_file, or systemd's credential. */
static const char *key_path(const char *key_file, char *buf, size_t buflen)
{
	if (key_file && *key_file)
		return key_file;
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	if (dir && *dir) {
		snprintf(buf, buflen, "%s/master.key", dir);
		return buf;
	}
	return VAULT_DEFAULT_KEY;
}

/* Read exactly 32 bytes from path into mk (sodium memory). */
static int master_read(const char *path, uint8_t *mk, struct vault_err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return vault_fail(e, VAULT_ENOENT, "key file '%s' does not exist (created by scopeholdctl init)", path);
		if (errno == ELOOP)
			return vault_fail(e, VAULT_EPERM, "key file '%s' is a symbolic link; refusing it", path);
		return vault_fail(e, VAULT_EPERM, "cannot open key file '%s': %s", path, strerror(errno));
	}
	int rc = vault_file_check("key file", path, fd, e);
	if (rc == 0) {
		uint8_t extra;
		ssize_t n = read(fd, mk, VAULT_KEY_BYTES);
		if (n != VAULT_KEY_BYTES || read(fd, &extra, 1) != 0) {
			sodium_memzero(mk, VAULT_KEY_BYTES);
			rc = vault_fail(e, VAULT_ECORRUPT, "key file '%s' is not a ScopeHold master key (expected %d bytes)",
					path, VAULT_KEY_BYTES);
		}
	}
	close(fd);
	return rc;
}

/* Create path with 32 fresh random bytes, mode 0400; the directory must exist. */
static int master_create(const char *path, uint8_t *mk, struct vault_err *e)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
	if (fd < 0) {
		if (errno == EEXIST)
			return vault_fail(e, VAULT_EEXIST, "key file '%s' already exists; refusing to overwrite it", path);
		return vault_fail(e, VAULT_EIO, "cannot create key file '%s': %s", path, strerror(errno));
	}
	randombytes_buf(mk, VAULT_KEY_BYTES);
	ssize_t n = write(fd, mk, VAULT_KEY_BYTES);
	int ok = n == VAULT_KEY_BYTES && fsync(fd) == 0;
	int saved = errno;
	close(fd);
	if (!ok) {
		unlink(path);
		sodium_memzero(mk, VAULT_KEY_BYTES);
		return vault_fail(e, VAULT_EIO, "cannot write key file '%s': %s", path, strerror(saved));
	}
	return 0;
}

static const uint8_t wrap_ad[] = "scopehold data key v1";

static int wrap_store(struct vault_db *db, const uint8_t *mk, const uint8_t *dk, struct vault_err *e)
{
	uint8_t nonce[VAULT_NONCE_BYTES], wrapped[VAULT_KEY_BYTES + VAULT_TAG_BYTES];
	randombytes_buf(nonce, sizeof nonce);
	crypto_aead_xchacha20poly1305_ietf_encrypt(wrapped, NULL, dk, VAULT_KEY_BYTES,
						   wrap_ad, sizeof wrap_ad - 1, NULL, nonce, mk);
	sqlite3_stmt *st = vault_db_stmt(db, "INSERT INTO datakey(id, nonce, wrapped, created_ns) VALUES (1, ?, ?, ?)"
					     " ON CONFLICT(id) DO UPDATE SET nonce = excluded.nonce,"
					     " wrapped = excluded.wrapped, created_ns = excluded.created_ns", e);
	if (!st)
		return -1;
	sqlite3_bind_blob(st, 1, nonce, sizeof nonce, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, wrapped, sizeof wrapped, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, vault_now_ns());
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return vault_fail_sql(e, vault_db_handle(db), rc, "storing the wrapped data key");
	return 0;
}

/* 1 when a data key row exists, 0 when not, -1 on error. Unwraps into dk
 * when mk is given. */
static int unwrap_load(struct vault_db *db, const uint8_t *mk, uint8_t *dk, struct vault_err *e)
{
	sqlite3_stmt *st = vault_db_stmt(db, "SELECT nonce, wrapped FROM datakey WHERE id = 1", e);
	if (!st)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(st);
		return 0;
	}
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		return vault_fail_sql(e, vault_db_handle(db), rc, "reading the data key");
	}
	int ret = 1;
	if (mk) {
		const void *nonce = sqlite3_column_blob(st, 0);
		const void *wrapped = sqlite3_column_blob(st, 1);
		if (sqlite3_column_bytes(st, 0) != VAULT_NONCE_BYTES ||
		    sqlite3_column_bytes(st, 1) != VAULT_KEY_BYTES + VAULT_TAG_BYTES)
			ret = vault_fail(e, VAULT_ECORRUPT, "the wrapped data key in the database is damaged");
		else if (crypto_aead_xchacha20poly1305_ietf_decrypt(dk, NULL, NULL, wrapped,
								    VAULT_KEY_BYTES + VAULT_TAG_BYTES,
								    wrap_ad, sizeof wrap_ad - 1, nonce, mk) != 0)
			ret = vault_fail(e, VAULT_ECRYPTO,
					 "the master key does not open this database's data key (wrong key file?)");
	}
	sqlite3_reset(st);
	return ret;
}

int vault_key_init(struct vault_db *db, const char *key_file, struct vault_err *e)
{
	char buf[PATH_MAX];
	const char *path = key_path(key_file, buf, sizeof buf);
	if (sodium_ready(e) < 0)
		return -1;
	int have = unwrap_load(db, NULL, NULL, e);
	if (have < 0)
		return -1;
	if (have)
		return vault_fail(e, VAULT_EEXIST, "database '%s' is already initialised; refusing to overwrite it",
				  vault_db_path(db));
	uint8_t *mk = sodium_malloc(2 * VAULT_KEY_BYTES);
	if (!mk)
		return vault_fail(e, VAULT_ENOMEM, "out of memory for key material");
	uint8_t *dk = mk + VAULT_KEY_BYTES;
	int rc = -1;
	if (master_create(path, mk, e) < 0)
		goto out;
	crypto_aead_xchacha20poly1305_ietf_keygen(dk);
	if (vault_db_begin(db, e) < 0 || wrap_store(db, mk, dk, e) < 0 || vault_db_commit(db, e) < 0) {
		vault_db_rollback(db);
		unlink(path);
		goto out;
	}
	rc = 0;
out:
	sodium_free(mk); /* wipes */
	return rc;
}

struct vault_key *vault_key_load(struct vault_db *db, const char *key_file, struct vault_err *e)
{
	char buf[PATH_MAX];
	const char *path = key_path(key_file, buf, sizeof buf);
	if (sodium_ready(e) < 0)
		return NULL;
	struct vault_key *k = calloc(1, sizeof *k);
	uint8_t *mk = sodium_malloc(VAULT_KEY_BYTES);
	if (k)
		k->dk = sodium_malloc(VAULT_KEY_BYTES);
	if (!k || !mk || !k->dk) {
		vault_fail(e, VAULT_ENOMEM, "out of memory for key material");
		goto err;
	}
	if (master_read(path, mk, e) < 0)
		goto err;
	int have = unwrap_load(db, mk, k->dk, e);
	if (have == 0)
		vault_fail(e, VAULT_ENOENT, "database '%s' has no data key; run: scopeholdctl init", vault_db_path(db));
	if (have <= 0)
		goto err;
	sodium_free(mk);
	sodium_mprotect_readonly(k->dk);
	return k;
err:
	sodium_free(mk);
	vault_key_free(k);
	return NULL;
}

void vault_key_free(struct vault_key *k)
{
	if (!k)
		return;
	sodium_free(k->dk);
	free(k);
}

int vault_key_rekey(struct vault_db *db, const char *key_file, struct vault_err *e)
{
	char buf[PATH_MAX], tmp[PATH_MAX + 8], old[PATH_MAX + 8];
	const char *path = key_path(key_file, buf, sizeof buf);
	if (sodium_ready(e) < 0)
		return -1;
	snprintf(tmp, sizeof tmp, "%s.new", path);
	snprintf(old, sizeof old, "%s.old", path);
	uint8_t *m = sodium_malloc(3 * VAULT_KEY_BYTES);
	if (!m)
		return vault_fail(e, VAULT_ENOMEM, "out of memory for key material");
	uint8_t *mk = m, *nk = m + VAULT_KEY_BYTES, *dk = m + 2 * VAULT_KEY_BYTES;
	int rc = -1;
	if (master_read(path, mk, e) < 0)
		goto out;
	if (vault_db_begin(db, e) < 0)
		goto out;
	int have = unwrap_load(db, mk, dk, e);
	if (have <= 0) {
		if (have == 0)
			vault_fail(e, VAULT_ENOENT, "database has no data key; run: scopeholdctl init");
		goto rollback;
	}
	unlink(tmp); /* a leftover of an interrupted rekey */
	if (master_create(tmp, nk, e) < 0 || wrap_store(db, nk, dk, e) < 0)
		goto rollback_tmp;
	/* Keep the old key beside the new one until the commit is durable. */
	unlink(old);
	if (link(path, old) < 0 && errno != ENOENT) {
		vault_fail(e, VAULT_EIO, "cannot keep the old key as '%s': %s", old, strerror(errno));
		goto rollback_tmp;
	}
	if (vault_db_commit(db, e) < 0)
		goto rollback_tmp;
	if (rename(tmp, path) < 0) {
		vault_fail(e, VAULT_EIO, "data key rewrapped, but renaming '%s' to '%s' failed: %s; "
			   "the new master key is in '%s'", tmp, path, strerror(errno), tmp);
		goto out;
	}
	rc = 0;
	goto out;
rollback_tmp:
	unlink(tmp);
rollback:
	vault_db_rollback(db);
out:
	sodium_free(m);
	return rc;
}

/* ad = le64 id ‖ le64 version ‖ provider ‖ NUL ‖ key ‖ NUL */
static size_t ad_encode(const struct vault_ad *ad, uint8_t *out)
{
	size_t n = 0;
	for (int i = 0; i < 8; i++)
		out[n++] = (uint8_t)((uint64_t)ad->secret_id >> (8 * i));
	for (int i = 0; i < 8; i++)
		out[n++] = (uint8_t)((uint64_t)ad->version >> (8 * i));
	size_t pl = strlen(ad->provider), kl = strlen(ad->key);
	memcpy(out + n, ad->provider, pl + 1);
	n += pl + 1;
	memcpy(out + n, ad->key, kl + 1);
	return n + kl + 1;
}

#define AD_MAX (16 + 2 * (VAULT_NAME_MAX + 1))

int vault_seal(const struct vault_key *k, const struct vault_ad *ad,
	       const uint8_t *pt, size_t len, uint8_t nonce[VAULT_NONCE_BYTES],
	       uint8_t *ct, struct vault_err *e)
{
	if (len > VAULT_VALUE_MAX)
		return vault_fail(e, VAULT_EINVAL, "value is %zu bytes; the limit is %d bytes (1 MiB)",
				  len, VAULT_VALUE_MAX);
	if (strlen(ad->provider) > VAULT_NAME_MAX || strlen(ad->key) > VAULT_NAME_MAX)
		return vault_fail(e, VAULT_EINVAL, "name too long to seal");
	uint8_t adb[AD_MAX];
	size_t adlen = ad_encode(ad, adb);
	randombytes_buf(nonce, VAULT_NONCE_BYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(ct, NULL, pt, len, adb, adlen, NULL, nonce, k->dk);
	return 0;
}

int vault_unseal(const struct vault_key *k, const struct vault_ad *ad,
		 const uint8_t nonce[VAULT_NONCE_BYTES], const uint8_t *ct,
		 size_t ctlen, uint8_t *pt, struct vault_err *e)
{
	if (ctlen < VAULT_TAG_BYTES || ctlen > VAULT_VALUE_MAX + VAULT_TAG_BYTES ||
	    strlen(ad->provider) > VAULT_NAME_MAX || strlen(ad->key) > VAULT_NAME_MAX)
		return vault_fail(e, VAULT_ECORRUPT, "sealed value has an impossible length");
	uint8_t adb[AD_MAX];
	size_t adlen = ad_encode(ad, adb);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt, NULL, NULL, ct, ctlen, adb, adlen, nonce, k->dk) != 0) {
		sodium_memzero(pt, ctlen - VAULT_TAG_BYTES);
		return vault_fail(e, VAULT_ECRYPTO, "value of %s/%s version %lld failed authentication",
				  ad->provider, ad->key, (long long)ad->version);
	}
	return 0;
}
