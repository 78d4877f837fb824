/* conf.c - scopeholdfs's command line (fuse_opt_parse with an offsetof
 * table) and config file; the command line overrides the file. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/fs.h"
#include "fs/launch_proto.h"

#define OPT(t, p) { t, offsetof(struct fs_opts, p), 1 }
static const struct fuse_opt fs_optspec[] = {
	{ "-c %s", offsetof(struct fs_opts, config), 0 },
	OPT("--config=%s", config),
	OPT("--db=%s", db),
	OPT("--key-file=%s", key_file),
	OPT("--launch-socket=%s", launch_socket),
	OPT("--launch-cgroup=%s", launch_cgroup),
	OPT("--max-threads=%d", max_threads),
	OPT("-f", foreground),
	OPT("nonempty", nonempty),
	OPT("-d", debug),
	OPT("-h", show_help),
	OPT("--help", show_help),
	OPT("-V", show_version),
	OPT("--version", show_version),
	FUSE_OPT_END
};

static const char usage[] =
"usage: scopeholdfs [-c CONFIG] [--db=PATH] [--key-file=PATH] [--launch-socket=PATH]\n"
"                   [--launch-cgroup=PATH] [-f] [-o FUSE-OPTIONS] [MOUNTPOINT]\n"
"\n"
"Mount the ScopeHold secrets filesystem: each calling process sees /PROVIDER/KEY\n"
"files only for the secrets granted to the agent it resolves to.\n"
"\n"
"  -c, --config=FILE    config file (default $SCOPEHOLD_CONFIG or " VAULT_DEFAULT_CONFIG ")\n"
"  --db=PATH            database (default [vault] db, or " VAULT_DEFAULT_DB ")\n"
"  --key-file=PATH      master key file (default [vault] key_file,\n"
"                       $CREDENTIALS_DIRECTORY/master.key, or " VAULT_DEFAULT_KEY ")\n"
"  --launch-socket=PATH where `scopeholdctl run --agent` asks to be placed into an\n"
"                       agent (default [launch] socket, or " SH_LAUNCH_DEFAULT_SOCKET ";\n"
"                       none: no launcher)\n"
"  --launch-cgroup=PATH the root-owned cgroup v2 directory launched agents go under\n"
"                       (default [launch] cgroup, or " SH_LAUNCH_DEFAULT_CGROUP ")\n"
"  -f                   stay in the foreground, log to stderr\n"
"  -d                   FUSE debug output (implies -f; shows no values)\n"
"  -o OPTS              extra mount options; ro,nodev,nosuid,noexec,allow_other are always set;\n"
"                       -o nonempty mounts over a directory that is not empty (hiding it)\n"
"  --max-threads=N      FUSE worker threads (default 16)\n"
"  -h, --help           this text;  -V, --version  the version\n"
"\n"
"MOUNTPOINT defaults to [fs] mountpoint, or " VAULT_DEFAULT_MOUNT ".\n"
"Runs as root, in the host's pid and cgroup namespaces. Without -f it logs to\n"
"syslog. SIGHUP re-reads the config file; SIGTERM and SIGINT unmount and exit 0.\n";

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct fs_opts *o = data;
	if (key == FUSE_OPT_KEY_NONOPT) {
		if (o->show_help == 0 && o->show_version == 0 && arg[0] != '-') {
			static int have_mp;
			if (have_mp) {
				fprintf(stderr, "scopeholdfs: unexpected argument '%s' (one MOUNTPOINT only)\n", arg);
				return -1;
			}
			have_mp = 1;
			if (!(o->mountpoint = strdup(arg)))
				return -1;
		}
		return 1; /* keep: fuse_parse_cmdline reads the mountpoint */
	}
	return 1;
}

int fs_conf(struct fuse_args *args, struct fs_opts *o, struct vault_config *cfg)
{
	struct vault_err e = { 0 };
	memset(o, 0, sizeof *o);
	if (fuse_opt_parse(args, o, fs_optspec, opt_proc) < 0)
		return -1;
	if (o->show_help) {
		fputs(usage, stdout);
		return 1;
	}
	if (o->show_version) {
		printf("scopeholdfs 0.1.0 (libfuse %d)\n", fuse_version());
		return 1;
	}
	if (vault_config_load(cfg, o->config, &e) < 0) {
		fprintf(stderr, "scopeholdfs: %s\n", e.msg);
		return -1;
	}
	if ((o->db && !*o->db) || (o->key_file && !*o->key_file) || (o->config && !*o->config)) {
		fprintf(stderr, "scopeholdfs: -c, --db and --key-file need a non-empty value\n");
		return -1;
	}
	if (o->db && snprintf(cfg->db, sizeof cfg->db, "%s", o->db) >= (int)sizeof cfg->db)
		goto toolong;
	if (o->key_file && snprintf(cfg->key_file, sizeof cfg->key_file, "%s", o->key_file) >= (int)sizeof cfg->key_file)
		goto toolong;
	/* Under systemd the credential (LoadCredential[Encrypted]=master.key)
	 * wins over [vault] key_file; only --key-file wins over it. */
	const char *cred = getenv("CREDENTIALS_DIRECTORY");
	if (!o->key_file && cred && *cred) {
		char path[PATH_MAX];
		struct stat st;
		if (snprintf(path, sizeof path, "%s/master.key", cred) < (int)sizeof path && lstat(path, &st) == 0)
			cfg->key_file[0] = '\0'; /* vault_key_load then reads the credential */
	}
	if (o->launch_socket &&
	    snprintf(cfg->launch_socket, sizeof cfg->launch_socket, "%s", o->launch_socket) >= (int)sizeof cfg->launch_socket)
		goto toolong;
	if (o->launch_cgroup &&
	    snprintf(cfg->launch_cgroup, sizeof cfg->launch_cgroup, "%s", o->launch_cgroup) >= (int)sizeof cfg->launch_cgroup)
		goto toolong;
	if (vault_config_check(cfg, &e) < 0) {
		fprintf(stderr, "scopeholdfs: %s\n", e.msg);
		return -1;
	}
	if (o->max_threads == 0)
		o->max_threads = 16;
	if (o->max_threads < 1 || o->max_threads > 1024) {
		fprintf(stderr, "scopeholdfs: --max-threads must be between 1 and 1024\n");
		return -1;
	}
	return 0;
toolong:
	fprintf(stderr, "scopeholdfs: a path given on the command line is too long\n");
	return -1;
}

void fs_opts_free(struct fs_opts *o)
{
	free(o->config);
	free(o->db);
	free(o->key_file);
	free(o->launch_socket);
	free(o->launch_cgroup);
	free(o->mountpoint);
	o->config = o->db = o->key_file = o->mountpoint = NULL;
	o->launch_socket = o->launch_cgroup = NULL;
}
