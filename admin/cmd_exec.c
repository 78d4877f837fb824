/* cmd_exec.c - scopeholdctl exec and run: read granted files through the
 * mount (so the caller's own identity, grants and audit apply) and run a
 * command with them in a clean environment, for tools that only take keys
 * from variables; `run --agent` first asks the daemon's launch socket to
 * place this very process into the agent's launch cgroup. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "admin/ctl.h"
#include "fs/launch_proto.h"

#define CONFIG_HELP \
	"With --mount nothing is read from the config file; without it, a default config\n" \
	"file this user may not read (init makes /etc/scopehold 0700) leaves the default\n" \
	"mount point " VAULT_DEFAULT_MOUNT ".\n"

#define ENV_HELP \
	"\n  --env NAME=P/K       NAME gets the value of P/K, read through the mount\n" \
	"  --env-file NAME=P/K  NAME gets the path of P/K in the mount (for *_FILE settings)\n" \
	"  --pass VAR           pass VAR from this environment too\n" \
	"  --inherit-env        pass this whole environment (default: only HOME, LOGNAME,\n" \
	"                       PATH, SHELL, TERM, USER, LANG and LC_*, as MCP clients do)\n"

static const char exec_usage[] =
	"usage: scopeholdctl exec [--mount DIR] [--env NAME=P/K ...] [--env-file NAME=P/K ...]\n"
	"                         [--pass VAR ...] [--inherit-env] -- CMD [ARG...]\n\n"
	"Read each P/K through the mounted filesystem (DIR, default [fs] mountpoint) as\n"
	"the calling process, put it in the environment as NAME, and run CMD. The mount\n"
	"decides and audits every read as for any other caller. Prefer reading the\n"
	"files directly: a variable is inherited by every child CMD starts.\n"
	ENV_HELP CONFIG_HELP;

static const char run_usage[] =
	"usage: scopeholdctl run --agent NAME [--socket PATH] [--mount DIR] [--env NAME=P/K ...]\n"
	"                        [--env-file NAME=P/K ...] [--pass VAR ...] [--inherit-env] -- CMD [ARG...]\n\n"
	"Ask scopeholdfs (on its launch socket: PATH, default [launch] socket or\n"
	SH_LAUNCH_DEFAULT_SOCKET ") to place this process into agent NAME, then run CMD\n"
	"as that agent. The daemon takes the caller from the socket, and refuses unless\n"
	"its uid is the agent's, the agent is enabled and bound with --launched, and the\n"
	"caller is not itself a launched process. CMD then runs in a root-owned cgroup\n"
	"that it cannot leave: another server of the same user cannot become this agent\n"
	"from inside the launch tree, and this one cannot become another. The user can\n"
	"still launch any agent bound to the uid: the uid stays the hard boundary.\n"
	ENV_HELP CONFIG_HELP;

#define MAX_ENV 64


/* Read mount/pk into a NUL-terminated locked buffer; errors name var
 * (NAME=..., up to the '=') and the path, never a value. */
static char *read_granted(const char *mount, const char *pk, const char *var)
{
	int vl = (int)strcspn(var, "=");
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s/%s", mount, pk) >= (int)sizeof path) {
		ctl_fail("path '%s/%s' is too long", mount, pk);
		return NULL;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;
		ctl_fail("%.*s: cannot read '%s': %s%s", vl, var, path, strerror(err),
			 err == ENOENT ? " (not granted to this process's agent, or not mounted)" :
			 err == ENOTCONN ? " (scopeholdfs is not running; restart it and remount)" : "");
		return NULL;
	}
	char *buf = sodium_malloc(VAULT_VALUE_MAX + 1);
	size_t len = 0;
	ssize_t n = 0;
	while (buf && len < VAULT_VALUE_MAX && (n = read(fd, buf + len, VAULT_VALUE_MAX - len)) > 0)
		len += (size_t)n;
	close(fd);
	if (!buf || n < 0) {
		ctl_fail("%.*s: cannot read '%s': %s", vl, var, path, buf ? strerror(errno) : "out of locked memory");
		sodium_free(buf);
		return NULL;
	}
	if (memchr(buf, 0, len)) {
		ctl_fail("%.*s: '%s' holds a NUL byte and cannot go into an environment variable", vl, var, pk);
		sodium_free(buf);
		return NULL;
	}
	buf[len] = 0;
	return buf;
}


