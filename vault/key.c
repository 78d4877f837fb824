/* key.c - the master key file, the data key it wraps, and sealing of values.
 *
 * MUST:
 * - key material lives only in sodium_malloc memory (guard pages, mlocked,
 *   excluded from core dumps) and is wiped on every path out;
 * - the master key file is refused when it is a link, not a regular file,
 *   owned by another user, or accessible by group/others;
 * - a value is sealed with XChaCha20-Poly1305 under a fresh random nonce and
 *   additional data binding secret id, version, provider and key;
 * - a rekey killed at any step leaves a key file at the configured path that
 *   opens the data key: the new wrapping is committed beside the old one
 *   before the new key file replaces the old (written, fsynced, renamed, the
 *   directory fsynced), and the old wrapping is dropped only after that;
 * - a retired master key is kept under a name of its own, never overwritten. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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
	/* O_NONBLOCK: a FIFO must be refused (below), not waited on */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
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

/* The data key's wrapping, and the one of a rekey in progress. */
static const char sql_put_cur[] =
	"INSERT INTO datakey(id, nonce, wrapped, created_ns) VALUES (1, ?1, ?2, ?3)"
	" ON CONFLICT(id) DO UPDATE SET nonce = excluded.nonce,"
	" wrapped = excluded.wrapped, created_ns = excluded.created_ns";
static const char sql_put_next[] =
	"INSERT INTO datakey_next(id, nonce, wrapped, created_ns, retired) VALUES (1, ?1, ?2, ?3, ?4)"
	" ON CONFLICT(id) DO UPDATE SET nonce = excluded.nonce, wrapped = excluded.wrapped,"
	" created_ns = excluded.created_ns, retired = excluded.retired";
static const char sql_get_cur[] = "SELECT nonce, wrapped, NULL FROM datakey WHERE id = 1";
static const char sql_get_next[] = "SELECT nonce, wrapped, retired FROM datakey_next WHERE id = 1";
static const char sql_switch[] =
	"UPDATE datakey SET (nonce, wrapped, created_ns) ="
	" (SELECT nonce, wrapped, created_ns FROM datakey_next WHERE id = 1)"
	" WHERE id = 1 AND EXISTS (SELECT 1 FROM datakey_next WHERE id = 1)";
static const char sql_drop_next[] = "DELETE FROM datakey_next";

/* Wrap dk under mk into the row of sql (sql_put_cur, or sql_put_next with
 * the suffix that names the retired key after KEY). */
static int wrap_store(struct vault_db *db, const char *sql, const uint8_t *mk, const uint8_t *dk,
		      const char *retired, struct vault_err *e)
{
	uint8_t nonce[VAULT_NONCE_BYTES], wrapped[VAULT_KEY_BYTES + VAULT_TAG_BYTES];
	randombytes_buf(nonce, sizeof nonce);
	crypto_aead_xchacha20poly1305_ietf_encrypt(wrapped, NULL, dk, VAULT_KEY_BYTES,
						   wrap_ad, sizeof wrap_ad - 1, NULL, nonce, mk);
	sqlite3_stmt *st = vault_db_stmt(db, sql, e);
	if (!st)
		return -1;
	sqlite3_bind_blob(st, 1, nonce, sizeof nonce, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, wrapped, sizeof wrapped, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, vault_now_ns());
	if (retired)
		sqlite3_bind_text(st, 4, retired, -1, SQLITE_STATIC);
	return vault_db_step_done(db, st, "storing the wrapped data key", e);
}

/* 1 when the row of sql (sql_get_cur or sql_get_next) exists, 0 when not,
 * -1 on error (VAULT_ECRYPTO: mk does not open it). Unwraps into dk when mk
 * is given; copies the retired key's suffix (PATH_MAX) when retired is. */
