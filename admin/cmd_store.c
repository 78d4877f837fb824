/* cmd_store.c - scopeholdctl init, provider, secret and rekey: the verbs of
 * the vault. A value enters only through stdin or --from-file, into locked
 * memory that is wiped on every path. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "admin/ctl.h"

/* What init made, removed again when it fails half-way. */
struct made {
	char dirs[16][PATH_MAX];
	int ndirs;
};

/* mkdir -p of path's parent directory, mode 0700 for what it creates
 * (recorded in m). */
static int make_parent(const char *path, struct made *m)
{
	char dir[PATH_MAX];
	if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
		return ctl_fail("path '%s' is too long", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	for (char *p = dir + 1; ; p++) {
		if (*p == '/' || !*p) {
			char saved = *p;
			*p = 0;
			if (mkdir(dir, 0700) == 0 && m->ndirs < 16)
				snprintf(m->dirs[m->ndirs++], PATH_MAX, "%s", dir);
			else if (errno != EEXIST)
				return ctl_fail("cannot create directory '%s': %s", dir, strerror(errno));
			*p = saved;
			if (!saved)
				break;
		}
	}
	return 0;
}

/* Remove a store init created: the file, its -wal, -shm and -journal. */
static void remove_store(const char *path)
{
	static const char *const suffix[] = { "", "-wal", "-shm", "-journal" };
	for (size_t i = 0; i < sizeof suffix / sizeof *suffix; i++) {
		char p[PATH_MAX + 16];
		snprintf(p, sizeof p, "%s%s", path, suffix[i]);
		unlink(p);
	}
}

static const char init_usage[] =
	"usage: scopeholdctl [--db PATH] [--key-file PATH] init\n\n"
	"Create the database (mode 0600), its audit store, a master key file (32 random\n"
	"bytes, mode 0400) and a data key wrapped by it. Refuses to overwrite any; one\n"
	"that fails half-way leaves nothing behind.\n";

int ctl_init(struct ctl *c, int argc, char **argv)
{
	if (ctl_wants_help(argc, argv))
		return ctl_help(init_usage);
	if (argc != 1)
		return ctl_usage("init", "takes no arguments");
	struct vault_err e = { 0 };
	const char *key = c->cfg.key_file[0] ? c->cfg.key_file : VAULT_DEFAULT_KEY;
	char apath[PATH_MAX];
	vault_config_audit_db(&c->cfg, apath);
	struct stat st;
	if (lstat(key, &st) == 0)
		return ctl_fail("key file '%s' already exists; refusing to overwrite it", key);
	int db_existed = lstat(c->cfg.db, &st) == 0, audit_existed = lstat(apath, &st) == 0;
	struct made m = { .ndirs = 0 };
	int rc = 1, key_made = 0, row_made = 0;
	struct audit_row r;
	if (make_parent(c->cfg.db, &m) || make_parent(apath, &m) || make_parent(key, &m))
		goto undo;
	c->db = acl_db_open(c->cfg.db, VAULT_DB_CREATE, &e);
	if (!c->db) {
		rc = ctl_verr(&e);
		goto undo;
	}
	c->creating = 1;
	if (!ctl_audit_db(c))
		goto undo;
	/* The audit row commits first; then the key file and the data key
	 * (one transaction). */
	ctl_admin_row(&r, "init", NULL);
	if (vault_db_begin(c->db, &e) < 0 || audit_append(c->adb, &r, 1, &e) < 0) {
		rc = ctl_verr(&e);
		goto undo;
	}
	row_made = 1;
	if (vault_key_init(c->db, key, &e) < 0) {
		rc = ctl_verr(&e);
		goto undo;
	}
	key_made = 1;
	if (vault_db_commit(c->db, &e) < 0) {
		rc = ctl_verr(&e);
		goto undo;
	}
	if (c->json) {
		ctl_json_ok("init", c->cfg.db, "\"audit_db\":\"%s\",\"key_file\":\"%s\"", apath, key);
		return 0;
	}
	printf("created database %s\ncreated audit store %s\ncreated master key %s (keep it apart from backups of the database)\n",
	       c->cfg.db, apath, key);
	return 0;
undo:
	if (row_made && audit_existed) { /* the trail goes on: say it failed */
		struct vault_err e2 = { 0 };
		r.result = "failed";
		r.reason = "init did not complete";
		audit_append(c->adb, &r, 1, &e2);
	}
	if (c->db)
		vault_db_rollback(c->db);
	vault_db_close(c->db);
	vault_db_close(c->adb);
	c->db = c->adb = NULL;
	if (key_made)
		unlink(key);
	if (!db_existed)
		remove_store(c->cfg.db);
	if (!audit_existed)
		remove_store(apath);
	while (m.ndirs > 0)
		rmdir(m.dirs[--m.ndirs]);
	return rc;
}

static const char provider_usage[] =
	"usage: scopeholdctl provider add NAME\n"
	"       scopeholdctl provider rm NAME\n"
	"       scopeholdctl provider list [--json]\n\n"
	"A provider is the namespace of an external system (stripe, github, openai): the\n"
	"first level of the mounted view. rm refuses while it has secrets.\n";

int ctl_provider(struct ctl *c, int argc, char **argv)
{
	struct vault_err e = { 0 };
	if (ctl_wants_help(argc, argv))
		return ctl_help(provider_usage);
	if (argc == 2 && !strcmp(argv[1], "list")) {
		if (!ctl_db(c))
			return 1;
		sqlite3_stmt *st = vault_db_stmt(c->db, "SELECT p.name, (SELECT count(*) FROM secrets s"
						       " WHERE s.provider_id = p.id) FROM providers p ORDER BY p.name", &e);
		if (!st)
			return ctl_verr(&e);
		if (c->json)
			fputs("[", stdout);
		else
			printf("%-32s %s\n", "PROVIDER", "SECRETS");
		int first = 1, rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			const char *name = (const char *)sqlite3_column_text(st, 0);
			if (c->json) {
				printf("%s{\"name\":", first ? "" : ",");
				ctl_json_str(stdout, name);
				printf(",\"secrets\":%lld}", (long long)sqlite3_column_int64(st, 1));
			} else {
				printf("%-32s %lld\n", name, (long long)sqlite3_column_int64(st, 1));
			}
			first = 0;
		}
		sqlite3_reset(st);
		if (c->json)
			puts("]");
		if (rc != SQLITE_DONE)
			return ctl_fail("listing providers failed");
		return 0;
	}
	if (argc != 3 || (strcmp(argv[1], "add") && strcmp(argv[1], "rm")))
		return ctl_usage("provider", "expected: add NAME, rm NAME or list");
	int add = !strcmp(argv[1], "add");
	if (ctl_begin(c))
		return 1;
	int rc = add ? vault_provider_add(c->db, argv[2], &e) : vault_provider_rm(c->db, argv[2], &e);
	rc = ctl_end(c, rc, &e, add ? "provider.add" : "provider.rm", argv[2]);
	if (!rc && c->json)
		ctl_json_ok(add ? "provider.add" : "provider.rm", argv[2], NULL);
	else if (!rc)
		printf("%s provider %s\n", add ? "added" : "removed", argv[2]);
	return rc;
}