struct envspec {
	const char *mount, *agent, *socket;
	const char *default_mount; /* the config's, to tell whether --mount was given */
	const char *vars[MAX_ENV]; /* NAME=P/K */
	int is_file[MAX_ENV];      /* --env-file: NAME gets the path, not the value */
	int nvars;
	const char *pass[MAX_ENV];
	int npass;
	int inherit;
	int cmd;                   /* argv index of CMD */
};

/* The variables the MCP SDKs pass to a stdio server. */
static int default_var(const char *kv)
{
	static const char *const keep[] = { "HOME=", "LOGNAME=", "PATH=", "SHELL=", "TERM=", "USER=",
					    "LANG=", "LC_", NULL };
	for (int i = 0; keep[i]; i++)
		if (!strncmp(kv, keep[i], strlen(keep[i])))
			return 1;
	return 0;
}

static int var_named(const char *kv, const char *name)
{
	size_t n = strlen(name);
	return !strncmp(kv, name, n) && kv[n] == '=';
}

/* Options shared by exec and run (run also takes --agent and --socket). */
static int parse(const char *verb, int argc, char **argv, struct envspec *sp, int launch)
{
	int i;
	for (i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		const char *v = NULL; /* --env repeats: a fresh NULL each time */
		int r, file = 0;
		if ((r = ctl_opt(verb, argc, argv, &i, "--mount", &sp->mount)) ||
		    (launch && (r = ctl_opt(verb, argc, argv, &i, "--agent", &sp->agent))) ||
		    (launch && (r = ctl_opt(verb, argc, argv, &i, "--socket", &sp->socket)))) {
			if (r < 0)
				return 2;
		} else if ((r = ctl_opt(verb, argc, argv, &i, "--env", &v)) ||
			   (file = 1, r = ctl_opt(verb, argc, argv, &i, "--env-file", &v))) {
			if (r < 0)
				return 2;
			const char *eq = strchr(v, '=');
			if (!eq || eq == v || !strchr(eq + 1, '/'))
				return ctl_usage(verb, "%s takes NAME=PROVIDER/KEY, not '%s'",
						 file ? "--env-file" : "--env", v);
			if (sp->nvars == MAX_ENV)
				return ctl_usage(verb, "at most %d --env and --env-file", MAX_ENV);
			sp->is_file[sp->nvars] = file;
			sp->vars[sp->nvars++] = v;
		} else if ((r = ctl_opt(verb, argc, argv, &i, "--pass", &v))) {
			if (r < 0)
				return 2;
			if (!*v || strchr(v, '='))
				return ctl_usage(verb, "--pass takes a variable name, not '%s'", v);
			if (sp->npass == MAX_ENV)
				return ctl_usage(verb, "at most %d --pass", MAX_ENV);
			sp->pass[sp->npass++] = v;
		} else if (!strcmp(argv[i], "--inherit-env")) {
			sp->inherit = 1;
		} else {
			return ctl_usage(verb, "unexpected argument '%s' (the command follows --)", argv[i]);
		}
	}
	if (i >= argc - 1)
		return ctl_usage(verb, "missing -- CMD");
	sp->cmd = i + 1;
	return 0;
}

static void env_free(char **env, int n, int nsecret)
{
	/* the last nsecret entries hold values: locked memory, wiped */
	for (int k = n - nsecret; k < n; k++)
		sodium_free(env[k]);
	free(env);
}

/* Without --mount and with a default config this user cannot read: say
 * which mount point is used. */
static void note_mount(const struct ctl *c, const char *verb, const struct envspec *sp)
{
	if (sp->mount == sp->default_mount && c->cfg_unreadable)
		fprintf(stderr, "scopeholdctl: %s: cannot read the config file '%s' (%s); using the default mount "
			"point %s (give --mount DIR to choose)\n", verb, VAULT_DEFAULT_CONFIG, strerror(EACCES),
			sp->mount);
}

