/* ops.c - the FUSE low-level operations of scopeholdfs: each caller sees
 * /PROVIDER/KEY only for its effective grants, decided on every request.
 *
 * MUST:
 * - decide lookup/getattr/readdir/open from the request's own caller, read
 *   from /proc inside the handler, before the reply; deny on any failure;
 * - answer ENOENT for everything not granted, so nothing leaks that a secret
 *   exists;
 * - keep every kernel cache off: timeouts 0, direct_io, no keep_cache,
 *   READDIRPLUS off;
 * - pin the version at open and answer read from the handle, not from
 *   whoever sends the READ;
 * - commit the audit row of an open before replying, or fail it with EIO;
 * - decrypt into locked per-thread memory and wipe it after the reply;
 * - bound what the open handles of one uid hold (EMFILE beyond), and how
 *   many of its requests run at once (the rest wait their turn). */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "fs/fs.h"

/* What each worker thread keeps: its own connection. */
struct fs_tls {
	struct vault_db *db;
	int txn;        /* a read transaction spans the current request */
};

void fs_tls_free(void *p)
{
	struct fs_tls *t = p;
	if (!t)
		return;
	vault_db_close(t->db);
	free(t);
}

static struct fs_state *state(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* This thread's connection, opened on first use (after any fork). */
static struct vault_db *tdb(struct fs_state *fs)
{
	struct fs_tls *t = pthread_getspecific(fs->tls);
	if (!t) {
		t = calloc(1, sizeof *t);
		if (!t)
			return NULL;
		pthread_setspecific(fs->tls, t);
	}
	if (!t->db) {
		struct vault_err e = { 0 };
		t->db = vault_db_open(fs->cfg.db, VAULT_DB_NOMIGRATE, &e);
		if (!t->db)
			fprintf(stderr, "scopeholdfs: %s\n", e.msg);
		else /* a worker's hot pages are few (~100 KiB at 100,000 secrets) */
			sqlite3_exec(vault_db_handle(t->db), "PRAGMA cache_size = -512", NULL, NULL, NULL);
	}
	return t->db;
}

/* ---- the caller --------------------------------------------------------- */

struct caller {
	struct fs_state *fs;
	const struct fuse_ctx *ctx; /* points at own, valid after the reply */
	struct fuse_ctx own;
	struct vault_db *db;
	struct acl_who who;
};

/* Resolve the request's caller. 0 when an agent resolved; -1 otherwise
 * (who says why; c->db is NULL when the database could not be opened). */
static int caller_get_labels(fuse_req_t req, struct caller *c, unsigned also_read);

static int caller_get(fuse_req_t req, struct caller *c)
{
	return caller_get_labels(req, c, 0);
}

/* The same, also reading the labels in also_read (ACL_L_*) for the record. */
static int caller_get_labels(fuse_req_t req, struct caller *c, unsigned also_read)
{
	struct fs_state *fs = state(req);
	c->fs = fs;
	c->own = *fuse_req_ctx(req);
	c->ctx = &c->own;
	c->db = tdb(fs);
	if (!c->db) {
		memset(&c->who, 0, sizeof c->who);
		c->who.result = ACL_WHO_ERROR;
		snprintf(c->who.reason, sizeof c->who.reason, "database unavailable");
		return -1;
	}
	/* One read transaction for all the queries of this request: one
	 * consistent snapshot, and SQLite locks once instead of per query. */
	struct fs_tls *t = pthread_getspecific(fs->tls);
	if (!t->txn) {
		struct vault_err e;
		sqlite3_stmt *st = vault_db_stmt(c->db, "BEGIN", &e);
		if (st && sqlite3_step(st) == SQLITE_DONE)
			t->txn = 1;
		if (st)
			sqlite3_reset(st);
	}
	return acl_resolve(c->db, fs->cfg.proc_root, c->ctx->uid, c->ctx->pid, also_read, &c->who);
}

/* End the request's read transaction (after the reply). */
static void txn_end(struct fs_state *fs)
{
	struct fs_tls *t = pthread_getspecific(fs->tls);
	if (!t || !t->txn)
		return;
	struct vault_err e;
	sqlite3_stmt *st = vault_db_stmt(t->db, "COMMIT", &e);
	if (st) {
		sqlite3_step(st);
		sqlite3_reset(st);
	}
	if (!sqlite3_get_autocommit(vault_db_handle(t->db)))
		sqlite3_exec(vault_db_handle(t->db), "ROLLBACK", NULL, NULL, NULL);
	t->txn = 0;
}

static const char *who_result(const struct acl_who *w)
{
	switch (w->result) {
	case ACL_WHO_AGENT: return "granted";
	case ACL_WHO_NONE: return "unknown-caller";
	case ACL_WHO_AMBIGUOUS: return "ambiguous";
	case ACL_WHO_ERROR: break;
	}
	return "error";
}

/* After a committed open: say when the free space on the store's
 * filesystem went below the reserve or back, and (at most every NOTE_NS,
 * or when opens resume) how many rows -- refused lookups, which nobody
 * waits for -- were lost since the last time: the writer counts them in
 * audit.dropped rows. */
#define NOTE_NS (10 * 1000000000LL)
static void audit_notes(struct fs_state *fs, int now)
{
	struct audit_writer_status st;
	audit_writer_status(fs->audit, &st);
	int64_t t = vault_now_ns(), lost = 0;
	if (st.dropped != atomic_load(&fs->audit_dropped) &&
	    (now || t - atomic_load(&fs->audit_noted_ns) >= NOTE_NS)) {
		atomic_store(&fs->audit_noted_ns, t);
		lost = st.dropped - atomic_exchange(&fs->audit_dropped, st.dropped);
	}
	if (lost > 0)
		fprintf(stderr, "scopeholdfs: %lld audit row(s) of refused lookups were lost (%s); "
			"audit.dropped rows count them\n", (long long)lost, st.drop_why);
	if (atomic_exchange(&fs->audit_low, st.low) != st.low)
		fprintf(stderr, st.low ? "scopeholdfs: %lld MiB free on the audit store's filesystem, below [audit] reserve "
				 "(%lld MiB): only rows of opens are written\n"
				 : "scopeholdfs: %lld MiB free on the audit store's filesystem, the reserve (%lld MiB) "
				 "is kept again: every row is written\n",
			(long long)(st.free_bytes >> 20), (long long)(st.reserve >> 20));
}

/* Audit one event of a caller. wait: return only after the commit. Needs
 * no request: it may follow the reply. */
static int audit(const struct caller *c, const char *event, const char *result,
		 const char *reason, const struct vault_secret *s, int wait)
{
	struct fs_state *fs = c->fs;
	const struct acl_labels *l = &c->who.labels;
	char path[2 * VAULT_NAME_MAX + 2] = "";
	if (s && s->provider[0])
		snprintf(path, sizeof path, s->key[0] ? "%s/%s" : "%s", s->provider, s->key);
	struct audit_row r = {
		.event = event,
		.result = result,
		.reason = reason,
		.agent = c->who.result == ACL_WHO_AGENT ? c->who.agent.name : NULL,
		.uid = c->ctx->uid,
		.gid = c->ctx->gid,
		.pid = c->ctx->pid,
		.tgid = l->tgid ? l->tgid : -1,
		.sudo_uid = -1,
		.exe = (l->have & ACL_L_EXE) ? l->exe : NULL,
		.cgroup = (l->have & ACL_L_CGROUP) ? l->cgroup : NULL,
		.lsm = (l->have & ACL_L_LSM) ? l->lsm : NULL,
		.path = path[0] ? path : NULL,
		.secret_id = s ? s->id : 0,
		.version = s ? s->version : 0,
		.count = 1,
	};
	if (audit_writer_submit(fs->audit, &r, wait) == 0) {
		int resumed = wait && atomic_load(&fs->audit_failing) && atomic_exchange(&fs->audit_failing, 0);
		if (resumed)
			fprintf(stderr, "scopeholdfs: audit store writable again; opens resume\n");
		if (wait)
			audit_notes(fs, resumed);
		return 0;
	}
	if (!wait) /* only a row nobody waits for was lost (counted): opens go on */
		return -1;
	/* A waited row failed: its commit did, which fails every open. */
	if (!atomic_exchange(&fs->audit_failing, 1)) {
		const char *why = audit_writer_error(fs->audit);
		fprintf(stderr, "scopeholdfs: cannot write audit rows (%s); every open fails with EIO until this is fixed\n",
			why ? why : "unknown error");
	}
	return -1;
}

/* ---- open handles per uid ------------------------------------------------ */

/* The open handles of one uid (directories with their listing, files with
 * their sealed value or text) hold at most FS_UID_HANDLES handles and
 * FS_UID_BYTES bytes: beyond, opendir and open fail with EMFILE, recorded
 * once per FS_CAP_NOTE_NS per uid. Uids for which no slot is free in their
 * probe window share one more slot (and its cap). */
#define FS_UID_HANDLES 4096
#define FS_UID_BYTES (64LL << 20)
#define FS_CAP_NOTE_NS (10 * 1000000000LL)
#define USE_SLOTS 1024
#define USE_PROBE 16
#define TRIM_BYTES (16 << 20) /* released since the last malloc_trim */

struct deferred;

struct use {
	int used;
	uid_t uid;
	int64_t handles, bytes, noted_ns;
	int inflight;                  /* requests running (dispatch) */
	struct deferred *head, *last;  /* requests waiting for one to end */
};

static struct {
	pthread_mutex_t mu;
	struct use t[USE_SLOTS + 1]; /* the last one is shared */
	int64_t freed;
} uses = { .mu = PTHREAD_MUTEX_INITIALIZER };

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* uid's slot (uses.mu held): its own, a free or idle one, or the shared. */
static struct use *use_of(uid_t uid, int64_t now)
{
	uint64_t h = ((uint64_t)uid * 0x9e3779b97f4a7c15ULL) >> 40;
	struct use *spare = NULL;
	for (int k = 0; k < USE_PROBE; k++) {
		struct use *u = &uses.t[(h + (uint64_t)k) % USE_SLOTS];
		if (u->used && u->uid == uid)
			return u;
		if (!spare && (!u->used || (!u->handles && !u->inflight && !u->head &&
					    now - u->noted_ns >= FS_CAP_NOTE_NS)))
			spare = u;
	}
	if (!spare)
		return &uses.t[USE_SLOTS];
	memset(spare, 0, sizeof *spare);
	spare->used = 1;
	spare->uid = uid;
	spare->noted_ns = now - FS_CAP_NOTE_NS;
	return spare;
}

/* Count a handle of the request's uid that holds bytes: its slot (to give
 * back to handle_put), or NULL when over the cap; then the refusal is
 * audited (once per uid and FS_CAP_NOTE_NS) as an open of c (NULL: read
 * the caller from req) and the caller gets EMFILE. */
static struct use *handle_get(fuse_req_t req, struct caller *c, const struct vault_secret *s, size_t bytes)
{
	uid_t uid = fuse_req_ctx(req)->uid;
	int64_t now = mono_ns();
	int note = 0;
	pthread_mutex_lock(&uses.mu);
	struct use *u = use_of(uid, now);
	if (u->handles >= FS_UID_HANDLES || u->bytes + (int64_t)bytes > FS_UID_BYTES) {
		if ((note = now - u->noted_ns >= FS_CAP_NOTE_NS))
			u->noted_ns = now;
		u = NULL;
	} else {
		u->handles++;
		u->bytes += (int64_t)bytes;
	}
	pthread_mutex_unlock(&uses.mu);
	if (note) {
		struct caller own;
		if (!c) {
			memset(&own, 0, sizeof own);
			own.fs = state(req);
			own.own = *fuse_req_ctx(req);
			own.ctx = &own.own;
			own.who.result = ACL_WHO_NONE;
			c = &own;
		}
		char reason[160];
		snprintf(reason, sizeof reason, "over the cap of open handles of this uid (%d handles, %lld MiB): "
			 "EMFILE, recorded once per %lld s", FS_UID_HANDLES, (long long)(FS_UID_BYTES >> 20),
			 (long long)(FS_CAP_NOTE_NS / 1000000000LL));
		audit(c, "open", "denied", reason, s, 0);
	}
	if (!u)
		fuse_reply_err(req, EMFILE);
	return u;
}

/* Give back what handle_get counted; return freed memory to the system
 * once enough was released. */
static void handle_put(struct use *u, size_t bytes)
{
	pthread_mutex_lock(&uses.mu);
	u->handles--;
	u->bytes -= (int64_t)bytes;
	int trim = (uses.freed += (int64_t)bytes) >= TRIM_BYTES;
	if (trim)
		uses.freed = 0;
	pthread_mutex_unlock(&uses.mu);
	if (trim)
		malloc_trim(0);
}

/* ---- attributes --------------------------------------------------------- */

/* Directories carry the time the daemon started. */
static struct timespec started;

static void attr_dir(struct stat *st, fuse_ino_t ino, const struct fuse_ctx *ctx)
{
	memset(st, 0, sizeof *st);
	st->st_mtim = st->st_ctim = st->st_atim = started;
	st->st_ino = ino;
	st->st_mode = S_IFDIR | 0500;
	st->st_nlink = 2;
	st->st_uid = ctx->uid;
	st->st_gid = ctx->gid;
}

static void attr_file(struct stat *st, fuse_ino_t ino, off_t size, int64_t mtime_ns,
		      const struct fuse_ctx *ctx)
{
	memset(st, 0, sizeof *st);
	st->st_ino = ino;
	st->st_mode = S_IFREG | 0400;
	st->st_nlink = 1;
	st->st_uid = ctx->uid;
	st->st_gid = ctx->gid;
	st->st_size = size;
	st->st_mtim.tv_sec = mtime_ns / 1000000000;
	st->st_mtim.tv_nsec = mtime_ns % 1000000000;
	st->st_ctim = st->st_mtim;
	st->st_atim = st->st_mtim;
}

static void reply_entry(fuse_req_t req, const struct stat *st)
{
	struct fuse_entry_param e;
	memset(&e, 0, sizeof e);
	e.ino = st->st_ino;
	e.attr = *st;
	e.attr_timeout = 0;
	e.entry_timeout = 0;
	fuse_reply_entry(req, &e);
}

/* ---- /.scopehold/whoami ------------------------------------------------- */

/* The caller's own resolution as text; never a value. Returns its length. */
static size_t whoami_text(const struct caller *c, char *buf, size_t len)
{
	const struct acl_who *w = &c->who;
	const struct acl_labels *l = &w->labels;
	/* A non-root caller learns its own agent and nothing of the others of
	 * its uid: not their names, not whether any is bound to it (the full
	 * reason is in the audit row and in scopeholdctl whoami). */
	char brief[64];
	const char *reason = w->reason;
	if (c->ctx->uid != 0 && w->result == ACL_WHO_AMBIGUOUS) {
		snprintf(brief, sizeof brief, "ambiguous: %zu bindings match equally", w->tied);
		reason = brief;
	} else if (c->ctx->uid != 0 && w->result == ACL_WHO_NONE) {
		reason = "no agent";
	}
	int n = snprintf(buf, len,
			 "agent: %s\nproject: %s\nresult: %s\nreason: %s\nuid: %u\ngid: %u\npid: %d\ntgid: %d\n"
			 "cgroup: %s\nexe: %s\nlsm: %s\n",
			 w->result == ACL_WHO_AGENT ? w->agent.name : "-",
			 w->result == ACL_WHO_AGENT ? w->agent.project : "-",
			 who_result(w), reason, (unsigned)c->ctx->uid, (unsigned)c->ctx->gid,
			 (int)c->ctx->pid, (int)l->tgid,
			 (l->have & ACL_L_CGROUP) ? l->cgroup : "-",
			 (l->have & ACL_L_EXE) ? l->exe : "-",
			 (l->have & ACL_L_LSM) ? l->lsm : "-");
	if (n < 0)
		return 0;
	return (size_t)n < len ? (size_t)n : len - 1;
}

#define WHOAMI_MAX 4096

/* ---- page-cache invalidation -------------------------------------------- */

/* Inodes whose page cache a private mmap may have filled, dropped by one
 * thread of their own: invalidation waits for page locks that a fault holds
 * while its READ waits for a worker, so a worker must never do it. Full:
 * the entry is skipped (the pages go when the kernel evicts the inode). */
#define INVAL_QUEUE 1024
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	fuse_ino_t ino[INVAL_QUEUE];
	size_t head, n;
	struct fuse_session *se;
} inval = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void *inval_main(void *arg)
{
	pthread_mutex_lock(&inval.mu);
	for (;;) {
		while (!inval.n)
			pthread_cond_wait(&inval.cv, &inval.mu);
		fuse_ino_t ino = inval.ino[inval.head];
		inval.head = (inval.head + 1) % INVAL_QUEUE;
		inval.n--;
		pthread_mutex_unlock(&inval.mu);
		fuse_lowlevel_notify_inval_inode(inval.se, ino, 0, 0);
		pthread_mutex_lock(&inval.mu);
	}
	return NULL;
}