static const char secret_usage[] =
	"usage: scopeholdctl secret put P/K [--from-file FILE] [--trim-newline]\n"
	"       scopeholdctl secret list [--provider P] [--json]\n"
	"       scopeholdctl secret versions P/K [--json]\n"
	"       scopeholdctl secret rollback P/K VERSION\n"
	"       scopeholdctl secret rm P/K [--yes]\n"
	"       scopeholdctl secret assign P/K PROJECT\n"
	"       scopeholdctl secret unassign P/K PROJECT\n"
	"       scopeholdctl secret import --from-dir DIR [--assign PROJECT] [--create-providers]\n\n"
	"put stores a new secret, or a new version of it, read from stdin (or FILE),\n"
	"byte for byte (--trim-newline drops one trailing newline). Values are 1 byte\n"
	"to 1 MiB and never given on the command line. The provider must exist.\n"
	"Open files keep the version they opened; the next open reads the new one.\n"
	"Each put keeps the newest [vault] keep_versions versions (default 5) and\n"
	"destroys older ones in the same transaction (their bytes overwritten).\n"
	"versions lists the kept ones (time, admin uid, length, which is current).\n"
	"rollback makes a kept VERSION current again (a pointer: no new version is\n"
	"written; the next put is numbered above the highest).\n"
	"rm destroys every version, grant and assignment of the secret; it asks for\n"
	"--yes when there is more than one version, a grant or an assignment.\n"
	"assign makes a secret relevant to a project; an agent of that project still\n"
	"needs a grant to read it.\n"
	"import stores every DIR/PROVIDER/KEY file as a new version of PROVIDER/KEY in\n"
	"one transaction (all or nothing), optionally assigning each to PROJECT.\n";

