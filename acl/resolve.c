/* resolve.c - which agent is calling: the bindings of the request's uid from
 * the database, the process labels those bindings need from /proc, and the
 * most specific match. Shared by the daemon and `scopeholdctl whoami`, so
 * both decide alike.
 *
 * MUST: deny (never guess) when the pid is 0, /proc cannot be read, the
 * fs-uid differs from the request's uid, or two bindings tie. */
#include <stdio.h>
#include <string.h>

#include "acl/acl.h"

/* Bindings of one uid; more than this many agents on one uid is refused at
 * resolution. The candidates live in per-thread storage: no allocation on
 * the request path. */
#define MAX_CANDIDATES 64

static __thread struct acl_agent cand_buf[MAX_CANDIDATES];

struct cands {
	size_t n;
	int overflow;
	struct acl_agent *a;
};

static int collect(void *arg, const struct acl_agent *a)
{
	struct cands *c = arg;
	if (c->n == MAX_CANDIDATES) {
		c->overflow = 1;
		return 1;
	}
	c->a[c->n++] = *a;
	return 0;
}

int acl_resolve(struct vault_db *db, const char *proc_root, uid_t uid, pid_t pid,
		unsigned also_read, struct acl_who *out)
{
	struct vault_err e = { 0 };
	memset(out, 0, sizeof *out);
	out->labels.pid = pid;
	out->labels.uid = uid;
	struct cands c = { .a = cand_buf };
	if (acl_agent_each_uid(db, uid, collect, &c, &e) < 0) {
		out->result = ACL_WHO_ERROR;
		snprintf(out->reason, sizeof out->reason, "%s", e.msg);
		goto out;
	}
	if (c.overflow) {
		out->result = ACL_WHO_ERROR;
		snprintf(out->reason, sizeof out->reason, "more than %d agents bound to uid %u",
			 MAX_CANDIDATES, (unsigned)uid);
		goto out;
	}
	/* Read only the labels some candidate needs; with none, still check
	 * the pid (pinned, fs-uid equal to uid) so pid 0 and races deny. */
	/* Labels some candidate needs decide (a failure denies); the rest of
	 * also_read is read in the same pass for the record only. */
	unsigned want = 0;
	for (size_t i = 0; i < c.n; i++)
		want |= c.a[i].labels | (c.a[i].require_secure ? ACL_L_AUXV : 0);
	if (acl_labels_read(proc_root, pid, uid, want | ACL_L_OPTIONAL * (also_read & ~want),
			    &out->labels, out->reason, sizeof out->reason) < 0) {
		out->result = ACL_WHO_ERROR;
		goto out;
	}
	if (c.n == 0) {
		out->result = ACL_WHO_NONE;
		snprintf(out->reason, sizeof out->reason, "no agent is bound to uid %u", (unsigned)uid);
		goto out;
	}
	struct acl_binding b[MAX_CANDIDATES];
	for (size_t i = 0; i < c.n; i++) {
		b[i] = (struct acl_binding){
			.agent_id = c.a[i].id, .uid = c.a[i].uid, .labels = c.a[i].labels,
			.cgroup = c.a[i].cgroup, .exe_dev = c.a[i].exe_dev, .exe_ino = c.a[i].exe_ino,
			.exe_id = c.a[i].exe_id, .lsm = c.a[i].lsm,
			.require_secure = c.a[i].require_secure,
		};
	}
	size_t w = 0;
	unsigned refused = 0;
	switch (acl_match(b, c.n, &out->labels, &w, &refused)) {
	case ACL_MATCH_ONE:
		out->result = ACL_WHO_AGENT;
		out->agent = c.a[w];
		snprintf(out->reason, sizeof out->reason, "matched agent '%s' (uid %u%s%s%s)",
			 c.a[w].name, (unsigned)uid,
			 (c.a[w].labels & ACL_L_CGROUP) ? ", cgroup" : "",
			 (c.a[w].labels & ACL_L_EXE) ? ", exe" : "",
			 (c.a[w].labels & ACL_L_LSM) ? ", lsm" : "");
		break;
	case ACL_MATCH_AMBIGUOUS: {
		out->result = ACL_WHO_AMBIGUOUS;
		size_t other = w, tied = 0;
		for (size_t i = 0; i < c.n; i++) { /* count the tied, name a second one */
			size_t tmp;
			if (__builtin_popcount(c.a[i].labels) != __builtin_popcount(c.a[w].labels) ||
			    acl_match(&b[i], 1, &out->labels, &tmp, NULL) != ACL_MATCH_ONE)
				continue;
			tied++;
			if (i != w && other == w)
				other = i;
		}
		out->tied = tied;
		snprintf(out->reason, sizeof out->reason, "ambiguous: agents '%s' and '%s' match equally",
			 c.a[w].name, c.a[other].name);
		break;
	}
	case ACL_MATCH_REFUSED: {
		const struct acl_labels *l = &out->labels;
		out->result = ACL_WHO_NONE;
		out->refused = refused;
		if (refused & ACL_R_TRACED)
			snprintf(out->reason, sizeof out->reason,
				 "traced: pid %d is traced by pid %d, and a traced process matches no "
				 "label binding (agent '%s')", (int)pid, (int)l->tracer, c.a[w].name);
		else if (refused & ACL_R_USERNS)
			snprintf(out->reason, sizeof out->reason,
				 "exe-in-user-namespace: pid %d runs in a user namespace of its own, where "
				 "its exe can be repointed; exe binding of agent '%s' not matched",
				 (int)pid, c.a[w].name);
		else if (refused & ACL_R_EXE_CHANGED)
			snprintf(out->reason, sizeof out->reason,
				 "exe-changed: the caller's executable has the inode of agent '%s''s "
				 "binding but is not the file that was bound (owner, size or ctime differ; "
				 "after an upgrade run: scopeholdctl agent set %s --exe PATH)",
				 c.a[w].name, c.a[w].name);
		else
			snprintf(out->reason, sizeof out->reason,
				 "not-secure-exec: agent '%s' requires a secure-mode exec (AT_SECURE) and "
				 "pid %d was not", c.a[w].name, (int)pid);
		break;
	}
	case ACL_MATCH_NONE:
		out->result = ACL_WHO_NONE;
		snprintf(out->reason, sizeof out->reason, "no binding of uid %u matches the caller's labels",
			 (unsigned)uid);
		break;
	}
out:
	return out->result == ACL_WHO_AGENT ? 0 : -1;
}
