/* main.c - scopeholdfs: parse, check the store, the key, the fd limit and
 * the mountpoint, mount, serve, reload on SIGHUP, unwind on SIGTERM.
 * Refuses to start on any doubt about the key, the database or the
 * mountpoint. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "fs/fs.h"
#include "fs/log.h"
#include "vault/mountinfo.h"

/* Open files the daemon may hold: a base (the FUSE device, the audit
 * writer's store, the log pipe, libraries, stdio) plus, per worker, its
 * connection (database, -wal, -shm) and the /proc files and pidfd of the
 * request it serves. */
#define FDS_BASE 32
#define FDS_PER_WORKER 8

/* Open the database (migrating), load the key, start the audit writer. */
static int state_open(struct fs_state *fs)
{
	struct vault_err e = { 0 };
	struct vault_db *db = acl_db_open(fs->cfg.db, 0, &e);
	if (!db)
		goto fail;
	fs->key = vault_key_load(db, fs->cfg.key_file, &e);
	if (fs->key && vault_key_pending(db, &e) == 1)
		fprintf(stderr, "scopeholdfs: warning: a rekey of '%s' was interrupted; run: scopeholdctl rekey "
			"to finish it\n", fs->cfg.db);
	vault_db_close(db);
	if (!fs->key)
		goto fail;
	unsigned char ik[16];
	if (vault_key_derive(fs->key, 1, "inodes__", ik, sizeof ik) < 0) {
		vault_fail(&e, VAULT_ECRYPTO, "cannot derive the node id key");
		goto fail;
	}
	fs_ino_init(ik);
	sodium_memzero(ik, sizeof ik);
	char apath[PATH_MAX];
	db = audit_db_open(vault_config_audit_db(&fs->cfg, apath), 0, &e);
	if (!db)
		goto fail;
	vault_db_close(db);
	fs->audit = audit_writer_start(apath, fs->cfg.audit_sync, fs->cfg.audit_queue, &e);
	if (!fs->audit)
		goto fail;
	return 0;
fail:
	fs_log(LOG_ERR, "%s", e.msg);
	vault_key_free(fs->key);
	fs->key = NULL;
	return -1;
}

/* Labels divide one uid only where its processes cannot reach into each
 * other: say once which agents rely on labels that do not hold here. */
static void fs_warn_weak(struct fs_state *fs)
{
	struct vault_err e = { 0 };
	char names[1024];
	int scope = acl_ptrace_scope(fs->cfg.proc_root);
	struct vault_db *db = acl_db_open(fs->cfg.db, VAULT_DB_NOMIGRATE, &e);
	if (!db)
		return;
	int n = acl_weak_agents(db, scope, names, sizeof names, &e);
	vault_db_close(db);
	if (n > 0)
		fprintf(stderr, "scopeholdfs: warning: %s: the label bindings of %d agent(s) (%s) do not "
			"hold against other processes of the same uid, which can ptrace them, write their "
			"memory or run a bound binary with LD_PRELOAD; set kernel.yama.ptrace_scope=1 and "
			"bind exe agents with --require-secure-exec (README: threat model)\n",
			scope < 0 ? "no Yama ptrace_scope" : scope == 0 ? "Yama ptrace_scope is 0" :
			"exe bindings without --require-secure-exec", n, names);
}

static void state_close(struct fs_state *fs)
{
	audit_writer_stop(fs->audit);
	fs->audit = NULL;
	vault_key_free(fs->key);
	fs->key = NULL;
}

/* Raise the soft open-file limit to the hard one; refuse when even that is
 * below what max_threads workers need (each request would fail). */
static int fd_limit(int max_threads)
{
	struct rlimit rl;
	unsigned long need = FDS_BASE + (unsigned long)FDS_PER_WORKER * (unsigned long)max_threads;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit up = rl;
		if (up.rlim_max == RLIM_INFINITY)
			up.rlim_cur = 1 << 20;
		else
			up.rlim_cur = up.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl.rlim_cur = up.rlim_cur;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		fs_log(LOG_ERR, "the open-file limit is %llu, below the %lu that %d worker threads need; "
		       "raise it (ulimit -Hn, or LimitNOFILE= in the unit) or lower --max-threads",
		       (unsigned long long)rl.rlim_cur, need, max_threads);
		return -1;
	}
	return 0;
}