/* Read the value from fd into locked memory: at most VAULT_VALUE_MAX bytes.
 * Returns the length, or -1 after printing why (buffer freed). */
static ssize_t read_value(int fd, const char *from, uint8_t **out)
{
	size_t cap = VAULT_VALUE_MAX + 1, len = 0;
	uint8_t *buf = sodium_malloc(cap);
	if (!buf)
		return ctl_fail("out of locked memory for the value"), -1;
	struct termios old, quiet;
	int tty = isatty(fd) && tcgetattr(fd, &old) == 0;
	if (tty) {
		fprintf(stderr, "value (input hidden, end with Enter): ");
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(fd, TCSAFLUSH, &quiet);
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;
			if (tty)
				tcsetattr(fd, TCSAFLUSH, &old);
			sodium_free(buf);
			return ctl_fail("cannot read the value from %s: %s", from, strerror(err)), -1;
		}
		len += (size_t)n;
		if (n == 0 || len == cap || (tty && len && buf[len - 1] == '\n'))
			break;
	}
	if (tty) {
		tcsetattr(fd, TCSAFLUSH, &old);
		fputc('\n', stderr);
		if (len && buf[len - 1] == '\n')
			len--;
	}
	if (len > VAULT_VALUE_MAX) {
		sodium_free(buf);
		return ctl_fail("value from %s is larger than the limit of %d bytes (1 MiB); nothing stored",
				from, VAULT_VALUE_MAX), -1;
	}
	*out = buf;
	return (ssize_t)len;
}

static int secret_put(struct ctl *c, int argc, char **argv)
{
	const char *pk = NULL, *file = NULL;
	int trim = 0;
	for (int i = 1; i < argc; i++) {
		int r = ctl_opt("secret put", argc, argv, &i, "--from-file", &file);
		if (r < 0)
			return 2;
		if (r)
			continue;
		if (!strcmp(argv[i], "--trim-newline"))
			trim = 1;
		else if (!strcmp(argv[i], "--value") || !strncmp(argv[i], "--value=", 8))
			return ctl_usage("secret put", "values are never taken on the command line; pipe them to stdin or use --from-file");
		else if (argv[i][0] == '-')
			return ctl_usage("secret put", "unknown option '%s'", argv[i]);
		else if (pk)
			return ctl_usage("secret put", "one P/K only; the value comes from stdin or --from-file");
		else
			pk = argv[i];
	}
	if (!pk)
		return ctl_usage("secret put", "missing P/K");
	char provider[VAULT_NAME_MAX + 1], key[VAULT_NAME_MAX + 1];
	struct vault_err e = { 0 };
	if (vault_path_split(pk, provider, key, &e) < 0)
		return ctl_verr(&e);
	struct vault_key *k = ctl_key(c);
	if (!k)
		return 1;
	int fd = 0;
	if (file && (fd = open(file, O_RDONLY | O_CLOEXEC)) < 0)
		return ctl_fail("cannot open '%s': %s", file, strerror(errno));
	uint8_t *val = NULL;
	ssize_t len = read_value(fd, file ? file : "stdin", &val);
	if (file)
		close(fd);
	if (len < 0)
		return 1;
	if (trim && len && val[len - 1] == '\n')
		len--;
	if (len == 0) {
		sodium_free(val);
		return ctl_fail("value for '%s' is empty; nothing stored", pk);
	}
	int64_t version = 0;
	int rc = ctl_begin(c);
	if (rc == 0) {
		rc = vault_secret_put(c->db, k, provider, key, val, (size_t)len, 0, &version, &e);
		char path[2 * VAULT_NAME_MAX + 2];
		snprintf(path, sizeof path, "%s/%s", provider, key);
		rc = ctl_end(c, rc, &e, "secret.put", path);
	}
	sodium_free(val);
	/* beyond keep_versions the put destroyed the oldest version: its
	 * ciphertext leaves the WAL too */
	if (!rc && version > c->cfg.keep_versions)
		ctl_scrub(c);
	if (!rc && !c->json)
		printf("stored %s/%s version %lld (%zd bytes)\n", provider, key, (long long)version, len);
	else if (!rc)
		printf("{\"ok\":true,\"action\":\"secret.put\",\"secret\":\"%s/%s\",\"version\":%lld,\"bytes\":%zd}\n",
		       provider, key, (long long)version, len);
	return rc;
}