static void inval_later(fuse_ino_t ino)
{
	pthread_mutex_lock(&inval.mu);
	if (inval.se && inval.n < INVAL_QUEUE) {
		inval.ino[(inval.head + inval.n) % INVAL_QUEUE] = ino;
		inval.n++;
		pthread_cond_signal(&inval.cv);
	}
	pthread_mutex_unlock(&inval.mu);
}

/* ---- operations --------------------------------------------------------- */

static void sh_init(void *userdata, struct fuse_conn_info *conn)
{
	/* The kernel must not answer one caller from another's lookups. */
	conn->want &= ~(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	clock_gettime(CLOCK_REALTIME, &started);
	struct fs_state *fs = userdata;
	audit_writer_set_reserve(fs->audit, fs->cfg.audit_reserve);
	pthread_t t;
	if (fs->se && !inval.se && pthread_create(&t, NULL, inval_main, NULL) == 0) {
		pthread_detach(t); /* it may sit in the kernel at exit; never joined */
		pthread_mutex_lock(&inval.mu);
		inval.se = fs->se;
		pthread_mutex_unlock(&inval.mu);
	}
}

static void lookup_op(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct caller c;
	struct stat st;
	struct vault_err e;
	if (strlen(name) > VAULT_NAME_MAX) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (parent == FS_INO_ROOT && !strcmp(name, ".scopehold")) {
		attr_dir(&st, FS_INO_META, fuse_req_ctx(req));
		reply_entry(req, &st);
		return;
	}
	if (parent == FS_INO_META) {
		if (strcmp(name, "whoami")) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		char text[WHOAMI_MAX];
		caller_get(req, &c);
		attr_file(&st, FS_INO_WHOAMI_OF(c.ctx->uid, c.ctx->pid), (off_t)whoami_text(&c, text, sizeof text), 0, c.ctx);
		reply_entry(req, &st);
		return;
	}
	/* A refused lookup is answered first and recorded after: whether the
	 * name exists (and so whether there is a row to write) must not show
	 * in the time the answer takes (scripts/bench --oracle). Nobody waits
	 * for these rows; c holds its own copy of the request's context. */
	char nm[VAULT_NAME_MAX + 1]; /* name, kept past the reply */
	snprintf(nm, sizeof nm, "%s", name);
	if (caller_get(req, &c) < 0) {
		/* A caller that is no agent probing a provider that exists. */
		struct vault_secret s = { 0 };
		fuse_reply_err(req, ENOENT);
		if (parent == FS_INO_ROOT && c.db && vault_provider_id(c.db, nm, &e) > 0) {
			snprintf(s.provider, sizeof s.provider, "%s", nm);
			audit(&c, "lookup", who_result(&c.who), c.who.reason, &s, 0);
		}
		return;
	}
	if (parent == FS_INO_ROOT) {
		int64_t pid;
		int ok = acl_view_provider(c.db, &c.who.agent, name, &pid, &e);
		if (ok != 1) {
			/* A provider that exists but holds nothing for this
			 * agent: the probe is recorded (coalesced). */
			struct vault_secret s = { 0 };
			fuse_reply_err(req, ENOENT);
			if (ok == 0 && vault_provider_id(c.db, nm, &e) > 0) {
				snprintf(s.provider, sizeof s.provider, "%s", nm);
				audit(&c, "lookup", "denied", "no grant under this provider", &s, 0);
			}
			return;
		}
		attr_dir(&st, FS_INO_PROVIDER_OF(pid), c.ctx);
		reply_entry(req, &st);
		return;
	}
	if (FS_INO_KIND(parent) == FS_INO_PROVIDER) {
		struct vault_secret s;
		memset(&s, 0, sizeof s);
		int ok = acl_view_key(c.db, &c.who.agent, FS_INO_ID(parent), name, &s, &e);
		if (ok == 2) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		if (ok != 1) {
			fuse_reply_err(req, ENOENT);
			audit(&c, "lookup", ok < 0 ? "error" : "denied",
			      ok < 0 ? "database error" : "not granted", &s, 0);
			return;
		}
		if (c.who.agent.id > FS_AGENT_MAX || s.id > FS_SECRET_MAX) {
			fuse_reply_err(req, EOVERFLOW);
			return;
		}
		attr_file(&st, FS_INO_SECRET_OF(c.who.agent.id, s.id), s.len, s.created_ns, c.ctx);
		reply_entry(req, &st);
		return;
	}
	fuse_reply_err(req, ENOENT);
}

/* Fill the names and current version of secret sid into s, for the audit
 * row of a refused open only (never for a reply). */
static void secret_names(struct vault_db *db, int64_t sid, struct vault_secret *s)
{
	struct vault_err e;
	sqlite3_stmt *st = vault_db_stmt(db, "SELECT p.name, s.key, s.version FROM secrets s JOIN providers p"
					     " ON p.id = s.provider_id WHERE s.id = ?", &e);
	if (!st)
		return;
	sqlite3_bind_int64(st, 1, sid);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(s->provider, sizeof s->provider, "%s", (const char *)sqlite3_column_text(st, 0));
		snprintf(s->key, sizeof s->key, "%s", (const char *)sqlite3_column_text(st, 1));
		s->version = sqlite3_column_int64(st, 2);
	}
	sqlite3_reset(st);
}

