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
		want |= c.a[i].labels;
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
			.lsm = c.a[i].lsm,
		};
	}
	size_t w = 0;
	switch (acl_match(b, c.n, &out->labels, &w)) {
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
		size_t other = w;
		for (size_t i = 0; i < c.n; i++) { /* name a second tied agent */
			if (i != w && __builtin_popcount(c.a[i].labels) == __builtin_popcount(c.a[w].labels)) {
				size_t tmp;
				if (acl_match(&b[i], 1, &out->labels, &tmp) == ACL_MATCH_ONE) {
					other = i;
					break;
				}
			}
		}
		snprintf(out->reason, sizeof out->reason, "ambiguous: agents '%s' and '%s' match equally",
			 c.a[w].name, c.a[other].name);
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
