/* db.c - SQLite connections for ScopeHold: open with the file checks, WAL and
 * busy timeout, a per-connection cache of prepared statements, migrations,
 * and the error helpers every module shares. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "vault/vault.h"

#define STMT_CACHE 48
#define BUSY_TIMEOUT_MS 5000

struct vault_db {
	sqlite3 *db;
	char *path;
	const char *kind; /* "vault" or "audit store", for messages */
	int fresh;        /* this open created the file: it may be given a schema */
	int depth; /* nesting of vault_db_begin: 1 is BEGIN, deeper are SAVEPOINTs */
	int keep_versions; /* versions of a secret a put keeps */
	int nstmt;
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} stmt[STMT_CACHE];
};

int vault_fail(struct vault_err *e, enum vault_code code, const char *fmt, ...)
{
	if (!e)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	e->code = code;
	return -1;
}

int vault_fail_sql(struct vault_err *e, sqlite3 *db, int rc, const char *what)
{
	int prim = rc & 0xff;
	switch (prim) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return vault_fail(e, VAULT_EBUSY,
				  "%s: database is locked by another process (still busy after %d ms)",
				  what, BUSY_TIMEOUT_MS);
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB: {
		const char *file = db ? sqlite3_db_filename(db, "main") : NULL;
		return vault_fail(e, VAULT_ECORRUPT, "%s: database file '%s' is corrupt or not a ScopeHold database",
				  what, file && *file ? file : "?");
	}
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
	case SQLITE_FULL:
	case SQLITE_IOERR: {
		/* name the file, and the system's reason (a read-only or full
		 * filesystem): SQLite's last errno may be from a later fallback
		 * (ENOENT of a read-only -shm), so a read-only one is asked for */
		const char *file = db ? sqlite3_db_filename(db, "main") : NULL;
		int sys = db ? sqlite3_system_errno(db) : 0;
		struct statvfs vfs;
		if (file && *file && statvfs(file, &vfs) == 0 && (vfs.f_flag & ST_RDONLY))
			sys = EROFS;
		return vault_fail(e, VAULT_EIO, "%s '%s': %s%s%s%s", what, file && *file ? file : "?",
				  db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), sys ? " (" : "",
				  sys ? strerror(sys) : "", sys ? ")" : "");
	}
	case SQLITE_NOMEM:
		return vault_fail(e, VAULT_ENOMEM, "%s: out of memory", what);
	default:
		if (db && !strncmp(sqlite3_errmsg(db), "no such table", 13)) {
			/* a table of ours dropped: damaged, or another program's file */
			const char *file = sqlite3_db_filename(db, "main");
			return vault_fail(e, VAULT_ECORRUPT, "%s: %s in '%s': the file is damaged or not a ScopeHold database",
					  what, sqlite3_errmsg(db), file && *file ? file : "?");
		}
		return vault_fail(e, VAULT_EIO, "%s: %s", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	}
}

int64_t vault_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Copy name (at most n bytes of it) into out for a message: printable ASCII
 * only, cut at 40. */