/* libfuse's loop ends its workers with pthread_cancel, and glibc loads
 * libgcc_s for that at the first cancel: at shutdown, when the fd limit may
 * be exhausted ("libgcc_s.so.1 must be installed for pthread_cancel to
 * work", abort, a dead mount). Load it now; glibc finds it loaded then. */
static void preload_unwinder(void)
{
	if (!dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NODELETE))
		fs_log(LOG_WARNING, "cannot load libgcc_s.so.1 (%s); a shutdown under a low fd limit may abort",
		       dlerror());
}

/* ---- the mountpoint ------------------------------------------------------ */

struct mount_find {
	const char *path;
	char *type;
	size_t tlen;
	int found;
};

static int mount_find_fn(void *arg, const char *mp, const char *fstype)
{
	struct mount_find *m = arg;
	if (!strcmp(mp, m->path)) {
		snprintf(m->type, m->tlen, "%s", fstype);
		m->found = 1;
	}
	return 0;
}

/* The filesystem type of the topmost mount at path (canonical) into type;
 * 1 when there is one, 0 when not. */
static int mount_at(const char *path, char *type, size_t tlen)
{
	struct mount_find m = { path, type, tlen, 0 };
	vault_mountinfo_each(mount_find_fn, &m);
	return m.found;
}

/* path made absolute without following its last component (which may be
 * a dead FUSE mount that no stat gets through). */
static int canon_path(const char *path, char *out)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof tmp)
		return -1;
	memcpy(tmp, path, n + 1);
	while (n > 1 && tmp[n - 1] == '/')
		tmp[--n] = 0;
	char *slash = strrchr(tmp, '/');
	const char *base = slash ? slash + 1 : tmp;
	if (slash == tmp)
		snprintf(dir, sizeof dir, "/");
	else if (slash) {
		*slash = 0;
		if (!realpath(tmp, dir))
			return -1;
	} else if (!realpath(".", dir))
		return -1;
	if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
		errno = EINVAL;
		return -1;
	}
	if (snprintf(out, PATH_MAX, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "", base) >= PATH_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* Refuse a mountpoint that is missing, not a directory, already served, or
 * not empty (unless nonempty); unmount a dead scopehold mount left by a
 * killed daemon. One line says why. */
static int check_mountpoint(const char *mp, int nonempty)
{
	char canon[PATH_MAX], type[64];
	struct stat st;
	if (canon_path(mp, canon) < 0) {
		if (errno == ENOENT)
			fs_log(LOG_ERR, "mountpoint '%s' does not exist (its parent is missing)", mp);
		else
			fs_log(LOG_ERR, "mountpoint '%s': %s", mp, strerror(errno));
		return -1;
	}
	for (int tries = 0; stat(canon, &st) < 0; tries++) {
		int err = errno;
		if (err == ENOENT) {
			fs_log(LOG_ERR, "mountpoint '%s' does not exist; create it: mkdir -p '%s'", mp, mp);
			return -1;
		}
		if (err != ENOTCONN && err != ECONNABORTED) {
			fs_log(LOG_ERR, "mountpoint '%s': %s", mp, strerror(err));
			return -1;
		}
		if (!mount_at(canon, type, sizeof type) || strcmp(type, VAULT_MOUNT_FSTYPE)) {
			fs_log(LOG_ERR, "mountpoint '%s' is a dead mount of '%s', not ScopeHold's; unmount it first: "
			       "fusermount3 -u '%s'", mp, mount_at(canon, type, sizeof type) ? type : "?", mp);
			return -1;
		}
		if (tries == 8 || umount2(canon, MNT_DETACH) < 0) {
			fs_log(LOG_ERR, "mountpoint '%s' holds a dead ScopeHold mount that cannot be unmounted: %s",
			       mp, tries == 8 ? "too many stacked" : strerror(errno));
			return -1;
		}
		fs_log(LOG_WARNING, "mountpoint '%s' held a dead ScopeHold mount (its daemon is gone); "
		       "unmounted it lazily", mp);
	}
	if (mount_at(canon, type, sizeof type) && !strcmp(type, VAULT_MOUNT_FSTYPE)) {
		fs_log(LOG_ERR, "mountpoint '%s' is already served by a running scopeholdfs (a live fuse.scopehold mount); "
		       "stop that one first", mp);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fs_log(LOG_ERR, "mountpoint '%s' is not a directory", mp);
		return -1;
	}
	DIR *d = opendir(canon);
	if (!d) {
		fs_log(LOG_ERR, "mountpoint '%s': %s", mp, strerror(errno));
		return -1;
	}
	struct dirent *de;
	char first[256] = "";
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			snprintf(first, sizeof first, "%s", de->d_name);
			break;
		}
	closedir(d);
	if (*first && !nonempty) {
		fs_log(LOG_ERR, "mountpoint '%s' is not empty (it holds '%s', which the mount would hide); "
		       "use an empty directory, or -o nonempty to mount over it anyway", mp, first);
		return -1;
	}
	return 0;
}