/* The environment CMD gets: the defaults (or everything with --inherit-env)
 * and --pass names from ours, then each --env value read through the mount
 * and each --env-file path. NULL after printing why (naming the variable and
 * the path, never a value). *n and *nsecret for env_free. */
static char **env_build(const struct envspec *sp, int *n, int *nsecret)
{
	extern char **environ;
	int cap = MAX_ENV * 2 + 1, k = 0, sec = 0;
	for (char **e = environ; *e; e++)
		cap++;
	char **env = calloc((size_t)cap, sizeof *env);
	if (!env) {
		ctl_fail("out of memory");
		return NULL;
	}
	for (char **e = environ; *e; e++) {
		int take = sp->inherit || default_var(*e);
		for (int p = 0; !take && p < sp->npass; p++)
			take = var_named(*e, sp->pass[p]);
		for (int v = 0; take && v < sp->nvars; v++) { /* ours win over inherited */
			size_t nl = (size_t)(strchr(sp->vars[v], '=') - sp->vars[v]);
			take = !(strncmp(*e, sp->vars[v], nl) == 0 && (*e)[nl] == '=');
		}
		if (take)
			env[k++] = *e;
	}
	/* --env-file: plain strings (a path), kept apart from the values */
	static char files[MAX_ENV][PATH_MAX + 256];
	for (int v = 0; v < sp->nvars; v++) {
		if (!sp->is_file[v])
			continue;
		const char *eq = strchr(sp->vars[v], '=');
		int nl = (int)(eq - sp->vars[v]);
		snprintf(files[v], sizeof files[v], "%.*s=%s/%s", nl, sp->vars[v], sp->mount, eq + 1);
		int fd = open(strchr(files[v], '=') + 1, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			int err = errno;
			ctl_fail("%.*s: cannot open '%s': %s%s", nl, sp->vars[v], strchr(files[v], '=') + 1,
				 strerror(err), err == ENOENT ? " (not granted to this process's agent, or not mounted)" : "");
			free(env);
			return NULL;
		}
		close(fd);
		env[k++] = files[v];
	}
	for (int v = 0; v < sp->nvars; v++) {
		if (sp->is_file[v])
			continue;
		char pr[VAULT_NAME_MAX + 1], ke[VAULT_NAME_MAX + 1];
		struct vault_err e = { 0 };
		const char *eq = strchr(sp->vars[v], '=');
		size_t nl = (size_t)(eq - sp->vars[v]);
		char *val = NULL, *kv = NULL;
		if (vault_path_split(eq + 1, pr, ke, &e) < 0) {
			ctl_verr(&e);
		} else if (nl > 255) {
			ctl_fail("variable name '%.40s...' too long", sp->vars[v]);
		} else if ((val = read_granted(sp->mount, eq + 1, sp->vars[v]))) {
			size_t vl = strlen(val);
			kv = sodium_malloc(nl + 1 + vl + 1);
			if (!kv)
				ctl_fail("out of locked memory");
			else {
				memcpy(kv, sp->vars[v], nl + 1);
				memcpy(kv + nl + 1, val, vl + 1);
			}
			sodium_free(val);
		}
		if (!kv) {
			env_free(env, k, sec);
			return NULL;
		}
		env[k++] = kv;
		sec++;
	}
	*n = k;
	*nsecret = sec;
	return env;
}

/* Build CMD's environment and run it; returns only on failure (after
 * wiping the values). */
static int run_cmd(struct ctl *c, const char *verb, char **argv, const struct envspec *sp)
{
	int n, nsec;
	note_mount(c, verb, sp);
	char **env = env_build(sp, &n, &nsec);
	if (!env)
		return 1;
	vault_db_close(c->db);
	vault_db_close(c->adb);
	c->db = c->adb = NULL;
	execvpe(argv[sp->cmd], argv + sp->cmd, env);
	int err = errno;
	env_free(env, n, nsec);
	return ctl_fail("cannot run '%s': %s", argv[sp->cmd], strerror(err));
}