static int unwrap_load(struct vault_db *db, const char *sql, const uint8_t *mk, uint8_t *dk,
		       char *retired, struct vault_err *e)
{
	sqlite3_stmt *st = vault_db_stmt(db, sql, e);
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
	if (retired) {
		const char *r = (const char *)sqlite3_column_text(st, 2);
		snprintf(retired, PATH_MAX, "%s", r ? r : "");
	}
	if (mk) {
		const void *nonce = sqlite3_column_blob(st, 0);
		const void *wrapped = sqlite3_column_blob(st, 1);
		if (sqlite3_column_bytes(st, 0) != VAULT_NONCE_BYTES ||
		    sqlite3_column_bytes(st, 1) != VAULT_KEY_BYTES + VAULT_TAG_BYTES)
			ret = vault_fail(e, VAULT_ECORRUPT, "the wrapped data key in '%s' is damaged", vault_db_path(db));
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
	int have = unwrap_load(db, sql_get_cur, NULL, NULL, NULL, e);
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
	if (vault_db_begin(db, e) < 0 || wrap_store(db, sql_put_cur, mk, dk, NULL, e) < 0 ||
	    vault_db_commit(db, e) < 0) {
		vault_db_rollback(db);
		unlink(path);
		goto out;
	}
	rc = 0;
out:
	sodium_free(mk); /* wipes */
	return rc;
}

/* The one line for a master key in path that opens no data key of db. */
static int wrong_key(struct vault_err *e, const char *path, struct vault_db *db)
{
	return vault_fail(e, VAULT_ECRYPTO, "the master key in '%s' does not open the data key of '%s' (wrong key file?)",
			  path, vault_db_path(db));
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
	struct vault_err le = { 0 };
	int have = unwrap_load(db, sql_get_cur, mk, k->dk, NULL, &le);
	/* A rekey stopped after the new key file took the old one's place:
	 * the new wrapping opens it (vault_key_pending says so). */
	if (have < 0 && le.code == VAULT_ECRYPTO && unwrap_load(db, sql_get_next, mk, k->dk, NULL, NULL) == 1)
		have = 1;
	else if (have < 0 && le.code == VAULT_ECRYPTO)
		wrong_key(&le, path, db);
	else if (have == 0)
		vault_fail(&le, VAULT_ENOENT, "database '%s' has no data key; run: scopeholdctl init", vault_db_path(db));
	if (have <= 0) {
		if (e)
			*e = le;
		goto err;
	}
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

int vault_key_pending(struct vault_db *db, struct vault_err *e)
{
	return unwrap_load(db, sql_get_next, NULL, NULL, NULL, e);
}

static int run(struct vault_db *db, const char *sql, const char *what, struct vault_err *e)
{
	sqlite3_stmt *st = vault_db_stmt(db, sql, e);
	return st ? vault_db_step_done(db, st, what, e) : -1;
}

/* fsync the directory that holds path. */
static int fsync_dir(const char *path, struct vault_err *e)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = 0;
	else
		*slash = 0;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		return vault_fail(e, VAULT_EIO, "cannot sync directory '%s': %s", dir, strerror(err));
	}
	close(fd);
	return 0;
}

/* A name no file has: PATH.retired-YYYYmmddTHHMMSSZ, or with -2, -3, ... */
static int retired_name(const char *path, char *out, struct vault_err *e)
{
	char stamp[32];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
	for (int i = 1; i < 100; i++) {
		int n = i == 1 ? snprintf(out, PATH_MAX, "%s.retired-%s", path, stamp)
			       : snprintf(out, PATH_MAX, "%s.retired-%s-%d", path, stamp, i);
		if (n >= PATH_MAX)
			return vault_fail(e, VAULT_EINVAL, "key file path '%s' is too long", path);
		struct stat st;
		if (lstat(out, &st) < 0 && errno == ENOENT)
			return 0;
	}
	return vault_fail(e, VAULT_EEXIST, "too many retired keys '%s.retired-%s-*'; try again in a second", path, stamp);
}

/* Keep the key file at path (holding mk) as retired: a hard link (the same
 * bytes and mode 0400), never replacing a file; one already there that
 * holds mk is that (kept by the rekey that was stopped). sc: scratch. */