/* A relative path (PATH_MAX buffer) made absolute: the daemon runs in "/"
 * after it detaches, and reopens its stores there. */
static int absolute(char *path)
{
	char cwd[PATH_MAX], tmp[PATH_MAX];
	if (!path[0] || path[0] == '/')
		return 0;
	if (!getcwd(cwd, sizeof cwd) || snprintf(tmp, sizeof tmp, "%s/%s", cwd, path) >= (int)sizeof tmp)
		return -1;
	memcpy(path, tmp, strlen(tmp) + 1);
	return 0;
}

/* ---- SIGHUP: reload ------------------------------------------------------- */

struct reload {
	struct fs_state *fs;
	const struct fs_opts *opts;
	pthread_t th;
	int running;
	atomic_int stop;
};

#define CHANGED(field, name) \
	do { \
		if (strcmp(n.field, fs->cfg.field)) \
			len += snprintf(later + len, sizeof later - len, "%s%s", len ? ", " : "", name); \
	} while (0)

/* Read the config file again. A broken one is refused (file, line, key in
 * the message) and the running settings stay; of a good one the log level
 * applies now, and the settings that need a restart are named. */
static void reload_config(struct fs_state *fs, const struct fs_opts *o)
{
	struct vault_config n;
	struct vault_err e = { 0 };
	if (vault_config_load(&n, o->config, &e) < 0) {
		fs_log(LOG_ERR, "reload refused, the running configuration stays: %s", e.msg);
		return;
	}
	/* The command line still wins: its paths, made absolute at start. */
	if (o->db)
		memcpy(n.db, fs->cfg.db, sizeof n.db);
	if (o->key_file)
		memcpy(n.key_file, fs->cfg.key_file, sizeof n.key_file);
	if (absolute(n.db) < 0 || absolute(n.key_file) < 0 || absolute(n.audit_db) < 0) {
		fs_log(LOG_ERR, "reload refused, the running configuration stays: a path is too long");
		return;
	}
	if (vault_config_check(&n, &e) < 0) {
		fs_log(LOG_ERR, "reload refused, the running configuration stays: %s", e.msg);
		return;
	}
	char later[512] = "";
	int len = 0;
	CHANGED(db, "[vault] db");
	CHANGED(key_file, "[vault] key_file");
	CHANGED(audit_db, "[audit] db");
	CHANGED(mountpoint, "[fs] mountpoint");
	CHANGED(proc_root, "[identity] proc_root");
	if (n.audit_sync != fs->cfg.audit_sync || n.audit_queue != fs->cfg.audit_queue)
		len += snprintf(later + len, sizeof later - len, "%s[audit] sync/queue", len ? ", " : "");
	static const char *const lv[8] = { [LOG_ERR] = "error", [LOG_WARNING] = "warning",
					   [LOG_INFO] = "info", [LOG_DEBUG] = "debug" };
	/* Logged at the more verbose of the old and the new level. */
	int more = n.log_level > fs->cfg.log_level;
	if (more)
		fs_log_set_level(n.log_level);
	fs_log(LOG_INFO, "reloaded the configuration (log_level = %s)%s%s%s",
	       lv[n.log_level & 7] ? lv[n.log_level & 7] : "?",
	       len ? "; changed, applied at the next restart: " : "", later, "");
	if (!more)
		fs_log_set_level(n.log_level);
	fs->cfg.log_level = n.log_level; /* only the reload thread reads it */
	fs_warn_weak(fs); /* ptrace_scope may have changed, and the agents */
}