static int secret_list(struct ctl *c, int argc, char **argv)
{
	const char *prov = NULL;
	for (int i = 1; i < argc; i++) {
		int r = ctl_opt("secret list", argc, argv, &i, "--provider", &prov);
		if (r < 0)
			return 2;
		if (!r)
			return ctl_usage("secret list", "unexpected argument '%s'", argv[i]);
	}
	struct vault_err e = { 0 };
	if (!ctl_db(c))
		return 1;
	sqlite3_stmt *st = vault_db_stmt(c->db,
		"SELECT p.name, s.key, s.version, s.len, s.created_ns,"
		" (SELECT group_concat(name, ',') FROM (SELECT j.name FROM assignments a"
		"   JOIN projects j ON j.id = a.project_id WHERE a.secret_id = s.id ORDER BY j.name)),"
		" (SELECT max(created_ns) FROM secret_versions v WHERE v.secret_id = s.id)"
		" FROM secrets s JOIN providers p ON p.id = s.provider_id"
		" WHERE ?1 IS NULL OR p.name = ?1 ORDER BY p.name, s.key", &e);
	if (!st)
		return ctl_verr(&e);
	if (prov)
		sqlite3_bind_text(st, 1, prov, -1, SQLITE_STATIC);
	if (c->json)
		fputs("[", stdout);
	else
		printf("%-40s %7s %8s  %-24s %s\n", "SECRET", "VERSION", "BYTES", "UPDATED", "PROJECTS");
	int rc, first = 1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char name[2 * VAULT_NAME_MAX + 2], when[40];
		snprintf(name, sizeof name, "%s/%s", sqlite3_column_text(st, 0), sqlite3_column_text(st, 1));
		ctl_format_time(sqlite3_column_int64(st, 6), when, sizeof when);
		const char *projects = (const char *)sqlite3_column_text(st, 5);
		if (c->json) {
			printf("%s{\"secret\":", first ? "" : ",");
			ctl_json_str(stdout, name);
			printf(",\"version\":%lld,\"bytes\":%lld,\"updated\":\"%s\",\"projects\":",
			       (long long)sqlite3_column_int64(st, 2), (long long)sqlite3_column_int64(st, 3), when);
			ctl_json_str(stdout, projects ? projects : "");
			fputs("}", stdout);
		} else {
			printf("%-40s %7lld %8lld  %-24s %s\n", name, (long long)sqlite3_column_int64(st, 2),
			       (long long)sqlite3_column_int64(st, 3), when, projects ? projects : "-");
		}
		first = 0;
	}
	sqlite3_reset(st);
	if (c->json)
		puts("]");
	return rc == SQLITE_DONE ? 0 : ctl_fail("listing secrets failed");
}