static void shown_name(const char *name, size_t n, char *out, size_t outlen)
{
	size_t j = 0;
	for (size_t i = 0; i < n && name[i] && j + 4 < outlen; i++) {
		if (i == 40) {
			out[j++] = '.'; out[j++] = '.'; out[j++] = '.';
			break;
		}
		unsigned char c = (unsigned char)name[i];
		out[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	out[j] = 0;
}

int vault_name_check(const char *kind, const char *name, struct vault_err *e)
{
	return vault_name_checkn(kind, name, name ? strlen(name) : 0, e);
}

int vault_name_checkn(const char *kind, const char *name, size_t n, struct vault_err *e)
{
	char shown[64];
	if (!name || !n)
		return vault_fail(e, VAULT_EINVAL, "%s name is empty", kind);
	if (memchr(name, 0, n))
		return vault_fail(e, VAULT_EINVAL, "%s name contains a NUL byte", kind);
	shown_name(name, n, shown, sizeof shown);
	if ((n == 1 && name[0] == '.') || (n == 2 && name[0] == '.' && name[1] == '.'))
		return vault_fail(e, VAULT_EINVAL, "%s name '%s' is not allowed", kind, shown);
	if (n > VAULT_NAME_MAX)
		return vault_fail(e, VAULT_EINVAL, "%s name '%s' is %zu characters long; the limit is %d",
				  kind, shown, n, VAULT_NAME_MAX);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (alnum || (i > 0 && (c == '.' || c == '_' || c == '-')))
			continue;
		if (c == '/')
			return vault_fail(e, VAULT_EINVAL, "%s name '%s' contains '/'", kind, shown);
		return vault_fail(e, VAULT_EINVAL,
				  "%s name '%s' has a character not allowed at position %zu "
				  "(use letters, digits, '.', '_', '-'; start with a letter or digit)",
				  kind, shown, i + 1);
	}
	return 0;
}

int vault_path_split(const char *pk, char *provider, char *key, struct vault_err *e)
{
	char shown[64];
	if (!pk || !*pk)
		return vault_fail(e, VAULT_EINVAL, "secret name is empty; expected PROVIDER/KEY");
	shown_name(pk, strlen(pk), shown, sizeof shown);
	const char *slash = strchr(pk, '/');
	if (!slash)
		return vault_fail(e, VAULT_EINVAL, "secret '%s' is not of the form PROVIDER/KEY", shown);
	size_t plen = (size_t)(slash - pk);
	if (plen > VAULT_NAME_MAX) {
		return vault_fail(e, VAULT_EINVAL, "provider name in '%s' is longer than %d characters",
				  shown, VAULT_NAME_MAX);
	}
	memcpy(provider, pk, plen);
	provider[plen] = 0;
	if (vault_name_check("provider", provider, e) < 0)
		return -1;
	if (strlen(slash + 1) > VAULT_NAME_MAX)
		return vault_fail(e, VAULT_EINVAL, "key name in '%s' is longer than %d characters",
				  shown, VAULT_NAME_MAX);
	strcpy(key, slash + 1);
	return vault_name_check("key", key, e);
}

int vault_file_check(const char *what, const char *path, int fd, struct vault_err *e)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return vault_fail(e, VAULT_EIO, "cannot stat %s '%s': %s", what, path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return vault_fail(e, VAULT_EPERM, "%s '%s' is not a regular file", what, path);
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return vault_fail(e, VAULT_EPERM, "%s '%s' is owned by uid %u, not by root or uid %u; run: chown %u '%s'",
				  what, path, (unsigned)st.st_uid, (unsigned)geteuid(), (unsigned)geteuid(), path);
	if (st.st_mode & 077)
		return vault_fail(e, VAULT_EPERM, "%s '%s' is accessible by group or others (mode %04o); run: chmod %s '%s'",
				  what, path, (unsigned)(st.st_mode & 07777),
				  (st.st_mode & 0200) ? "600" : "400", path);
	return 0;
}

static const char *const vault_steps[] = {
	/* 1 */
	"CREATE TABLE meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL) STRICT;"
	"INSERT INTO meta VALUES ('generation', 1);"
	"CREATE TABLE datakey (id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  nonce BLOB NOT NULL, wrapped BLOB NOT NULL, created_ns INTEGER NOT NULL) STRICT;"
	"CREATE TABLE providers (id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  name TEXT NOT NULL UNIQUE, created_ns INTEGER NOT NULL) STRICT;"
	"CREATE TABLE secrets (id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  provider_id INTEGER NOT NULL REFERENCES providers(id),"
	"  key TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 0,"
	"  len INTEGER NOT NULL DEFAULT 0, created_ns INTEGER NOT NULL,"
	"  UNIQUE (provider_id, key)) STRICT;"
	"CREATE TABLE secret_versions (secret_id INTEGER NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,"
	"  version INTEGER NOT NULL, nonce BLOB NOT NULL, ct BLOB NOT NULL,"
	"  len INTEGER NOT NULL, created_ns INTEGER NOT NULL,"
	"  PRIMARY KEY (secret_id, version)) STRICT, WITHOUT ROWID;",
	/* 2: who stored each version (secret versions) */
	"ALTER TABLE secret_versions ADD COLUMN created_uid INTEGER;",
	/* 3. A rekey in progress: the data key wrapped by the new master key
	 * (beside the old wrapping in datakey) and where the old key file is
	 * kept; see vault_key_rekey. */
	"CREATE TABLE datakey_next (id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  nonce BLOB NOT NULL, wrapped BLOB NOT NULL, created_ns INTEGER NOT NULL,"
	"  retired TEXT NOT NULL) STRICT;",
};

void vault_db_set_keep_versions(struct vault_db *db, int n)
{
	db->keep_versions = n < 1 ? 1 : n;
}

int vault_db_keep_versions(const struct vault_db *db)
{
	return db->keep_versions;
}

static int exec_sql(struct vault_db *db, const char *sql, const char *what, struct vault_err *e)
{
	int rc = sqlite3_exec(db->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return vault_fail_sql(e, db->db, rc, what);
	return 0;
}

/* 1 when the file has a schema_version table, 0 when not, -1 on error. */
static int has_schema(struct vault_db *db, struct vault_err *e)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db->db, "SELECT 1 FROM sqlite_master WHERE type = 'table'"
				    " AND name = 'schema_version'", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return vault_fail_sql(e, db->db, rc, "reading the schema");
}

/* A file this open did not create gets no schema: it is refused. */
static int refuse_foreign(struct vault_db *db, const char *module, struct vault_err *e)
{
	return vault_fail(e, VAULT_ECORRUPT, "%s '%s' is not a ScopeHold %s (it has no %s schema); refusing "
			  "to start it anew: restore it from a backup, or move it away and run scopeholdctl init",
			  db->kind, db->path, db->kind, module);
}

int vault_migrate(struct vault_db *db, const char *module,
		  const char *const *steps, int nsteps, struct vault_err *e)
{
	if (!db->fresh) {
		int have = has_schema(db, e);
		if (have <= 0)
			return have < 0 ? -1 : refuse_foreign(db, module, e);
	}
	if (exec_sql(db, "CREATE TABLE IF NOT EXISTS schema_version ("
			 " module TEXT PRIMARY KEY, version INTEGER NOT NULL) STRICT",
		     "creating schema_version", e) < 0)
		return -1;
	for (;;) {
		if (vault_db_begin(db, e) < 0)
			return -1;
		sqlite3_stmt *st = vault_db_stmt(db, "SELECT version FROM schema_version WHERE module = ?", e);
		if (!st)
			goto fail;
		sqlite3_bind_text(st, 1, module, -1, SQLITE_STATIC);
		int have = 0, rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			have = sqlite3_column_int(st, 0);
		else if (rc != SQLITE_DONE) {
			vault_fail_sql(e, db->db, rc, "reading schema_version");
			goto fail;
		}
		sqlite3_reset(st);
		if (have > nsteps) {
			vault_fail(e, VAULT_ECORRUPT,
				   "database '%s' has %s schema version %d, newer than this program's %d; upgrade ScopeHold",
				   db->path, module, have, nsteps);
			goto fail;
		}
		if (have == nsteps) {
			vault_db_rollback(db);
			return 0;
		}
		if (have == 0 && !db->fresh) {
			refuse_foreign(db, module, e);
			goto fail;
		}
		if (exec_sql(db, steps[have], "migrating schema", e) < 0)
			goto fail;
		st = vault_db_stmt(db, "INSERT INTO schema_version(module, version) VALUES (?, ?)"
				       " ON CONFLICT(module) DO UPDATE SET version = excluded.version", e);
		if (!st)
			goto fail;
		sqlite3_bind_text(st, 1, module, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, have + 1);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE) {
			vault_fail_sql(e, db->db, rc, "writing schema_version");
			goto fail;
		}
		if (vault_db_commit(db, e) < 0)
			goto fail;
	}
fail:
	vault_db_rollback(db);
	return -1;
}

