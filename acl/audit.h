/* audit.h - the audit trail: one row per open, per denied lookup and per
 * admin change, chained with BLAKE2b-256 so that an edited, removed, inserted
 * or reordered row is found; a writer thread that group-commits the rows of
 * concurrent opens. Never a value, a hash of a value, or a key. */
#ifndef SCOPEHOLD_AUDIT_H
#define SCOPEHOLD_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "vault/config.h"
#include "vault/vault.h"

#define AUDIT_HASH_BYTES 32
#define AUDIT_TEXT_MAX 4096           /* longest string field; the writer cuts
					 longer ones, audit_append refuses them */
#define AUDIT_EVENT_PRUNE "audit.prune" /* reserved: only audit_prune writes it */
#define AUDIT_EVENT_DROPPED "audit.dropped" /* the writer's count of rows it lost */
#define AUDIT_EVENT_LIMITED "audit.limited" /* the writer's count of rows over the limit */
#define AUDIT_LIMIT_RATE 5    /* refused rows a second per uid, sustained, ... */
#define AUDIT_LIMIT_BURST 50  /* ... after a burst of this many */

/* One row. Strings may be NULL (stored as NULL); numbers are -1 when not
 * applicable (secret_id/version 0 when none). The caller owns the strings. */
struct audit_row {
	int64_t time_ns;     /* 0: now */
	const char *event;   /* "open", "lookup", "init", "provider.add", "grant", ... */
	const char *result;  /* granted|denied|unknown-caller|ambiguous|error for
				opens and lookups; ok|failed for admin changes */
	const char *reason;  /* short words: "no grant", "not assigned", ... */
	const char *agent;
	int64_t uid, gid, pid, tgid;
	int64_t sudo_uid;    /* admin rows: $SUDO_UID when set, else -1 */
	const char *exe, *cgroup, *lsm;
	const char *path;    /* "provider/key", or what an admin change named */
	int64_t secret_id, version;
	int64_t count;       /* rows coalesced into this one; 1 normally */
};

/* The chain (see also the comment at the top of audit.c):
 *   hash = BLAKE2b-256(prev_hash || encode(id, row))
 * where prev_hash is the previous row's hash (32 zero bytes for the first
 * row ever, or the hash recorded by the latest prune anchor), and encode() is
 * the tag "scopehold-audit-v1\0" followed by each field in the order
 *   id, time_ns, event, result, reason, agent, uid, gid, pid, tgid, sudo_uid,
 *   exe, cgroup, lsm, path, secret_id, version, count
 * each as: integer = 0x01 + 8 bytes big-endian two's complement;
 *          NULL string = 0x00; string = 0x02 + 4-byte big-endian length + bytes.
 * audit_hash computes it (exported so tests and exporters can check rows). */
void audit_hash(const uint8_t prev[AUDIT_HASH_BYTES], int64_t id, const struct audit_row *r,
		uint8_t out[AUDIT_HASH_BYTES]);

/* The audit tables' migrations; audit_db_open runs them. */
int audit_schema(struct vault_db *db, struct vault_err *e);

/* Open the audit store at path (vault_config_audit_db): a database of its
 * own, so that committing a row per open never invalidates the page caches
 * of the connections that read grants. Migrates unless VAULT_DB_NOMIGRATE. */
struct vault_db *audit_db_open(const char *path, unsigned flags, struct vault_err *e);

/* Append rows inside one transaction of db (nested in the caller's one when
 * open): reads the last row's hash, chains, inserts. time_ns 0 becomes now
 * and count <= 0 becomes 1 (before hashing). Refuses a row without event or
 * result, the reserved event AUDIT_EVENT_PRUNE, or a string longer than
 * AUDIT_TEXT_MAX. */
int audit_append(struct vault_db *db, const struct audit_row *rows, size_t n,
		 struct vault_err *e);

/* ---- the daemon's writer ---------------------------------------------- */

struct audit_writer;

/* Start the writer thread on its own connection to db_path, with SQLite's
 * synchronous mode from sync, and at most queue rows waiting that nobody
 * waits for (waited rows are bounded by the threads that wait: never
 * refused for a full queue). Before each batch it checks, once, that the
 * file at db_path is still the one it opened ((dev, ino), not removed):
 * if not, the batch fails (waiters get -1) until the file is back. */
struct audit_writer *audit_writer_start(const char *db_path, enum vault_sync sync,
					int queue, struct vault_err *e);

/* Hand a row to the writer (copied). With wait, return only after the
 * transaction that holds it committed: 0, or -1 when the commit failed (the
 * open must then fail with EIO). Without wait, return at once (0, or -1
 * when the queue is full: the row is counted as dropped).
 *
 * The per-uid limit: rows a caller can cause at will -- every refused
 * lookup, and opens refused for who the caller is or what it may read
 * (denied, unknown-caller, ambiguous; error without an agent), never a
 * granted open nor the error of a granted agent's open -- take a token of
 * their uid's bucket (AUDIT_LIMIT_RATE a second, AUDIT_LIMIT_BURST at
 * most; 256 uids apart, the rest share one). Without a token the row is
 * not written (submit returns 0; an open waits for nothing) but counted
 * into one AUDIT_EVENT_LIMITED row per uid and second (result "denied",
 * count = the rows, uid = the uid or -1 for the shared bucket), queued
 * when that second is over. Coalesced repeats (below) cost no token.
 *
 * Lost rows (queue full, their batch failed, or below the reserve) are
 * counted into an AUDIT_EVENT_DROPPED row (result "error", reason says
 * why, count = the rows) that the writer queues at most once a second
 * after a commit succeeded. So the counts of the rows always add up. */