static int provider_of(struct caller *c, int64_t pid)
{
	struct vault_err e;
	sqlite3_stmt *st = vault_db_stmt(c->db, "SELECT name FROM providers WHERE id = ?", &e);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, pid);
	char name[VAULT_NAME_MAX + 1] = "";
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(name, sizeof name, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	int64_t got = 0;
	return name[0] && acl_view_provider(c->db, &c->who.agent, name, &got, &e) == 1 && got == pid ? 1 : 0;
}

static void getattr_op(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct caller c;
	struct stat st;
	struct vault_err e;
	if (ino == FS_INO_ROOT || ino == FS_INO_META) {
		attr_dir(&st, ino, fuse_req_ctx(req));
		fuse_reply_attr(req, &st, 0);
		return;
	}
	if (FS_INO_KIND(ino) == FS_INO_WHOAMI) {
		char text[WHOAMI_MAX];
		caller_get(req, &c);
		attr_file(&st, ino, (off_t)whoami_text(&c, text, sizeof text), 0, c.ctx);
		fuse_reply_attr(req, &st, 0);
		return;
	}
	if (caller_get(req, &c) < 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (FS_INO_KIND(ino) == FS_INO_PROVIDER && provider_of(&c, FS_INO_ID(ino)) == 1) {
		attr_dir(&st, ino, c.ctx);
		fuse_reply_attr(req, &st, 0);
		return;
	}
	struct vault_secret s;
	if (FS_INO_KIND(ino) == FS_INO_SECRET && FS_INO_AGENT(ino) == c.who.agent.id &&
	    acl_view_secret(c.db, &c.who.agent, FS_INO_SECRET_ID(ino), &s, &e) == 1) {
		attr_file(&st, ino, s.len, s.created_ns, c.ctx);
		fuse_reply_attr(req, &st, 0);
		return;
	}
	fuse_reply_err(req, ENOENT);
}

/* A directory listing built at opendir: one snapshot for the whole read. */
struct dirbuf {
	fuse_req_t req;
	char *p;
	size_t len, cap;
	size_t hint;   /* where the last reply ended: a known record boundary */
	int64_t agent; /* whose listing (node ids of secrets name the agent) */
	int failed;
	struct use *use; /* counted against its uid */
	size_t bytes;
};

static void dir_add(struct dirbuf *d, const char *name, fuse_ino_t ino, mode_t mode)
{
	struct stat st = { .st_ino = ino, .st_mode = mode };
	size_t need = fuse_add_direntry(d->req, NULL, 0, name, NULL, 0);
	if (d->len + need > d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 4096;
		while (cap < d->len + need)
			cap *= 2;
		char *p = realloc(d->p, cap);
		if (!p) {
			d->failed = 1;
			return;
		}
		d->p = p;
		d->cap = cap;
	}
	fuse_add_direntry(d->req, d->p + d->len, need, name, &st, (off_t)(d->len + need));
	d->len += need;
}

static int dir_provider(void *arg, int64_t id, const char *name)
{
	struct dirbuf *d = arg;
	dir_add(d, name, FS_INO_PROVIDER_OF(id), S_IFDIR);
	return d->failed;
}

static int dir_key(void *arg, const struct vault_secret *s)
{
	struct dirbuf *d = arg;
	if (d->agent > FS_AGENT_MAX || s->id > FS_SECRET_MAX)
		return 0;
	dir_add(d, s->key, FS_INO_SECRET_OF(d->agent, s->id), S_IFREG);
	return d->failed;
}

static void opendir_op(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct caller c;
	struct vault_err e;
	struct dirbuf *d = calloc(1, sizeof *d);
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	d->req = req;
	int rc = 0;
	if (ino == FS_INO_META) {
		dir_add(d, ".", ino, S_IFDIR);
		dir_add(d, "..", FS_INO_ROOT, S_IFDIR);
		const struct fuse_ctx *ctx = fuse_req_ctx(req);
		dir_add(d, "whoami", FS_INO_WHOAMI_OF(ctx->uid, ctx->pid), S_IFREG);
	} else if (ino == FS_INO_ROOT) {
		dir_add(d, ".", ino, S_IFDIR);
		dir_add(d, "..", ino, S_IFDIR);
		if (caller_get(req, &c) == 0)
			rc = acl_view_providers(c.db, &c.who.agent, dir_provider, d, &e);
	} else if (FS_INO_KIND(ino) == FS_INO_PROVIDER) {
		if (caller_get(req, &c) < 0 || provider_of(&c, FS_INO_ID(ino)) != 1) {
			free(d);
			fuse_reply_err(req, ENOENT);
			return;
		}
		dir_add(d, ".", ino, S_IFDIR);
		dir_add(d, "..", FS_INO_ROOT, S_IFDIR);
		d->agent = c.who.agent.id;
		rc = acl_view_keys(c.db, &c.who.agent, FS_INO_ID(ino), dir_key, d, &e);
	} else {
		free(d);
		fuse_reply_err(req, FS_INO_KIND(ino) == FS_INO_SECRET ? ENOTDIR : ENOENT);
		return;
	}
	if (rc < 0 || d->failed) {
		free(d->p);
		free(d);
		fuse_reply_err(req, rc < 0 ? EIO : ENOMEM);
		return;
	}
	if (d->len && d->len < d->cap) { /* held until close: no slack */
		char *p = realloc(d->p, d->len);
		if (p) {
			d->p = p;
			d->cap = d->len;
		}
	}
	d->bytes = sizeof *d + d->cap;
	if (!(d->use = handle_get(req, NULL, NULL, d->bytes))) {
		free(d->p);
		free(d);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	fi->keep_cache = 0;
	fi->cache_readdir = 0;
	if (fuse_reply_open(req, fi) != 0) {
		handle_put(d->use, d->bytes);
		free(d->p);
		free(d);
	}
}

/* The kernel's dirent record as fuse_add_direntry lays it out; `off` is
 * the offset of the next record, which dir_add sets. */
struct dirent_rec {
	uint64_t ino, off;
	uint32_t namelen, type;
};

static void sh_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct dirbuf *d = (struct dirbuf *)(uintptr_t)fi->fh;
	if (off < 0 || (size_t)off >= d->len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	/* off comes from the caller (lseek on the directory): accept only an
	 * offset that dir_add produced, walking the records from the start,
	 * then reply whole records only, as many as fit in size. */
	size_t pos = (size_t)off == d->hint ? d->hint : 0;
	while (pos < (size_t)off)
		pos = (size_t)((const struct dirent_rec *)(d->p + pos))->off;
	if (pos != (size_t)off) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	while (pos < d->len) {
		size_t next = (size_t)((const struct dirent_rec *)(d->p + pos))->off;
		if (next - (size_t)off > size)
			break;
		pos = next;
	}
	/* Reply from a copy: once the kernel has the reply, RELEASEDIR may
	 * free d on another thread before writev() has returned here. */
	size_t n = pos - (size_t)off;
	char *copy = malloc(n ? n : 1);
	if (!copy) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(copy, d->p + off, n);
	d->hint = pos; /* before the reply: d may be gone after it */
	fuse_reply_buf(req, copy, n);
	free(copy);
}

static void sh_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirbuf *d = (struct dirbuf *)(uintptr_t)fi->fh;
	handle_put(d->use, d->bytes);
	free(d->p);
	free(d);
	fuse_reply_err(req, 0);
}

/* An open file: the sealed version pinned at open, or the whoami text. The
 * value is decrypted once, at the first READ, into locked memory of the
 * handle (pt), and wiped at RELEASE: a read costs the range it returns,
 * not a decryption of the whole value. */
struct handle {
	int whoami;
	struct vault_sealed sealed;
	size_t len;
	struct use *use; /* counted against its uid */
	size_t bytes;
	pthread_mutex_t mu; /* guards pt: reads of one handle may come at once */
	uint8_t *pt;        /* sodium_malloc'd plaintext, or NULL before the first READ */
	char text[];
};

/* Free a secret's handle: its uid's count, the sealed copy, the plaintext. */
static void handle_drop(struct handle *h)
{
	handle_put(h->use, h->bytes);
	vault_sealed_clear(&h->sealed);
	sodium_free(h->pt); /* zeroes it; NULL is a no-op */
	pthread_mutex_destroy(&h->mu);
	free(h);
}

static void open_op(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct caller c;
	struct vault_err e;
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & (O_TRUNC | O_APPEND | O_CREAT))) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if (FS_INO_KIND(ino) == FS_INO_WHOAMI) {
		struct handle *h = calloc(1, sizeof *h + WHOAMI_MAX);
		if (!h) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		caller_get(req, &c);
		h->whoami = 1;
		h->len = whoami_text(&c, h->text, WHOAMI_MAX);
		h->bytes = sizeof *h + WHOAMI_MAX;
		if (!(h->use = handle_get(req, &c, NULL, h->bytes))) {
			free(h);
			return;
		}
		fi->fh = (uint64_t)(uintptr_t)h;
		fi->direct_io = 1;
		fi->keep_cache = 0;
		if (fuse_reply_open(req, fi) != 0) {
			handle_put(h->use, h->bytes);
			free(h);
		}
		return;
	}
	if (FS_INO_KIND(ino) != FS_INO_SECRET) {
		fuse_reply_err(req, ino == FS_INO_ROOT || FS_INO_KIND(ino) == FS_INO_PROVIDER ? EISDIR : ENOENT);
		return;
	}
	struct vault_secret s;
	memset(&s, 0, sizeof s);
	s.id = FS_INO_SECRET_ID(ino);
	/* An open is audited with every label of the caller, not only those
	 * some binding needed. */
	if (caller_get_labels(req, &c, ACL_L_CGROUP | ACL_L_EXE | ACL_L_LSM) < 0) {
		if (!c.db) {
			fuse_reply_err(req, EIO);
			return;
		}
		secret_names(c.db, s.id, &s);
		int err = audit(&c, "open", who_result(&c.who), c.who.reason, &s, 1) < 0 ? EIO : ENOENT;
		fuse_reply_err(req, err);
		return;
	}
	/* A node id looked up by another agent is not this caller's. */
	int ok = FS_INO_AGENT(ino) == c.who.agent.id ? acl_view_secret(c.db, &c.who.agent, s.id, &s, &e) : 0;
	if (ok != 1) {
		int err = ok < 0 ? EIO : ENOENT;
		secret_names(c.db, s.id, &s);
		if (audit(&c, "open", ok < 0 ? "error" : "denied", ok < 0 ? e.msg : "not granted", &s, 1) < 0)
			err = EIO;
		fuse_reply_err(req, err);
		return;
	}
	struct handle *h = calloc(1, sizeof *h);
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_init(&h->mu, NULL);
	if (vault_sealed_load(c.db, s.id, s.version, &h->sealed, &e) != 1) {
		audit(&c, "open", "error", "version missing", &s, 1);
		pthread_mutex_destroy(&h->mu);
		free(h);
		fuse_reply_err(req, EIO);
		return;
	}
	h->len = (size_t)s.len;
	if (h->sealed.ctlen != h->len + VAULT_TAG_BYTES) { /* decrypt writes ctlen - tag bytes */
		audit(&c, "open", "error", "stored length does not match the sealed value", &s, 1);
		vault_sealed_clear(&h->sealed);
		pthread_mutex_destroy(&h->mu);
		free(h);
		fuse_reply_err(req, EIO);
		return;
	}
	h->bytes = sizeof *h + h->sealed.ctlen + h->len; /* the plaintext to come too */
	if (!(h->use = handle_get(req, &c, &s, h->bytes))) {
		vault_sealed_clear(&h->sealed);
		pthread_mutex_destroy(&h->mu);
		free(h);
		return;
	}
	if (audit(&c, "open", "granted", NULL, &s, 1) < 0) {
		handle_drop(h);
		fuse_reply_err(req, EIO);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	fi->noflush = 1;
	if (fuse_reply_open(req, fi) != 0) {
		/* The caller was gone (killed) before the reply: no handle
		 * reached it, and the trail says so. */
		audit(&c, "open", "error", "caller gone before the reply", &s, 0);
		handle_drop(h);
	}
}

