/* vault.h - the ScopeHold database, master/data keys, sealed secret versions.
 * vault/ owns the SQLite file, its schema_version table, providers, secrets
 * and their encrypted versions. It never prints; every failure fills a
 * struct vault_err with one line that names what was wrong. */
#ifndef SCOPEHOLD_VAULT_H
#define SCOPEHOLD_VAULT_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sqlite3.h>

#define VAULT_NAME_MAX 128             /* providers, keys, projects, agents */
#define VAULT_VALUE_MAX (1024 * 1024)  /* largest value a secret may hold */
#define VAULT_KEY_BYTES 32
#define VAULT_NONCE_BYTES 24
#define VAULT_TAG_BYTES 16
#define VAULT_DEFAULT_DB "/var/lib/scopehold/scopehold.db"
#define VAULT_DEFAULT_KEY "/etc/scopehold/master.key"
#define VAULT_DEFAULT_CONFIG "/etc/scopehold/scopehold.ini"
#define VAULT_DEFAULT_MOUNT "/run/scopehold/secrets"
#define VAULT_KEEP_VERSIONS 5           /* [vault] keep_versions default */
#define VAULT_KEEP_VERSIONS_MAX 1000

enum vault_code {
	VAULT_OK = 0,
	VAULT_EINVAL,   /* bad input from the user: name, value, option */
	VAULT_ENOENT,   /* a named object does not exist */
	VAULT_EEXIST,   /* a named object already exists */
	VAULT_EPERM,    /* file permissions or ownership refused */
	VAULT_EBUSY,    /* database locked beyond the busy timeout */
	VAULT_ECORRUPT, /* database or key file is damaged or not ours */
	VAULT_ECRYPTO,  /* authentication failed: wrong key or moved ciphertext */
	VAULT_EIO,      /* any other I/O or SQLite failure */
	VAULT_ENOMEM,
};

struct vault_err {
	enum vault_code code;
	char msg[512];
};