static int retire(const char *path, const char *retired, const uint8_t *mk, uint8_t *sc, struct vault_err *e)
{
	if (link(path, retired) == 0)
		return 0;
	int err = errno;
	if (err == EEXIST && master_read(retired, sc, NULL) == 0 && sodium_memcmp(sc, mk, VAULT_KEY_BYTES) == 0)
		return 0;
	return vault_fail(e, VAULT_EIO, "cannot keep the old master key as '%s': %s", retired,
			  err == EEXIST ? "another file has that name" : strerror(err));
}

/* After the new wrapping is committed every failure leaves a key file that
 * opens the vault: say which, and how to finish. */
static int unfinished(struct vault_err *e, const char *path)
{
	if (e) {
		size_t n = strlen(e->msg);
		snprintf(e->msg + n, sizeof e->msg - n, "; '%s' still opens the vault; run: scopeholdctl rekey "
			 "to finish the rekey", path);
	}
	return -1;
}

int vault_key_rekey(struct vault_db *db, const char *key_file, struct vault_rekey *rk, struct vault_err *e)
{
	char buf[PATH_MAX], tmp[PATH_MAX + 8];
	const char *path = key_path(key_file, buf, sizeof buf);
	rk->resumed = 0;
	rk->retired[0] = 0;
	if (sodium_ready(e) < 0)
		return -1;
	if (snprintf(tmp, sizeof tmp, "%s.new", path) >= PATH_MAX)
		return vault_fail(e, VAULT_EINVAL, "key file path '%s' is too long", path);
	uint8_t *m = sodium_malloc(4 * VAULT_KEY_BYTES);
	if (!m)
		return vault_fail(e, VAULT_ENOMEM, "out of memory for key material");
	uint8_t *mk = m, *nk = m + VAULT_KEY_BYTES, *dk = m + 2 * VAULT_KEY_BYTES, *sc = m + 3 * VAULT_KEY_BYTES;
	int rc = -1;
	struct vault_err le = { 0 };
	/* Each commit durable before the key files move (power loss too). */
	sqlite3_exec(vault_db_handle(db), "PRAGMA synchronous = FULL", NULL, NULL, NULL);
	if (vault_db_begin(db, e) < 0)
		goto out;
	/* Read under the write lock: a rekey that ran meanwhile changed it. */
	if (master_read(path, mk, e) < 0)
		goto rollback;
	int cur = unwrap_load(db, sql_get_cur, mk, dk, NULL, &le);
	/* The database names the retired key relative to KEY (".retired-..."). */
	char suffix[PATH_MAX];
	int next = unwrap_load(db, sql_get_next, NULL, NULL, suffix, e);
	if (next < 0)
		goto rollback;
	if (next && (strncmp(suffix, ".retired-", 9) || strchr(suffix, '/') ||
		     snprintf(rk->retired, PATH_MAX, "%s%s", path, suffix) >= PATH_MAX)) {
		vault_fail(e, VAULT_ECORRUPT, "the rekey in progress in '%s' names its retired key '%.64s': damaged",
			   vault_db_path(db), suffix);
		goto rollback;
	}
	if (cur == 0) {
		vault_fail(e, VAULT_ENOENT, "database '%s' has no data key; run: scopeholdctl init", vault_db_path(db));
		goto rollback;
	}
	if (cur < 0) {
		/* Stopped after the new key file took the old one's place:
		 * only the old wrapping is left to drop. */
		if (le.code != VAULT_ECRYPTO || !next || unwrap_load(db, sql_get_next, mk, dk, NULL, NULL) != 1) {
			if (le.code == VAULT_ECRYPTO)
				wrong_key(&le, path, db);
			if (e)
				*e = le;
			goto rollback;
		}
		rk->resumed = 1;
		goto finish;
	}
	if (next && master_read(tmp, nk, NULL) == 0 && unwrap_load(db, sql_get_next, nk, sc, NULL, NULL) == 1) {
		/* Stopped before: the new key file is the one wrapped. */
		rk->resumed = 1;
		vault_db_rollback(db);
		goto switch_files;
	}
	/* A new key file that never became current is a leftover. */
	if (unlink(tmp) < 0 && errno != ENOENT) {
		vault_fail(e, VAULT_EIO, "cannot remove the leftover '%s': %s", tmp, strerror(errno));
		goto rollback;
	}
	if (retired_name(path, rk->retired, e) < 0)
		goto rollback;
	if (master_create(tmp, nk, e) < 0)
		goto rollback;
	if (fsync_dir(tmp, e) < 0 || wrap_store(db, sql_put_next, nk, dk, rk->retired + strlen(path), e) < 0 ||
	    (rk->record && rk->record(rk->arg, NULL, e) < 0) || vault_db_commit(db, e) < 0) {
		unlink(tmp);
		goto rollback;
	}
switch_files:
	/* Both wrappings are in the database: the old file is kept, then the
	 * new one takes its name. */
	if (retire(path, rk->retired, mk, sc, e) < 0 || fsync_dir(path, e) < 0) {
		rc = unfinished(e, path);
		goto out;
	}
	if (rename(tmp, path) < 0) {
		vault_fail(e, VAULT_EIO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
		rc = unfinished(e, path);
		goto out;
	}
	if (fsync_dir(path, e) < 0 || vault_db_begin(db, e) < 0) {
		rc = unfinished(e, path);
		goto out;
	}
finish:
	if ((rk->resumed && rk->record && rk->record(rk->arg, "finished an interrupted rekey", e) < 0) ||
	    run(db, sql_switch, "switching the data key's wrapping", e) < 0 ||
	    run(db, sql_drop_next, "dropping the old wrapping", e) < 0 ||
	    vault_db_commit(db, e) < 0) {
		vault_db_rollback(db);
		rc = unfinished(e, path);
		goto out;
	}
	rc = 0;
	vault_db_scrub(db, NULL); /* the old wrapping out of the -wal */
	goto out;
rollback:
	vault_db_rollback(db);
out:
	sqlite3_exec(vault_db_handle(db), "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
	sodium_free(m);
	return rc;
}

/* The (secret id, version) of every kept version, malloc'd into *out. */
static int64_t list_versions(struct vault_db *db, int64_t **out, struct vault_err *e)
{
	sqlite3_stmt *st = vault_db_stmt(db, "SELECT secret_id, version FROM secret_versions", e);
	if (!st)
		return -1;
	int64_t n = 0, cap = 0, *v = NULL;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? 2 * cap : 256;
			int64_t *nv = realloc(v, (size_t)cap * 2 * sizeof *v);
			if (!nv) {
				sqlite3_reset(st);
				free(v);
				return vault_fail(e, VAULT_ENOMEM, "out of memory");
			}
			v = nv;
		}
		v[2 * n] = sqlite3_column_int64(st, 0);
		v[2 * n + 1] = sqlite3_column_int64(st, 1);
		n++;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return vault_fail_sql(e, vault_db_handle(db), rc, "listing the kept versions");
	}
	*out = v;
	return n;
}