int ctl_exec(struct ctl *c, int argc, char **argv)
{
	struct envspec sp = { .mount = c->cfg.mountpoint, .default_mount = c->cfg.mountpoint };
	if (ctl_wants_help(argc, argv))
		return ctl_help(exec_usage);
	if (parse("exec", argc, argv, &sp, 0))
		return 2;
	if (sp.nvars == 0)
		return ctl_usage("exec", "give at least one --env NAME=P/K or --env-file NAME=P/K");
	return run_cmd(c, "exec", argv, &sp);
}

/* One request on the launch socket: 0 moved; 1 after printing why; 3 busy
 * (this uid has requests open: try again). */
static int launch_once(const char *sock, const char *agent)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct sh_launch_req req;
	struct sh_launch_rep rep;
	struct timeval tv = { .tv_sec = 10 };
	size_t nl = strlen(agent);

	if (strlen(sock) >= sizeof sa.sun_path)
		return ctl_fail("launch socket path '%s' is too long", sock);
	strcpy(sa.sun_path, sock);
	memset(&req, 0, sizeof req);
	req.magic = SH_LAUNCH_MAGIC;
	req.version = SH_LAUNCH_VERSION;
	req.name_len = (uint16_t)nl;
	memcpy(req.name, agent, nl);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ctl_fail("socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv); /* connect too: a full backlog */
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int err = errno;
		close(fd);
		return ctl_fail("cannot reach the launch socket '%s': %s (is scopeholdfs running with "
				"its launcher? see --socket and [launch] socket)", sock, strerror(err));
	}
	ssize_t got = 0, r;
	/* a busy daemon answers at once and closes: the reply may be there
	 * although the request could not be sent */
	int sent = send(fd, &req, sizeof req, MSG_NOSIGNAL) == (ssize_t)sizeof req;
	while (got < (ssize_t)sizeof rep && (r = read(fd, (char *)&rep + got, sizeof rep - (size_t)got)) > 0)
		got += r;
	close(fd);
	if (got != (ssize_t)sizeof rep || rep.magic != SH_LAUNCH_MAGIC || rep.version != SH_LAUNCH_VERSION)
		return ctl_fail("launch socket '%s': %s", sock, sent ? "no answer from scopeholdfs" :
				"cannot send the request");
	rep.msg[sizeof rep.msg - 1] = '\0';
	if (rep.status == SH_LAUNCH_BUSY)
		return 3;
	if (rep.status != SH_LAUNCH_OK)
		return ctl_fail("launch as agent '%s' %s: %s", agent,
				rep.status == SH_LAUNCH_REFUSED ? "refused" : "failed", rep.msg);
	return 0;
}

/* Ask the launch socket to move this process into agent, retrying for up
 * to 10 s while the daemon says this uid has too many requests open: 0, or
 * 1 after printing why. */
static int launch(const char *sock, const char *agent)
{
	for (int i = 0; i < 200; i++) {
		int rc = launch_once(sock, agent);
		if (rc != 3)
			return rc;
		struct timespec ts = { 0, (20 + randombytes_uniform(60)) * 1000000L };
		nanosleep(&ts, NULL);
	}
	return ctl_fail("launch as agent '%s': the launcher stayed busy with this uid's requests", agent);
}

int ctl_run(struct ctl *c, int argc, char **argv)
{
	struct envspec sp = { .mount = c->cfg.mountpoint, .default_mount = c->cfg.mountpoint,
			      .socket = c->cfg.launch_socket };
	struct vault_err e = { 0 };
	if (ctl_wants_help(argc, argv))
		return ctl_help(run_usage);
	if (parse("run", argc, argv, &sp, 1))
		return 2;
	if (!sp.agent)
		return ctl_usage("run", "--agent NAME is required");
	if (vault_name_check("agent", sp.agent, &e) < 0)
		return ctl_verr(&e);
	if (!sp.socket[0] || !strcmp(sp.socket, "none"))
		return ctl_fail("no launch socket is configured ([launch] socket = none)");
	if (launch(sp.socket, sp.agent))
		return 1;
	return run_cmd(c, "run", argv, &sp);
}