static void sh_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs_state *fs = state(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	if (off < 0 || (size_t)off >= h->len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	size_t n = h->len - (size_t)off < size ? h->len - (size_t)off : size;
	if (h->whoami) {
		char copy[WHOAMI_MAX]; /* h may be freed by RELEASE once replied */
		memcpy(copy, h->text + off, n);
		fuse_reply_buf(req, copy, n);
		return;
	}
	struct vault_err e;
	pthread_mutex_lock(&h->mu);
	if (!h->pt) {
		uint8_t *pt = sodium_malloc(h->len ? h->len : 1);
		if (!pt) {
			pthread_mutex_unlock(&h->mu);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		if (vault_sealed_open(fs->key, &h->sealed, pt, &e) < 0) {
			pthread_mutex_unlock(&h->mu);
			sodium_free(pt);
			fprintf(stderr, "scopeholdfs: %s\n", e.msg);
			fuse_reply_err(req, EIO);
			return;
		}
		h->pt = pt;
	}
	pthread_mutex_unlock(&h->mu);
	/* h lives until RELEASE, which cannot come while this READ's caller
	 * waits for the reply being written from it */
	fuse_reply_buf(req, (const char *)h->pt + off, n);
}

static void sh_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	if (h->whoami) {
		handle_put(h->use, h->bytes);
		free(h);
	} else {
		handle_drop(h);
	}
	fuse_reply_err(req, 0);
	/* Drop whatever a private mmap put in the page cache: plaintext must
	 * not outlive the open in kernel memory. */
	inval_later(ino);
}

/* ---- requests in flight per uid ----------------------------------------- */

/* At most FS_UID_INFLIGHT lookups, getattrs, opendirs and opens of one uid
 * run at once (half the default worker threads); more wait in the uid's
 * queue, in order, while the worker goes back to the kernel for the next
 * request (maybe another uid's), and run on the thread whose request of
 * that uid ends. One uid that floods cannot hold every worker, so another
 * uid's request waits for at most the requests in flight before it. The
 * queue holds requests the kernel already sent: at most one per thread of
 * the uid's processes. */
#define FS_UID_INFLIGHT 8

enum op { OP_LOOKUP, OP_GETATTR, OP_OPENDIR, OP_OPEN };

struct deferred {
	struct deferred *next;
	enum op op;
	fuse_req_t req;
	fuse_ino_t ino;
	struct fuse_file_info fi, *fip; /* fip: &fi, or NULL when none was given */
	char name[];
};

static void run_op(enum op op, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, const char *name)
{
	struct fs_state *fs = state(req); /* req is gone after the reply */
	switch (op) {
	case OP_LOOKUP: lookup_op(req, ino, name); break;
	case OP_GETATTR: getattr_op(req, ino, fi); break;
	case OP_OPENDIR: opendir_op(req, ino, fi); break;
	case OP_OPEN: open_op(req, ino, fi); break;
	}
	txn_end(fs);
}

static void dispatch(enum op op, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, const char *name)
{
	uid_t uid = fuse_req_ctx(req)->uid;
	pthread_mutex_lock(&uses.mu);
	struct use *u = use_of(uid, mono_ns());
	if (u->inflight >= FS_UID_INFLIGHT) {
		size_t n = name ? strlen(name) + 1 : 0;
		struct deferred *d = malloc(sizeof *d + n);
		if (d) { /* else it runs now */
			memset(d, 0, sizeof *d);
			d->op = op;
			d->req = req;
			d->ino = ino;
			if (fi) {
				d->fi = *fi;
				d->fip = &d->fi;
			}
			if (name)
				memcpy(d->name, name, n);
			if (u->head)
				u->last->next = d;
			else
				u->head = d;
			u->last = d;
			pthread_mutex_unlock(&uses.mu);
			return;
		}
	}
	u->inflight++;
	pthread_mutex_unlock(&uses.mu);
	run_op(op, req, ino, fi, name);
	for (;;) {
		pthread_mutex_lock(&uses.mu);
		struct deferred *d = u->head;
		if (!d) {
			u->inflight--;
			pthread_mutex_unlock(&uses.mu);
			return;
		}
		u->head = d->next;
		pthread_mutex_unlock(&uses.mu);
		run_op(d->op, d->req, d->ino, d->fip, d->name);
		free(d);
	}
}

static void sh_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	dispatch(OP_LOOKUP, req, parent, NULL, name);
}