/* Open version (id, ver) with old and seal it again under nk. */
static int reseal(struct vault_db *db, const struct vault_key *old, const struct vault_key *nk,
		  int64_t id, int64_t ver, uint8_t *pt, struct vault_err *e)
{
	struct vault_sealed sl;
	int found = vault_sealed_load(db, id, ver, &sl, e);
	if (found <= 0)
		return found < 0 ? -1 : vault_fail(e, VAULT_EIO, "version %lld of secret %lld vanished",
						     (long long)ver, (long long)id);
	int rc = -1;
	size_t len = sl.ctlen - VAULT_TAG_BYTES;
	uint8_t nonce[VAULT_NONCE_BYTES];
	if (vault_sealed_open(old, &sl, pt, e) < 0)
		goto out;
	struct vault_ad ad = { sl.ad.secret_id, sl.ad.version, sl.provider, sl.key };
	int sealed = vault_seal(nk, &ad, pt, len, nonce, sl.ct, e);
	sodium_memzero(pt, len);
	if (sealed < 0)
		goto out;
	sqlite3_stmt *st = vault_db_stmt(db, "UPDATE secret_versions SET nonce = ?, ct = ?"
					     " WHERE secret_id = ? AND version = ?", e);
	if (!st)
		goto out;
	sqlite3_bind_blob(st, 1, nonce, sizeof nonce, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, sl.ct, (int)sl.ctlen, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, id);
	sqlite3_bind_int64(st, 4, ver);
	rc = vault_db_step_done(db, st, "storing a re-encrypted version", e);
out:
	vault_sealed_clear(&sl);
	return rc;
}

