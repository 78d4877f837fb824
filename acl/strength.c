/* strength.c - how much a binding's labels are worth on this host: a label
 * divides one uid only where that uid's other processes cannot reach into
 * the agent's process or change the label. Shown by agent list, explain,
 * whoami and the daemon's start-up warning; never decides an access (the
 * resolver's checks do that). Never prints. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "acl/acl.h"

int acl_cgroup2_mount(char *buf, size_t len)
{
	char line[4096];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	int rc = -1;

	if (!f)
		return -1;
	while (rc < 0 && fgets(line, sizeof line, f)) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE ... */
		char *sep = strstr(line, " - ");
		char mnt[4096];

		if (!sep || strncmp(sep + 3, "cgroup2 ", 8) != 0)
			continue;
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1 && strlen(mnt) < len) {
			strcpy(buf, mnt);
			rc = 0;
		}
	}
	fclose(f);
	return rc;
}

/* 1 when the directory that a cgroup glob fixes (its part before the first
 * wildcard, cut back to a whole component) is owned by a non-root uid, who
 * may then move any of its processes in and out; 0 root-owned or absent. */
static int cgroup_user_owned(const char *glob)
{
	char root[2048], path[4096], fixed[ACL_LABEL_MAX];
	struct stat st;
	size_t n = strcspn(glob, "*?[");
	char *slash;

	if (n >= sizeof fixed || acl_cgroup2_mount(root, sizeof root) < 0)
		return 0;
	memcpy(fixed, glob, n);
	fixed[n] = '\0';
	if (glob[n] && (slash = strrchr(fixed, '/')))
		*slash = '\0'; /* "/user.slice/app-*" fixes "/user.slice" */
	/* the leaf's parent decides who may move processes into the leaf */
	for (;;) {
		if (snprintf(path, sizeof path, "%s%s", root, fixed) >= (int)sizeof path)
			return 0;
		if (stat(path, &st) == 0)
			return st.st_uid != 0;
		if (!(slash = strrchr(fixed, '/')) || slash == fixed)
			return 0;
		*slash = '\0';
	}
}

const char *acl_binding_strength(const struct acl_agent *a, int ptrace_scope, char *buf,
				 size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	if (!a->labels) {
		snprintf(buf, len, "uid only");
		return buf;
	}
#define WEAK(...) do { if (n < len) n += (size_t)snprintf(buf + n, len - n, __VA_ARGS__); } while (0)
	if (ptrace_scope < 1 && !a->require_secure)
		WEAK("%sweak: %s", n ? ", " : "",
		     ptrace_scope < 0 ? "no Yama ptrace_scope" : "ptrace_scope 0");
	/* whatever ptrace_scope says, the uid can run the bound binary itself
	 * with code of its own (LD_PRELOAD, LD_AUDIT, a script for an
	 * interpreter): only a secure-mode exec ignores that */
	if ((a->labels & ACL_L_EXE) && !a->require_secure)
		WEAK("%sweak: the uid can run the binary with its own code (LD_PRELOAD; "
		     "--require-secure-exec)", n ? ", " : "");
	if ((a->labels & ACL_L_CGROUP) && cgroup_user_owned(a->cgroup))
		WEAK("%sweak: user-owned cgroup", n ? ", " : "");
	if ((a->labels & ACL_L_EXE) && a->exe_id.ctime_ns == -1)
		WEAK("%sweak: exe bound before its identity was recorded (re-bind)", n ? ", " : "");
#undef WEAK
	if (!n)
		snprintf(buf, len, "strong");
	return buf;
}

struct weak_ctx {
	char *names;
	size_t len, used;
	int n;
	int ptrace_scope;
};

static int weak_one(void *arg, const struct acl_agent *a)
{
	struct weak_ctx *w = arg;

	if (!a->labels || a->require_secure)
		return 0;
	if (w->ptrace_scope >= 1 && !(a->labels & ACL_L_EXE))
		return 0; /* Yama keeps its uid's other processes out */
	if (w->used < w->len)
		w->used += (size_t)snprintf(w->names + w->used, w->len - w->used, "%s'%s'",
					    w->n ? ", " : "", a->name);
	w->n++;
	return 0;
}

int acl_weak_agents(struct vault_db *db, int ptrace_scope, char *names, size_t len,
		    struct vault_err *e)
{
	struct weak_ctx w = { names, len, 0, 0, ptrace_scope };

	names[0] = '\0';
	if (acl_agent_each(db, weak_one, &w, e) < 0)
		return -1;
	return w.n;
}

int acl_launch_dir(const char *launch_cgroup, const char *agent, char *out, size_t len,
		   struct vault_err *e)
{
	const char *p = launch_cgroup;

	if (!p || p[0] != '/' || !p[1])
		return vault_fail(e, VAULT_EINVAL, "[launch] cgroup '%.200s' must be an absolute cgroup "
				  "path below the root, like /scopehold.launch", p ? p : "");
	for (const char *c = p; *c; ) { /* every component a plain name */
		const char *n = strchr(c + 1, '/');
		size_t l = n ? (size_t)(n - c - 1) : strlen(c + 1);
		if (l == 0 || (l == 1 && c[1] == '.') || (l == 2 && c[1] == '.' && c[2] == '.') ||
		    strcspn(c + 1, "*?[\\") < l)
			return vault_fail(e, VAULT_EINVAL, "[launch] cgroup '%.200s' must be a plain absolute "
					  "path (no empty, '.', '..' or wildcard component)", p);
		if (!n)
			break;
		c = n;
	}
	if (vault_name_check("agent", agent, e) < 0)
		return -1;
	if (snprintf(out, len, "%s/%s", p, agent) >= (int)len)
		return vault_fail(e, VAULT_EINVAL, "[launch] cgroup '%.200s' is too long", p);
	return 0;
}