struct vault_db *vault_db_open(const char *path, unsigned flags, struct vault_err *e)
{
	struct vault_db *db = calloc(1, sizeof *db);
	if (db)
		db->keep_versions = VAULT_KEEP_VERSIONS;
	if (!db || !(db->path = strdup(path))) {
		free(db);
		vault_fail(e, VAULT_ENOMEM, "out of memory");
		return NULL;
	}
	db->kind = (flags & VAULT_DB_NOVAULT) ? "audit store" : "vault";
	/* O_PATH: closing a real descriptor of the database would drop the
	 * POSIX locks SQLite holds through this process's other connections. */
	int fd = open(path, O_PATH | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT && (flags & VAULT_DB_CREATE)) {
		int cfd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (cfd < 0) {
			vault_fail(e, VAULT_EIO, "cannot create %s '%s': %s", db->kind, path, strerror(errno));
			goto err;
		}
		close(cfd); /* nothing locks a file that was just created */
		db->fresh = 1;
		fd = open(path, O_PATH | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd < 0) {
		if (errno == ENOENT)
			vault_fail(e, VAULT_ENOENT, "%s '%s' does not exist; run: scopeholdctl init", db->kind, path);
		else
			vault_fail(e, VAULT_EIO, "cannot open %s '%s': %s", db->kind, path, strerror(errno));
		goto err;
	}
	struct stat lst;
	if (fstat(fd, &lst) == 0 && S_ISLNK(lst.st_mode)) {
		close(fd);
		vault_fail(e, VAULT_EPERM, "%s '%s' is a symbolic link; refusing it", db->kind, path);
		goto err;
	}
	int rc = vault_file_check(db->kind, path, fd, e);
	close(fd);
	if (rc < 0)
		goto err;
	/* SQLite takes an empty file for a new database: only one this open
	 * created may be one (an emptied store is never started anew). */
	if (!db->fresh && lst.st_size == 0) {
		vault_fail(e, VAULT_ECORRUPT, "%s '%s' is empty (0 bytes): it was emptied or replaced; refusing to "
			   "start it anew: restore it from a backup, or move it away and run scopeholdctl init",
			   db->kind, path);
		goto err;
	}

	int oflags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW |
		     ((flags & VAULT_DB_READONLY) ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE);
	rc = sqlite3_open_v2(path, &db->db, oflags, NULL);
	if (rc != SQLITE_OK) {
		vault_fail_sql(e, db->db, rc, "opening database");
		goto err;
	}
	sqlite3_extended_result_codes(db->db, 1);
	sqlite3_busy_timeout(db->db, BUSY_TIMEOUT_MS);
	/* A file that is not SQLite fails here with SQLITE_NOTADB. */
	if (exec_sql(db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;"
			 "PRAGMA trusted_schema = OFF; PRAGMA secure_delete = ON",
		     "opening database", e) < 0) {
		if (e && e->code == VAULT_ECORRUPT)
			vault_fail(e, VAULT_ECORRUPT, "%s '%s' is corrupt or not a ScopeHold %s", db->kind, path, db->kind);
		goto err;
	}
	/* Before WAL mode is set: a foreign file is left as it was. */
	if (!db->fresh) {
		rc = has_schema(db, e);
		if (rc == 0)
			refuse_foreign(db, "ScopeHold", e);
		if (rc <= 0)
			goto err;
	}
	if (!(flags & VAULT_DB_READONLY)) {
		sqlite3_stmt *st;
		rc = sqlite3_prepare_v2(db->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_ROW) {
			vault_fail_sql(e, db->db, rc, "setting WAL mode");
			goto err;
		}
	}
	if (!(flags & (VAULT_DB_NOMIGRATE | VAULT_DB_NOVAULT)) &&
	    vault_migrate(db, "vault", vault_steps, (int)(sizeof vault_steps / sizeof *vault_steps), e) < 0)
		goto err;
	/* SQLite creates -wal and -shm with the database's mode. */
	return db;
err:
	vault_db_close(db);
	return NULL;
}

void vault_db_close(struct vault_db *db)
{
	if (!db)
		return;
	for (int i = 0; i < db->nstmt; i++)
		sqlite3_finalize(db->stmt[i].st);
	sqlite3_close_v2(db->db);
	free(db->path);
	free(db);
}

sqlite3 *vault_db_handle(struct vault_db *db)
{
	return db->db;
}

const char *vault_db_path(const struct vault_db *db)
{
	return db->path;
}

sqlite3_stmt *vault_db_stmt(struct vault_db *db, const char *sql, struct vault_err *e)
{
	for (int i = 0; i < db->nstmt; i++) {
		if (db->stmt[i].sql == sql) {
			sqlite3_reset(db->stmt[i].st);
			sqlite3_clear_bindings(db->stmt[i].st);
			return db->stmt[i].st;
		}
	}
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v3(db->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
	if (rc != SQLITE_OK) {
		vault_fail_sql(e, db->db, rc, "preparing a query");
		return NULL;
	}
	if (db->nstmt == STMT_CACHE) { /* full: replace the oldest */
		sqlite3_finalize(db->stmt[0].st);
		memmove(&db->stmt[0], &db->stmt[1], sizeof(db->stmt[0]) * (STMT_CACHE - 1));
		db->nstmt--;
	}
	db->stmt[db->nstmt].sql = sql;
	db->stmt[db->nstmt].st = st;
	db->nstmt++;
	return st;
}

int vault_db_step_done(struct vault_db *db, sqlite3_stmt *st, const char *what, struct vault_err *e)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return vault_fail_sql(e, db->db, rc, what);
	return 0;
}

int vault_db_begin(struct vault_db *db, struct vault_err *e)
{
	if (exec_sql(db, db->depth ? "SAVEPOINT nest" : "BEGIN IMMEDIATE", "starting a transaction", e) < 0)
		return -1;
	db->depth++;
	return 0;
}

int vault_db_commit(struct vault_db *db, struct vault_err *e)
{
	if (db->depth > 1) {
		if (exec_sql(db, "RELEASE nest", "committing", e) < 0)
			return -1;
		db->depth--;
		return 0;
	}
	if (exec_sql(db, "COMMIT", "committing", e) < 0)
		return -1; /* still open: the caller rolls back */
	db->depth = 0;
	return 0;
}

void vault_db_rollback(struct vault_db *db)
{
	if (db->depth > 1) {
		sqlite3_exec(db->db, "ROLLBACK TO nest; RELEASE nest", NULL, NULL, NULL);
		db->depth--;
		return;
	}
	if (!sqlite3_get_autocommit(db->db))
		sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
	db->depth = 0;
}

int vault_db_scrub(struct vault_db *db, struct vault_err *e)
{
	int log = 0, done = 0;
	int rc = sqlite3_wal_checkpoint_v2(db->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
	if ((rc & 0xff) == SQLITE_BUSY)
		return 1;
	if (rc != SQLITE_OK)
		return vault_fail_sql(e, db->db, rc, "checkpointing the write-ahead log");
	return 0;
}

int64_t vault_generation(struct vault_db *db, struct vault_err *e)
{
	sqlite3_stmt *st = vault_db_stmt(db, "SELECT v FROM meta WHERE k = 'generation'", e);
	if (!st)
		return -1;
	int rc = sqlite3_step(st);
	int64_t g = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_reset(st);
	if (g < 0)
		vault_fail_sql(e, db->db, rc, "reading the generation counter");
	return g;
}

int vault_generation_bump(struct vault_db *db, struct vault_err *e)
{
	sqlite3_stmt *st = vault_db_stmt(db, "UPDATE meta SET v = v + 1 WHERE k = 'generation'", e);
	if (!st)
		return -1;
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return vault_fail_sql(e, db->db, rc, "bumping the generation counter");
	return 0;
}