/* Inside the transaction: every kept version from the data key mk opens
 * (into old) to nk, and nk wrapped by mk. */
static int reencrypt(struct vault_db *db, const char *path, const uint8_t *mk, struct vault_key *old,
		     struct vault_key *nk, uint8_t *pt, int64_t *count, struct vault_err *e)
{
	int pending = vault_key_pending(db, e);
	if (pending > 0)
		return vault_fail(e, VAULT_EBUSY, "a rekey of '%s' was interrupted; finish it first: run: scopeholdctl rekey",
				  vault_db_path(db));
	int have = pending < 0 ? -1 : unwrap_load(db, sql_get_cur, mk, old->dk, NULL, e);
	if (have == 0)
		vault_fail(e, VAULT_ENOENT, "database '%s' has no data key; run: scopeholdctl init", vault_db_path(db));
	else if (have < 0 && e && e->code == VAULT_ECRYPTO)
		wrong_key(e, path, db);
	int64_t *v = NULL, n = have > 0 ? list_versions(db, &v, e) : -1;
	int rc = n < 0 ? -1 : 0;
	crypto_aead_xchacha20poly1305_ietf_keygen(nk->dk);
	for (int64_t i = 0; rc == 0 && i < n; i++)
		rc = reseal(db, old, nk, v[2 * i], v[2 * i + 1], pt, e);
	free(v);
	if (rc == 0)
		rc = wrap_store(db, sql_put_cur, mk, nk->dk, NULL, e);
	*count = rc == 0 ? n : 0;
	return rc;
}

int vault_key_rekey_data(struct vault_db *db, const char *key_file,
			 int (*record)(void *arg, const char *reason, struct vault_err *e), void *arg,
			 int64_t *count, struct vault_err *e)
{
	char buf[PATH_MAX];
	const char *path = key_path(key_file, buf, sizeof buf);
	*count = 0;
	if (sodium_ready(e) < 0)
		return -1;
	struct vault_key old = { .dk = sodium_malloc(VAULT_KEY_BYTES) }, nk = { .dk = sodium_malloc(VAULT_KEY_BYTES) };
	uint8_t *mk = sodium_malloc(VAULT_KEY_BYTES), *pt = sodium_malloc(VAULT_VALUE_MAX);
	int rc = -1;
	if (!old.dk || !nk.dk || !mk || !pt)
		vault_fail(e, VAULT_ENOMEM, "out of memory for key material");
	else if (master_read(path, mk, e) == 0 &&
		 sqlite3_exec(vault_db_handle(db), "PRAGMA synchronous = FULL", NULL, NULL, NULL) == SQLITE_OK &&
		 vault_db_begin(db, e) == 0) {
		if (reencrypt(db, path, mk, &old, &nk, pt, count, e) < 0 || (record && record(arg, NULL, e) < 0) ||
		    vault_db_commit(db, e) < 0) {
			vault_db_rollback(db);
			*count = 0;
		} else {
			rc = 0;
			vault_db_scrub(db, NULL); /* the old ciphertexts out of the -wal */
		}
	}
	sqlite3_exec(vault_db_handle(db), "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
	sodium_free(old.dk);
	sodium_free(nk.dk);
	sodium_free(mk);
	sodium_free(pt);
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

int vault_key_derive(const struct vault_key *k, uint64_t id, const char ctx[8], uint8_t *out, size_t len)
{
	if (!k || !k->dk || len < crypto_kdf_BYTES_MIN || len > crypto_kdf_BYTES_MAX)
		return -1;
	return crypto_kdf_derive_from_key(out, len, id, ctx, k->dk);
}