static int secret_versions(struct ctl *c, const char *pk)
{
	char provider[VAULT_NAME_MAX + 1], key[VAULT_NAME_MAX + 1];
	struct vault_err e = { 0 };
	struct vault_secret s;
	if (vault_path_split(pk, provider, key, &e) < 0 || !ctl_db(c))
		return e.msg[0] ? ctl_verr(&e) : 1;
	int found = vault_secret_find(c->db, provider, key, &s, &e);
	if (found <= 0)
		return found < 0 ? ctl_verr(&e) : ctl_fail("secret '%s' does not exist", pk);
	sqlite3_stmt *st = vault_db_stmt(c->db, "SELECT version, len, created_ns, created_uid FROM secret_versions"
					       " WHERE secret_id = ? ORDER BY version", &e);
	if (!st)
		return ctl_verr(&e);
	sqlite3_bind_int64(st, 1, s.id);
	if (c->json)
		fputs("[", stdout);
	else
		printf("%7s %8s  %-24s %7s\n", "VERSION", "BYTES", "CREATED", "UID");
	int rc, first = 1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char when[40];
		int64_t v = sqlite3_column_int64(st, 0);
		ctl_format_time(sqlite3_column_int64(st, 2), when, sizeof when);
		char uid[24] = "null";
		if (sqlite3_column_type(st, 3) != SQLITE_NULL) /* versions stored before it was recorded: null */
			snprintf(uid, sizeof uid, "%lld", (long long)sqlite3_column_int64(st, 3));
		if (c->json)
			printf("%s{\"version\":%lld,\"bytes\":%lld,\"created\":\"%s\",\"uid\":%s,\"current\":%s}",
			       first ? "" : ",", (long long)v, (long long)sqlite3_column_int64(st, 1), when, uid,
			       v == s.version ? "true" : "false");
		else
			printf("%7lld %8lld  %-24s %7s%s\n", (long long)v, (long long)sqlite3_column_int64(st, 1), when,
			       strcmp(uid, "null") ? uid : "-", v == s.version ? " current" : "");
		first = 0;
	}
	sqlite3_reset(st);
	if (c->json)
		puts("]");
	return rc == SQLITE_DONE ? 0 : ctl_fail("listing versions failed");
}

/* Read name in the directory dfd (a regular file, not a link) into buf
 * (VAULT_VALUE_MAX + 1 bytes of locked memory, reused for every file); path
 * names it in messages only: opened relative to the directory already
 * checked, a swapped directory or link is never followed. */
static ssize_t read_value_file(int dfd, const char *name, const char *path, uint8_t *buf)
{
	/* O_NONBLOCK: a FIFO must not hang the import (it is refused below) */
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return ctl_fail("cannot open '%s': %s", path, errno == ELOOP ? "a symbolic link" : strerror(errno)), -1;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return ctl_fail("'%s' is not a regular file; nothing imported", path), -1;
	}
	size_t len = 0;
	ssize_t r;
	while (len <= VAULT_VALUE_MAX && (r = read(fd, buf + len, VAULT_VALUE_MAX + 1 - len)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int err = errno;
			close(fd);
			return ctl_fail("cannot read '%s': %s", path, strerror(err)), -1;
		}
		len += (size_t)r;
	}
	close(fd);
	if (len == 0)
		return ctl_fail("'%s' is empty; nothing imported", path), -1;
	if (len > VAULT_VALUE_MAX)
		return ctl_fail("'%s' is larger than the limit of %d bytes (1 MiB); nothing imported",
				path, VAULT_VALUE_MAX), -1;
	return (ssize_t)len;
}

#define IMPORT_MAX 1000000

/* One admin row of an import: its event and what it names. */
struct imp_row {
	const char *event;
	char path[3 * VAULT_NAME_MAX + 8];
};