/* Fill *e (when not NULL) and return -1. */
int vault_fail(struct vault_err *e, enum vault_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Map a SQLite result on db into *e with a prefix naming what was attempted.
 * Returns -1. */
int vault_fail_sql(struct vault_err *e, sqlite3 *db, int rc, const char *what);

/* 0 when name matches [A-Za-z0-9][A-Za-z0-9._-]{0,127}; else -1 with a message
 * that quotes the (sanitised) name and says what kind of name it was. */
int vault_name_check(const char *kind, const char *name, struct vault_err *e);
/* The same for a name of len bytes that may hold a NUL (refused). */
int vault_name_checkn(const char *kind, const char *name, size_t len, struct vault_err *e);

/* Split "provider/key" into its two names, each checked. The buffers hold
 * VAULT_NAME_MAX + 1 bytes. */
int vault_path_split(const char *pk, char *provider, char *key, struct vault_err *e);

/* Monotonic-enough wall clock in nanoseconds since the epoch. */
int64_t vault_now_ns(void);

/* ---- database ---------------------------------------------------------- */

/* A connection with a cache of prepared statements. One per thread. */
struct vault_db;

enum {
	VAULT_DB_CREATE = 1 << 0,   /* create the file (mode 0600) if missing */
	VAULT_DB_READONLY = 1 << 1, /* SQLITE_OPEN_READONLY */
	VAULT_DB_NOMIGRATE = 1 << 2, /* only check schema_version, never write */
	VAULT_DB_NOVAULT = 1 << 3    /* a file without vault's tables (the audit store) */
};

/* Open path. Refuses a file readable or writable by group/others, naming the
 * chmod that fixes it. Sets WAL, busy timeout, foreign keys; runs vault's
 * migrations unless VAULT_DB_NOMIGRATE (acl_db_open adds acl's and audit's).
 * Returns NULL with *e filled on failure. */
struct vault_db *vault_db_open(const char *path, unsigned flags, struct vault_err *e);
void vault_db_close(struct vault_db *db);
sqlite3 *vault_db_handle(struct vault_db *db);
const char *vault_db_path(const struct vault_db *db);
/* How many versions of a secret vault_secret_put keeps (the newest; older
 * ones are deleted in the put's transaction, and with secure_delete their
 * bytes are overwritten). Default VAULT_KEEP_VERSIONS; n < 1 counts as 1. */
void vault_db_set_keep_versions(struct vault_db *db, int n);
int vault_db_keep_versions(const struct vault_db *db);

/* The prepared statement for sql (a string literal: the cache is keyed by
 * its address), reset and with bindings cleared. NULL on error with *e. */
sqlite3_stmt *vault_db_stmt(struct vault_db *db, const char *sql, struct vault_err *e);

/* Step st (bound, expecting no rows) and reset it: 0, or -1 with *e saying
 * what failed. */
int vault_db_step_done(struct vault_db *db, sqlite3_stmt *st, const char *what, struct vault_err *e);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. They nest: inside an open
 * transaction they become SAVEPOINT / RELEASE / ROLLBACK TO, so a caller can
 * wrap a library change and its audit row in one transaction. */
int vault_db_begin(struct vault_db *db, struct vault_err *e);
int vault_db_commit(struct vault_db *db, struct vault_err *e);
void vault_db_rollback(struct vault_db *db);

/* After a removal: copy the write-ahead log into the file (whose freed
 * bytes secure_delete has zeroed) and truncate it, so that removed
 * ciphertexts are gone from both. 0 done, 1 when readers kept it from
 * finishing within the busy timeout, -1 on error. */
int vault_db_scrub(struct vault_db *db, struct vault_err *e);

/* Run the migration steps of module whose schema_version is below nsteps,
 * each in its own transaction. A version above nsteps (a newer program made
 * the file) is refused. */
int vault_migrate(struct vault_db *db, const char *module,
		  const char *const *steps, int nsteps, struct vault_err *e);

/* The change counter bumped by every write that can change a view or a
 * binding (grant, revoke, assign, agent changes, secret put/rm). Caches key
 * on it. */
int64_t vault_generation(struct vault_db *db, struct vault_err *e);
int vault_generation_bump(struct vault_db *db, struct vault_err *e);

/* ---- keys -------------------------------------------------------------- */

/* The data key, unwrapped, in sodium_malloc memory kept read-only. */
struct vault_key;

/* Create a master key file (32 random bytes, mode 0400, O_EXCL) and a fresh
 * data key wrapped by it, stored in db. Refuses if either exists. */
int vault_key_init(struct vault_db *db, const char *key_file, struct vault_err *e);

/* Read the master key (from key_file, or $CREDENTIALS_DIRECTORY/master.key
 * when key_file is NULL and that is set) and unwrap the data key.
 * Refuses a key file readable by group/others or not owned by us. */
struct vault_key *vault_key_load(struct vault_db *db, const char *key_file, struct vault_err *e);
void vault_key_free(struct vault_key *k);
/* A subkey of the data key for another purpose than sealing values (ctx: 8
 * characters naming it, id: which one): len bytes (16..64) into out. Changes
 * with `rekey --data-key`, not with a master key rekey. 0 or -1. */
int vault_key_derive(const struct vault_key *k, uint64_t id, const char ctx[8], uint8_t *out, size_t len);

/* A rekey in progress (datakey_next holds the new wrapping): 1, 0 when
 * none, -1 on error. Then `scopeholdctl rekey` finishes it. */
int vault_key_pending(struct vault_db *db, struct vault_err *e);

struct vault_rekey {
	/* The audit row, called inside the transaction of the first change
	 * (reason NULL), or of the only one left when finishing a rekey that
	 * was stopped; nonzero (with *e) aborts. May be NULL. */
	int (*record)(void *arg, const char *reason, struct vault_err *e);
	void *arg;
	int resumed;            /* out: 1 when it finished an interrupted rekey */
	char retired[PATH_MAX]; /* out: where the previous master key is kept */
};

/* Replace the master key in key_file. Steps, each safe to be killed after:
 * KEY.new written and fsynced; the data key wrapped by it committed beside
 * the old wrapping (with rk->record); the old key hard-linked to
 * KEY.retired-YYYYmmddTHHMMSSZ (never replacing a file); KEY.new renamed to
 * KEY, the directory fsynced; the old wrapping dropped. KEY opens the vault
 * at every step; run again, it finishes a rekey that was stopped. */
int vault_key_rekey(struct vault_db *db, const char *key_file, struct vault_rekey *rk, struct vault_err *e);

/* A new data key: every kept version is decrypted and sealed again under
 * it (a fresh nonce each), and it is wrapped by the master key in key_file,
 * all in one transaction, with record (may be NULL) called before its
 * commit; removed ciphertexts are then checkpointed out of the -wal.
 * *count: the versions re-encrypted. Refused while a rekey is unfinished.
 * A running scopeholdfs still holds the old data key until restarted. */
int vault_key_rekey_data(struct vault_db *db, const char *key_file,
			 int (*record)(void *arg, const char *reason, struct vault_err *e), void *arg,
			 int64_t *count, struct vault_err *e);

/* Check that path is a regular file owned by root or us, not a link, and not
 * accessible by group/others. what names it in the message ("key file"). */
int vault_file_check(const char *what, const char *path, int fd, struct vault_err *e);

/* ---- sealing ----------------------------------------------------------- */

/* The additional data binds a ciphertext to where it lives. */
struct vault_ad {
	int64_t secret_id;
	int64_t version;
	const char *provider;
	const char *key;
};

/* ct must hold len + VAULT_TAG_BYTES; nonce is filled with fresh bytes. */
int vault_seal(const struct vault_key *k, const struct vault_ad *ad,
	       const uint8_t *pt, size_t len, uint8_t nonce[VAULT_NONCE_BYTES],
	       uint8_t *ct, struct vault_err *e);
/* pt must hold ctlen - VAULT_TAG_BYTES. On failure pt is wiped. */
int vault_unseal(const struct vault_key *k, const struct vault_ad *ad,
		 const uint8_t nonce[VAULT_NONCE_BYTES], const uint8_t *ct,
		 size_t ctlen, uint8_t *pt, struct vault_err *e);

/* ---- providers and secrets -------------------------------------------- */

int vault_provider_add(struct vault_db *db, const char *name, struct vault_err *e);
int vault_provider_rm(struct vault_db *db, const char *name, struct vault_err *e);
/* id of provider name, 0 when missing (not an error), -1 on error. */
int64_t vault_provider_id(struct vault_db *db, const char *name, struct vault_err *e);

struct vault_secret {
	int64_t id;
	int64_t provider_id;
	int64_t version;   /* current version */
	int64_t len;       /* plaintext length of the current version */
	int64_t created_ns;
	char provider[VAULT_NAME_MAX + 1];
	char key[VAULT_NAME_MAX + 1];
};

/* Store value as a new version of provider/key (creating the secret, and
 * the provider if create_provider), numbered one above the highest kept,
 * made current; versions beyond vault_db_keep_versions are deleted in the
 * same transaction. *version receives the new version. */
int vault_secret_put(struct vault_db *db, const struct vault_key *k,
		     const char *provider, const char *key,
		     const uint8_t *value, size_t len, int create_provider,
		     int64_t *version, struct vault_err *e);
/* 1 found, 0 missing, -1 error. */
int vault_secret_find(struct vault_db *db, const char *provider, const char *key,
		      struct vault_secret *out, struct vault_err *e);
int vault_secret_rm(struct vault_db *db, const char *provider, const char *key,
		    struct vault_err *e);
/* Make kept version current again (a pointer: no new version is written;
 * the next open reads it, the next put is numbered above the highest).
 * *was (may be NULL) gets the version that was current. 0 changed, 1 it
 * already was current, -1 error (a version not kept is VAULT_ENOENT with
 * the kept range in the message). */
int vault_secret_rollback(struct vault_db *db, const char *provider, const char *key,
			  int64_t version, int64_t *was, struct vault_err *e);

/* A sealed version as stored: not secret, safe to keep in ordinary memory. */
struct vault_sealed {
	struct vault_ad ad;
	char provider[VAULT_NAME_MAX + 1];
	char key[VAULT_NAME_MAX + 1];
	uint8_t nonce[VAULT_NONCE_BYTES];
	uint8_t *ct;        /* malloc'd, owned by the struct */
	size_t ctlen;
};

/* Load version of secret_id. 1 found, 0 missing, -1 error. */
int vault_sealed_load(struct vault_db *db, int64_t secret_id, int64_t version,
		      struct vault_sealed *out, struct vault_err *e);
void vault_sealed_clear(struct vault_sealed *s);

/* Decrypt s into pt (ctlen - tag bytes). */
int vault_sealed_open(const struct vault_key *k, const struct vault_sealed *s,
		      uint8_t *pt, struct vault_err *e);

#endif