int audit_writer_submit(struct audit_writer *w, const struct audit_row *row, int wait);

/* Keep bytes free on the store's filesystem for the rows of opens: when a
 * batch finds less free, it writes only rows of event "open" (and
 * AUDIT_EVENT_DROPPED rows) and counts the others as dropped. 0: none
 * (the default). */
void audit_writer_set_reserve(struct audit_writer *w, int64_t bytes);

struct audit_writer_status {
	int64_t dropped;     /* audit_writer_dropped */
	int64_t limited;     /* rows counted into AUDIT_EVENT_LIMITED rows */
	int64_t free_bytes;  /* free on the store's filesystem at the last
				batch, -1 unknown (no batch, or no reserve) */
	int64_t reserve;
	int low;             /* the last batch was below the reserve */
	char drop_why[128];  /* what lost the latest dropped row, "" none */
};

/* A copy of the writer's counters. */
void audit_writer_status(struct audit_writer *w, struct audit_writer_status *st);

/* The last failure the writer saw, for the daemon's one log line, or NULL.
 * Cleared by a later successful commit. */
const char *audit_writer_error(struct audit_writer *w);

/* Rows submitted with wait=0 that were lost: queue full, or their batch
 * failed to commit (they are not retried). */
int64_t audit_writer_dropped(struct audit_writer *w);

/* Coalescing (denied lookups only: event "lookup", result "denied",
 * wait=0): repeats with the same (tgid, path) in the same second of time_ns
 * are added to the first row's count while that row is still queued; once it
 * has been taken by the writer, further repeats in that second are counted in
 * a small fixed table (64 slots, by hash of tgid and path) and written as one
 * more row (same fields, count = the repeats, time of the last repeat) after
 * the second has passed, when the slot is needed for another key, or at stop.
 * So a probing loop costs at most two rows per (tgid, path, second), and the
 * counts of the rows always add up to the lookups made. */

/* Drain the queue (and the coalesced repeats), commit, stop the thread,
 * close. No submit may run during or after it. NULL is a no-op. */
void audit_writer_stop(struct audit_writer *w);

/* ---- reading ------------------------------------------------------------ */

struct audit_filter {
	const char *agent;
	const char *secret;     /* "provider/key": rows whose path is that, or
				   starts with it and " -> " (admin changes such
				   as assign name "P/K -> PROJECT"); it must be
				   a checked name (no glob characters) */
	const char *result;
	int64_t since_ns, until_ns; /* 0: unbounded */
	int64_t limit;          /* 0: no limit */
	int64_t after_id;       /* rows with id > after_id (for --follow) */
};

/* Call fn for each matching row, oldest first (with limit: the newest
 * `limit` rows, still printed oldest first). fn returns non-zero to stop. */
int audit_query(struct vault_db *db, const struct audit_filter *f,
		int (*fn)(void *arg, int64_t id, const struct audit_row *row),
		void *arg, struct vault_err *e);

struct audit_verify_result {
	int64_t rows;        /* rows checked */
	int64_t bad_id;      /* first row that breaks the chain, 0 if intact */
	char what[256];      /* what is wrong at bad_id */
	int broken;          /* 1 when tampering was found: also set for a
				forged row whose id is 0 (then bad_id is 0) */
	int64_t first_id;    /* the chain checked: first row, */
	int64_t anchor_id;   /* the prune anchor it started from (0: none), */
	int64_t last_id;     /* and its last row with that row's hash */
	uint8_t last_hash[AUDIT_HASH_BYTES];
};

/* Each row with id > after_id, oldest first, with its stored hashes (for
 * export). The row's strings and the hashes live until fn returns. */
int audit_each(struct vault_db *db, int64_t after_id,
	       int (*fn)(void *arg, int64_t id, const struct audit_row *row,
			 const uint8_t *prev_hash, const uint8_t *hash),
	       void *arg, struct vault_err *e);

/* Delete the oldest rows, those before the first row whose time_ns is at
 * or after before_ns (always a prefix in id order, so the rest still chains),
 * and append an anchor row (event AUDIT_EVENT_PRUNE, result "ok", reason
 * "cut at id N prev_hash HEX; removed M rows") saying where the trail now
 * starts; verify starts there. who (may be NULL) gives the anchor's uid,
 * gid, pid, tgid, sudo_uid and agent. One transaction (nested in the
 * caller's when open). *removed (may be NULL) gets the rows deleted. */
int audit_prune(struct vault_db *db, int64_t before_ns, const struct audit_row *who,
		int64_t *removed, struct vault_err *e);

/* Walk the chain from the first row (or the last prune anchor). Returns 0
 * and fills r; r->broken (and, but for a forged row 0, r->bad_id != 0)
 * means tampering was found, r->what says what and names the row:
 * - edited: the row's contents do not match its hash;
 * - deleted: the next row does not chain to the one before the gap in ids
 *   (rows at the end: the id sequence is ahead of the last row), or a row
 *   holds the one after it renumbered; bad_id is the first missing id;
 * - inserted: a row with a valid-looking hash at an id the sequence never
 *   gave, or one that pushed the rest up by renumbering them;
 * - reordered/replaced: the row neither matches its hash nor chains.
 * Limits: a forger who recomputes every hash after the rows they change is
 * only caught by comparing last_id/last_hash with a copy kept elsewhere.
 * -1 on error. */
int audit_verify(struct vault_db *db, struct audit_verify_result *r, struct vault_err *e);

#endif