static void sh_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	dispatch(OP_GETATTR, req, ino, fi, NULL);
}

static void sh_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	dispatch(OP_OPENDIR, req, ino, fi, NULL);
}

static void sh_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	dispatch(OP_OPEN, req, ino, fi, NULL);
}

static void sh_rofs(fuse_req_t req)
{
	fuse_reply_err(req, EROFS);
}

static void sh_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi) { sh_rofs(req); }
static void sh_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev) { sh_rofs(req); }
static void sh_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) { sh_rofs(req); }
static void sh_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) { sh_rofs(req); }
static void sh_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name) { sh_rofs(req); }
static void sh_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags) { sh_rofs(req); }
static void sh_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname) { sh_rofs(req); }
static void sh_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi) { sh_rofs(req); }
static void sh_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi) { sh_rofs(req); }
static void sh_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags) { sh_rofs(req); }
static void sh_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name) { sh_rofs(req); }

const struct fuse_lowlevel_ops fs_ops = {
	.init = sh_init,
	.lookup = sh_lookup,
	.getattr = sh_getattr,
	.opendir = sh_opendir,
	.readdir = sh_readdir,
	.releasedir = sh_releasedir,
	.open = sh_open,
	.read = sh_read,
	.release = sh_release,
	.setattr = sh_setattr,
	.mknod = sh_mknod,
	.mkdir = sh_mkdir,
	.unlink = sh_unlink,
	.rmdir = sh_unlink,
	.symlink = sh_symlink,
	.rename = sh_rename,
	.link = sh_link,
	.write = sh_write,
	.create = sh_create,
	.setxattr = sh_setxattr,
	.removexattr = sh_removexattr,
};