static void *reload_main(void *arg)
{
	struct reload *r = arg;
	sigset_t hup;
	sigemptyset(&hup);
	sigaddset(&hup, SIGHUP);
	for (;;) {
		int sig;
		if (sigwait(&hup, &sig) != 0)
			continue;
		if (atomic_load(&r->stop))
			break;
		reload_config(r->fs, r->opts);
	}
	return NULL;
}

/* Every thread created after this blocks SIGHUP; r's thread waits for it. */
static void block_hup(void)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
}

static int reload_start(struct reload *r, struct fs_state *fs, const struct fs_opts *o)
{
	r->fs = fs;
	r->opts = o;
	r->running = fs_thread_start(&r->th, reload_main, r) == 0;
	return r->running ? 0 : -1;
}

static void reload_stop(struct reload *r)
{
	if (!r->running)
		return;
	atomic_store(&r->stop, 1);
	pthread_kill(r->th, SIGHUP);
	pthread_join(r->th, NULL);
	r->running = 0;
}

/* SIGTERM and SIGINT end the loop (libfuse's handlers); SIGHUP reloads
 * (blocked in every thread, taken by the reload thread's sigwait); SIGUSR1,
 * SIGUSR2 and SIGPIPE are ignored. */
static int set_signals(struct fuse_session *se)
{
	if (fuse_set_signal_handlers(se) != 0)
		return -1;
	struct sigaction ign = { .sa_handler = SIG_IGN };
	sigaction(SIGUSR1, &ign, NULL);
	sigaction(SIGUSR2, &ign, NULL);
	sigaction(SIGPIPE, &ign, NULL);
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigaction(SIGHUP, &dfl, NULL); /* not SIG_IGN, which would discard it before sigwait */
	return 0;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fs_opts opts;
	struct fs_state fs;
	struct fuse_cmdline_opts cl;
	struct reload rl = { 0 };
	int ret = 1;

	memset(&fs, 0, sizeof fs);
	memset(&cl, 0, sizeof cl);
	memset(&opts, 0, sizeof opts);
	mallopt(M_ARENA_MAX, 2); /* one arena per worker thread would only add RSS */
	/* No core dumps, no ptrace by other users: this process holds keys. */
	struct rlimit no_core = { 0, 0 };
	setrlimit(RLIMIT_CORE, &no_core);
	prctl(PR_SET_DUMPABLE, 0);
	block_hup(); /* before any thread: a SIGHUP now waits for the reload thread */

	int rc = fs_conf(&args, &opts, &fs.cfg);
	if (rc != 0) {
		ret = rc > 0 ? 0 : 2;
		goto err_args;
	}
	fs_log_set_level(fs.cfg.log_level);
	if (absolute(fs.cfg.db) < 0 || absolute(fs.cfg.key_file) < 0 || absolute(fs.cfg.audit_db) < 0) {
		fs_log(LOG_ERR, "a store or key path is too long once made absolute");
		goto err_args;
	}
	if (opts.config && opts.config[0] != '/') { /* reloads run after chdir("/") */
		char *abs = realpath(opts.config, NULL);
		if (abs) {
			free(opts.config);
			opts.config = abs;
		}
	}
	if (geteuid() != 0) {
		fs_log(LOG_ERR, "must run as root (it reads callers' /proc entries and mounts with allow_other)");
		goto err_args;
	}
	if (sodium_init() < 0) {
		fs_log(LOG_ERR, "libsodium failed to initialise");
		goto err_args;
	}
	if (fd_limit(opts.max_threads) < 0)
		goto err_args;
	preload_unwinder();
	/* Check everything once before mounting so errors reach the terminal;
	 * the mountpoint before libfuse resolves it (which fails on a dead
	 * mount with a bare "bad mount point"). */
	if (check_mountpoint(opts.mountpoint ? opts.mountpoint : fs.cfg.mountpoint, opts.nonempty) < 0)
		goto err_args;
	if (fuse_parse_cmdline(&args, &cl) != 0)
		goto err_args;
	if (!cl.mountpoint && !(cl.mountpoint = strdup(fs.cfg.mountpoint)))
		goto err_args;
	if (state_open(&fs) < 0)
		goto err_args;
	if (!opts.foreground && !opts.debug)
		state_close(&fs); /* reopened after the fork: threads do not survive it */

	fuse_opt_add_arg(&args, "-o");
	fuse_opt_add_arg(&args, "ro,nodev,nosuid,noexec,allow_other,fsname=scopehold,subtype=scopehold");
	if (opts.debug)
		fuse_opt_add_arg(&args, "-d");
	if (pthread_key_create(&fs.tls, fs_tls_free) != 0)
		goto err_state;
	struct fuse_session *se = fuse_session_new(&args, &fs_ops, sizeof fs_ops, &fs);
	if (!se)
		goto err_key;
	fs.se = se;
	if (set_signals(se) != 0)
		goto err_session;
	if (fuse_session_mount(se, cl.mountpoint) != 0) {
		fs_log(LOG_ERR, "cannot mount on '%s'", cl.mountpoint);
		goto err_signals;
	}
	int background = !opts.foreground && !opts.debug;
	if (background && fuse_daemonize(0) != 0)
		goto err_mount;
	/* From here on fd 2 may be /dev/null: every line goes through the
	 * filter, to syslog in the background. */
	fs_log_start(background, !opts.debug);
	if (background && state_open(&fs) < 0)
		goto err_log;
	if (reload_start(&rl, &fs, &opts) < 0)
		fs_log(LOG_WARNING, "no reload thread: SIGHUP is ignored");
	fs_log(LOG_INFO, "serving '%s' from '%s' (audit sync=%s)", cl.mountpoint, fs.cfg.db,
	       fs.cfg.audit_sync == VAULT_SYNC_FULL ? "full" : "normal");
	if (strcmp(fs.cfg.proc_root, "/proc"))
		fs_log(LOG_WARNING, "callers are read from '%s', not /proc ([identity] proc_root is for tests)",
		       fs.cfg.proc_root);
	fs_warn_weak(&fs);
	fs_launch_start(&fs);

	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	if (!lc)
		goto err_reload;
	fuse_loop_cfg_set_clone_fd(lc, 0);
	fuse_loop_cfg_set_max_threads(lc, (unsigned)opts.max_threads);
	fuse_loop_cfg_set_idle_threads(lc, (unsigned)opts.max_threads);
	rc = fuse_session_loop_mt(se, lc);
	/* A signal that asks us to stop is a clean exit (systemd stop). */
	ret = !(rc == 0 || rc == SIGTERM || rc == SIGINT);
	fuse_loop_cfg_destroy(lc);
	fs_log(LOG_INFO, "unmounting '%s'", cl.mountpoint);
err_reload:
	reload_stop(&rl);
err_log:
	if (ret != 0 && background)
		fs_log(LOG_ERR, "stopped with an error; see the lines above");
err_mount:
	fs_launch_stop(&fs);
	fuse_session_unmount(se);
err_signals:
	fuse_remove_signal_handlers(se);
err_session:
	fuse_session_destroy(se);
err_key:
	fs_tls_free(pthread_getspecific(fs.tls));
	pthread_key_delete(fs.tls);
err_state:
	state_close(&fs);
	fs_log_stop();
err_args:
	fs_opts_free(&opts);
	free(cl.mountpoint);
	fuse_opt_free_args(&args);
	return ret;
}