static int imp_add(struct audit_row **rows, struct imp_row **paths, size_t *n, size_t *cap,
		   const char *event, const char *what)
{
	if (*n == *cap) {
		size_t nc = *cap ? 2 * *cap : 256;
		struct audit_row *nr = realloc(*rows, nc * sizeof **rows);
		if (!nr)
			return -1;
		*rows = nr;
		struct imp_row *np = realloc(*paths, nc * sizeof **paths);
		if (!np)
			return -1;
		*paths = np;
		*cap = nc;
	}
	(*paths)[*n].event = event;
	snprintf((*paths)[*n].path, sizeof (*paths)[*n].path, "%s", what);
	(*n)++;
	return 0;
}

static int secret_import(struct ctl *c, int argc, char **argv)
{
	const char *dir = NULL, *project = NULL;
	int create = 0;
	for (int i = 1; i < argc; i++) {
		int r;
		if ((r = ctl_opt("secret import", argc, argv, &i, "--from-dir", &dir)) ||
		    (r = ctl_opt("secret import", argc, argv, &i, "--assign", &project))) {
			if (r < 0)
				return 2;
		} else if (!strcmp(argv[i], "--create-providers")) {
			create = 1;
		} else {
			return ctl_usage("secret", "import: unexpected argument '%s'", argv[i]);
		}
	}
	if (!dir)
		return ctl_usage("secret", "import needs --from-dir DIR");
	struct vault_err e = { 0 };
	struct vault_key *k = ctl_key(c);
	if (!k || !ctl_audit_db(c))
		return 1;
	if (project && acl_project_id(c->db, project, &e) <= 0)
		return e.msg[0] ? ctl_verr(&e) : ctl_fail("project '%s' does not exist", project);
	int tfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
	DIR *top = tfd >= 0 ? fdopendir(tfd) : NULL;
	if (!top) {
		int err = errno;
		if (tfd >= 0)
			close(tfd);
		return ctl_fail("cannot read directory '%s': %s", dir, strerror(err));
	}
	uint8_t *val = sodium_malloc(VAULT_VALUE_MAX + 1);
	if (!val) {
		closedir(top);
		return ctl_fail("out of locked memory for values");
	}
	struct audit_row *rows = NULL;
	struct imp_row *paths = NULL;
	size_t n = 0, cap = 0, nsec = 0; /* audit rows; secrets stored */
	int rc = ctl_begin(c);
	struct dirent *pd;
	while (rc == 0 && (pd = readdir(top))) {
		if (pd->d_name[0] == '.')
			continue;
		char pdir[PATH_MAX];
		snprintf(pdir, sizeof pdir, "%s/%s", dir, pd->d_name);
		if (vault_name_check("provider", pd->d_name, &e) < 0) {
			rc = ctl_fail("'%s': %s", pdir, e.msg);
			break;
		}
		/* Everything below is opened relative to this descriptor. */
		int pfd = openat(tfd, pd->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		DIR *sub = pfd >= 0 ? fdopendir(pfd) : NULL;
		if (!sub) {
			int err = errno;
			struct stat lst;
			rc = ctl_fail("cannot read directory '%s': %s", pdir,
				      fstatat(tfd, pd->d_name, &lst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(lst.st_mode)
				      ? "a symbolic link" : strerror(err));
			if (pfd >= 0)
				close(pfd);
			break;
		}
		if (vault_provider_id(c->db, pd->d_name, &e) == 0) {
			if (!create) {
				rc = ctl_fail("provider '%s' does not exist (add it, or pass --create-providers); nothing imported",
					      pd->d_name);
			} else if (vault_provider_add(c->db, pd->d_name, &e) < 0) {
				rc = ctl_verr(&e);
			} else if (imp_add(&rows, &paths, &n, &cap, "provider.add", pd->d_name) < 0) {
				rc = ctl_fail("out of memory");
			}
		}
		struct dirent *kd;
		while (rc == 0 && (kd = readdir(sub))) {
			if (!strcmp(kd->d_name, ".") || !strcmp(kd->d_name, ".."))
				continue;
			char fpath[PATH_MAX];
			snprintf(fpath, sizeof fpath, "%s/%s", pdir, kd->d_name);
			if (vault_name_check("key", kd->d_name, &e) < 0) {
				rc = ctl_fail("'%s': %s", fpath, e.msg);
				break;
			}
			if (nsec == IMPORT_MAX) {
				rc = ctl_fail("more than %d files under '%s'", IMPORT_MAX, dir);
				break;
			}
			ssize_t len = read_value_file(pfd, kd->d_name, fpath, val);
			if (len < 0) {
				rc = 1;
				break;
			}
			int64_t version;
			int r = vault_secret_put(c->db, k, pd->d_name, kd->d_name, val, (size_t)len, 0, &version, &e);
			sodium_memzero(val, (size_t)len);
			char what[3 * VAULT_NAME_MAX + 8];
			snprintf(what, sizeof what, "%s/%s", pd->d_name, kd->d_name);
			if (r == 0 && imp_add(&rows, &paths, &n, &cap, "secret.put", what) < 0)
				r = vault_fail(&e, VAULT_ENOMEM, "out of memory");
			nsec++;
			if (r == 0 && project) {
				snprintf(what, sizeof what, "%s/%s -> %s", pd->d_name, kd->d_name, project);
				if (acl_assign(c->db, pd->d_name, kd->d_name, project, 1, &e) == 0) {
					if (imp_add(&rows, &paths, &n, &cap, "secret.assign", what) < 0)
						r = vault_fail(&e, VAULT_ENOMEM, "out of memory");
				} else if (e.code != VAULT_EEXIST) {
					r = -1;
				}
			}
			if (r < 0) {
				rc = ctl_verr(&e);
				break;
			}
		}
		closedir(sub);
	}
	closedir(top);
	sodium_free(val);
	if (rc == 0) {
		for (size_t i = 0; i < n; i++)
			ctl_admin_row(&rows[i], paths[i].event, paths[i].path);
		/* The rows first, in one transaction; then the change. */
		if (n && audit_append(c->adb, rows, n, &e) < 0) {
			rc = ctl_verr(&e);
		} else if (vault_db_commit(c->db, &e) < 0) {
			rc = ctl_verr(&e);
			struct vault_err e2 = { 0 };
			struct audit_row r;
			ctl_admin_row(&r, "secret.import", dir);
			r.result = "failed";
			r.reason = "the import did not commit";
			audit_append(c->adb, &r, 1, &e2);
		}
	}
	if (rc != 0)
		vault_db_rollback(c->db);
	else if (c->json)
		printf("{\"imported\":%zu}\n", nsec);
	else
		printf("imported %zu secret%s from %s%s%s\n", nsec, nsec == 1 ? "" : "s", dir,
		       project ? ", assigned to " : "", project ? project : "");
	free(rows);
	free(paths);
	return rc;
}

int ctl_secret(struct ctl *c, int argc, char **argv)
{
	if (ctl_wants_help(argc, argv))
		return ctl_help(secret_usage);
	if (argc < 2)
		return ctl_usage("secret", "expected put, list, versions, rollback, rm, assign or unassign");
	const char *v = argv[1];
	if (!strcmp(v, "put"))
		return secret_put(c, argc - 1, argv + 1);
	if (!strcmp(v, "list"))
		return secret_list(c, argc - 1, argv + 1);
	if (!strcmp(v, "import"))
		return secret_import(c, argc - 1, argv + 1);
	if (!strcmp(v, "versions")) {
		if (argc != 3)
			return ctl_usage("secret", "versions takes one P/K");
		return secret_versions(c, argv[2]);
	}
	if (!strcmp(v, "rm"))
		return ctl_secret_rm(c, argc - 1, argv + 1);
	if (!strcmp(v, "rollback"))
		return ctl_secret_rollback(c, argc - 1, argv + 1);
	char provider[VAULT_NAME_MAX + 1], key[VAULT_NAME_MAX + 1];
	struct vault_err e = { 0 };
	if (!strcmp(v, "assign") || !strcmp(v, "unassign")) {
		int on = !strcmp(v, "assign");
		if (argc != 4)
			return ctl_usage("secret", "%s takes P/K PROJECT", v);
		if (vault_path_split(argv[2], provider, key, &e) < 0)
			return ctl_verr(&e);
		if (ctl_begin(c))
			return 1;
		char what[3 * VAULT_NAME_MAX + 8];
		snprintf(what, sizeof what, "%s -> %s", argv[2], argv[3]);
		int rc = ctl_end(c, acl_assign(c->db, provider, key, argv[3], on, &e), &e,
				 on ? "secret.assign" : "secret.unassign", what);
		if (!rc && c->json)
			ctl_json_ok(on ? "secret.assign" : "secret.unassign", what, NULL);
		else if (!rc)
			printf("%s %s %s project %s\n", on ? "assigned" : "unassigned", argv[2], on ? "to" : "from", argv[3]);
		return rc;
	}
	return ctl_usage("secret", "unknown action '%s'", v);
}

static const char rekey_usage[] =
	"usage: scopeholdctl rekey [--data-key]\n\n"
	"Create a new master key and rewrap the data key with it. The previous key file\n"
	"is kept as KEY.retired-YYYYmmddTHHMMSSZ (mode 0400; never overwritten): backups\n"
	"of the database taken before the rekey need it. Values are not re-encrypted; a\n"
	"running scopeholdfs keeps working. Killed at any step, KEY still opens the\n"
	"vault, and running rekey again finishes what was stopped.\n\n"
	"--data-key first re-encrypts every kept version under a new data key (one\n"
	"transaction), for a leaked copy of the database with an old master key.\n"
	"Restart scopeholdfs afterwards: until then it holds the old data key.\n";

/* The audit row of a rekey, committed before its change. */
struct rekey_rec {
	struct ctl *c;
	const char *event;
};

static int rekey_record(void *arg, const char *reason, struct vault_err *e)
{
	struct rekey_rec *rr = arg;
	struct audit_row r;
	ctl_admin_row(&r, rr->event, NULL);
	r.reason = reason;
	return audit_append(rr->c->adb, &r, 1, e);
}

int ctl_rekey(struct ctl *c, int argc, char **argv)
{
	if (ctl_wants_help(argc, argv))
		return ctl_help(rekey_usage);
	int data = argc == 2 && !strcmp(argv[1], "--data-key");
	if (argc != 1 && !data)
		return ctl_usage("rekey", "unexpected argument '%s'", argv[1]);
	struct vault_err e = { 0 };
	c->rekeying = 1;
	if (!ctl_db(c) || !ctl_audit_db(c))
		return 1;
	const char *key = c->cfg.key_file[0] ? c->cfg.key_file : NULL;
	int64_t n = 0;
	struct rekey_rec dr = { c, "rekey.data-key" }, mr = { c, "rekey" };
	if (data && vault_key_rekey_data(c->db, key, rekey_record, &dr, &n, &e) < 0)
		return ctl_verr(&e);
	if (data && !c->json)
		printf("re-encrypted %lld version%s under a new data key; restart scopeholdfs, it holds the old one\n",
		       (long long)n, n == 1 ? "" : "s");
	struct vault_rekey rk = { .record = rekey_record, .arg = &mr };
	if (vault_key_rekey(c->db, key, &rk, &e) < 0)
		return ctl_verr(&e);
	if (c->json) {
		printf("{\"ok\":true,\"action\":\"rekey\",\"data_key\":%s,\"versions\":%lld,\"resumed\":%s,\"retired\":",
		       data ? "true" : "false", (long long)n, rk.resumed ? "true" : "false");
		ctl_json_str(stdout, rk.retired);
		puts("}");
	} else {
		printf("%s; the previous one is kept as %s: backups of the database taken before now need it\n",
		       rk.resumed ? "finished an interrupted rekey: master key replaced" : "master key replaced",
		       rk.retired);
	}
	return 0;
}
