/* main.c - scopeholdfs: parse, check the store and key, mount, serve,
 * unwind. Refuses to start on any doubt about the key or database. */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <sodium.h>

#include "fs/fs.h"

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
	fprintf(stderr, "scopeholdfs: %s\n", e.msg);
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
			"hold against other processes of the same uid, which can ptrace them or write their "
			"memory; set kernel.yama.ptrace_scope=1, or bind them with --require-secure-exec "
			"(README: threat model)\n", scope < 0 ? "no Yama ptrace_scope" : "Yama ptrace_scope is 0",
			n, names);
}

static void state_close(struct fs_state *fs)
{
	audit_writer_stop(fs->audit);
	fs->audit = NULL;
	vault_key_free(fs->key);
	fs->key = NULL;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fs_opts opts;
	struct fs_state fs;
	struct fuse_cmdline_opts cl;
	int ret = 1;

	memset(&fs, 0, sizeof fs);
	memset(&cl, 0, sizeof cl);
	memset(&opts, 0, sizeof opts);
	mallopt(M_ARENA_MAX, 2); /* one arena per worker thread would only add RSS */
	/* No core dumps, no ptrace by other users: this process holds keys. */
	struct rlimit no_core = { 0, 0 };
	setrlimit(RLIMIT_CORE, &no_core);
	prctl(PR_SET_DUMPABLE, 0);

	int rc = fs_conf(&args, &opts, &fs.cfg);
	if (rc != 0) {
		ret = rc > 0 ? 0 : 2;
		goto err_args;
	}
	if (fuse_parse_cmdline(&args, &cl) != 0)
		goto err_args;
	if (!cl.mountpoint && !(cl.mountpoint = strdup(fs.cfg.mountpoint)))
		goto err_args;
	if (geteuid() != 0) {
		fprintf(stderr, "scopeholdfs: must run as root (it reads callers' /proc entries and mounts with allow_other)\n");
		goto err_args;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "scopeholdfs: libsodium failed to initialise\n");
		goto err_args;
	}
	/* Check everything once before mounting so errors reach the terminal. */
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
	if (fuse_set_signal_handlers(se) != 0)
		goto err_session;
	if (fuse_session_mount(se, cl.mountpoint) != 0) {
		fprintf(stderr, "scopeholdfs: cannot mount on '%s'\n", cl.mountpoint);
		goto err_signals;
	}
	if (!opts.foreground && !opts.debug) {
		if (fuse_daemonize(0) != 0 || state_open(&fs) < 0)
			goto err_mount;
	}
	fprintf(stderr, "scopeholdfs: serving '%s' from '%s' (audit sync=%s)\n", cl.mountpoint, fs.cfg.db,
		fs.cfg.audit_sync == VAULT_SYNC_FULL ? "full" : "normal");
	if (strcmp(fs.cfg.proc_root, "/proc"))
		fprintf(stderr, "scopeholdfs: warning: callers are read from '%s', not /proc ([identity] proc_root is for tests)\n",
			fs.cfg.proc_root);
	fs_warn_weak(&fs);
	fs_launch_start(&fs);

	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	if (!lc)
		goto err_mount;
	fuse_loop_cfg_set_clone_fd(lc, 0);
	fuse_loop_cfg_set_max_threads(lc, (unsigned)opts.max_threads);
	fuse_loop_cfg_set_idle_threads(lc, (unsigned)opts.max_threads);
	rc = fuse_session_loop_mt(se, lc);
	/* A signal that asks us to stop is a clean exit (systemd stop). */
	ret = !(rc == 0 || rc == SIGTERM || rc == SIGINT || rc == SIGHUP);
	fuse_loop_cfg_destroy(lc);
	fprintf(stderr, "scopeholdfs: unmounting '%s'\n", cl.mountpoint);
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
err_args:
	fs_opts_free(&opts);
	free(cl.mountpoint);
	fuse_opt_free_args(&args);
	return ret;
}
