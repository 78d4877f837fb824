/* cmd_ident.c - scopeholdctl explain and whoami: the daemon's decisions,
 * computed by the same code (acl_check, acl_resolve), shown with the rule
 * or binding that decided. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/ctl.h"

static const char explain_usage[] =
	"usage: scopeholdctl explain AGENT P/K [--json]\n\n"
	"Say whether AGENT can read P/K through the mount, and which rule decides:\n"
	"no grant; grant expired; granted but not assigned to the agent's project;\n"
	"agent disabled; secret removed (or never existed); allowed. It also warns when\n"
	"another agent's binding is as specific as AGENT's (callers matching both are\n"
	"denied as ambiguous). Exit 0 on ALLOWED, 1 on DENIED.\n";

int ctl_explain(struct ctl *c, int argc, char **argv)
{
	if (ctl_wants_help(argc, argv))
		return ctl_help(explain_usage);
	if (argc != 3)
		return ctl_usage("explain", "expected AGENT P/K");
	char provider[VAULT_NAME_MAX + 1], key[VAULT_NAME_MAX + 1];
	struct vault_err e = { 0 };
	if (vault_name_check("agent", argv[1], &e) < 0 || vault_path_split(argv[2], provider, key, &e) < 0)
		return ctl_verr(&e);
	if (!ctl_db(c))
		return 1;
	struct acl_agent a;
	int found = acl_agent_get(c->db, argv[1], &a, &e);
	if (found <= 0)
		return found < 0 ? ctl_verr(&e) : ctl_fail("agent '%s' does not exist", argv[1]);
	struct vault_secret s;
	enum acl_decision d = acl_check(c->db, &a, provider, key, &s, &e);
	if (d == ACL_DB_ERROR)
		return ctl_verr(&e);
	static const char *const rule[] = {
		[ACL_ALLOW] = "allowed",
		[ACL_NO_SECRET] = "secret-removed",
		[ACL_NO_GRANT] = "no-grant",
		[ACL_NOT_ASSIGNED] = "not-assigned",
		[ACL_DISABLED] = "agent-disabled",
		[ACL_EXPIRED] = "grant-expired",
		[ACL_DB_ERROR] = "error",
	};
	char why[128], when[40] = "";
	int64_t exp = 0;
	if (d != ACL_NO_SECRET && acl_grant_get(c->db, a.id, s.id, &exp, &e) == 1 && exp)
		ctl_format_time(exp, when, sizeof when);
	if (d == ACL_NO_SECRET)
		snprintf(why, sizeof why, "the secret does not exist (removed, or never added)");
	else if (d == ACL_EXPIRED)
		snprintf(why, sizeof why, "grant expired at %s", when);
	else
		snprintf(why, sizeof why, "%s", acl_decision_str(d));
	struct acl_agent other;
	int amb = acl_agent_overlap(c->db, &a, &other, &e) == 1;
	char warn[300] = "";
	if (amb)
		snprintf(warn, sizeof warn, "agent '%s' is bound as specifically on uid %u: callers matching both "
			 "are denied as ambiguous", other.name, (unsigned)a.uid);
	char strength[160];
	acl_binding_strength(&a, acl_ptrace_scope(c->cfg.proc_root), strength, sizeof strength);
	if (c->json) {
		printf("{\"agent\":");
		ctl_json_str(stdout, a.name);
		printf(",\"project\":");
		ctl_json_str(stdout, a.project);
		printf(",\"secret\":");
		ctl_json_str(stdout, argv[2]);
		printf(",\"allowed\":%s,\"rule\":\"%s\",\"reason\":", d == ACL_ALLOW ? "true" : "false", rule[d]);
		ctl_json_str(stdout, why);
		if (d != ACL_NO_SECRET)
			printf(",\"version\":%lld,\"bytes\":%lld", (long long)s.version, (long long)s.len);
		else
			printf(",\"version\":null,\"bytes\":null");
		printf(",\"expires\":");
		ctl_json_str(stdout, when[0] ? when : NULL);
		printf(",\"ambiguous_with\":");
		ctl_json_str(stdout, amb ? other.name : NULL);
		printf(",\"binding_strength\":");
		ctl_json_str(stdout, strength);
		puts("}");
	} else {
		printf("%s: agent %s (project %s) %s read %s: %s\n", d == ACL_ALLOW ? "ALLOWED" : "DENIED",
		       a.name, a.project, d == ACL_ALLOW ? "can" : "cannot", argv[2], why);
		if (d == ACL_ALLOW)
			printf("  rule: agent enabled, direct grant%s%s, secret assigned to project %s; reads version %lld\n",
			       when[0] ? " until " : "", when, a.project, (long long)s.version);
		if (amb)
			printf("  warning: %s\n", warn);
		printf("  binding: %s\n", strength);
	}
	return d == ACL_ALLOW ? 0 : 1;
}

static const char whoami_usage[] =
	"usage: scopeholdctl whoami PID [--json]\n\n"
	"Resolve a running process exactly as scopeholdfs would for a request it sends:\n"
	"its fs-uid, the labels read from /proc (cgroup, exe, lsm), and the binding\n"
	"that matched, or why none did.\n";

/* The fs-uid of pid from status (the uid a FUSE request of it carries). */
static int fsuid_of(const char *proc_root, long pid, uid_t *uid)
{
	char path[4200], line[256];
	snprintf(path, sizeof path, "%s/%ld/status", proc_root, pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	int ok = -1;
	while (fgets(line, sizeof line, f)) {
		unsigned r, eu, s, fsu;
		if (sscanf(line, "Uid: %u %u %u %u", &r, &eu, &s, &fsu) == 4) {
			*uid = fsu;
			ok = 0;
			break;
		}
	}
	fclose(f);
	return ok;
}

int ctl_whoami(struct ctl *c, int argc, char **argv)
{
	if (ctl_wants_help(argc, argv))
		return ctl_help(whoami_usage);
	if (argc != 2)
		return ctl_usage("whoami", "expected PID");
	char *end;
	errno = 0;
	long pid = strtol(argv[1], &end, 10);
	if (!*argv[1] || *end || errno || pid <= 0 || pid > 0x3fffffff)
		return ctl_usage("whoami", "'%s' is not a process id", argv[1]);
	uid_t uid;
	if (fsuid_of(c->cfg.proc_root, pid, &uid) < 0)
		return ctl_fail("no process %ld (cannot read %s/%ld/status)", pid, c->cfg.proc_root, pid);
	if (!ctl_db(c))
		return 1;
	struct acl_who w;
	acl_resolve(c->db, c->cfg.proc_root, uid, (pid_t)pid, ACL_L_CGROUP | ACL_L_EXE | ACL_L_LSM, &w);
	const struct acl_labels *l = &w.labels;
	int scope = acl_ptrace_scope(c->cfg.proc_root);
	char strength[160];
	static const char *const res[] = {
		[ACL_WHO_AGENT] = "agent", [ACL_WHO_NONE] = "unknown-caller",
		[ACL_WHO_AMBIGUOUS] = "ambiguous", [ACL_WHO_ERROR] = "error",
	};
	const char *agent = w.result == ACL_WHO_AGENT ? w.agent.name : NULL;
	if (c->json) {
		printf("{\"pid\":%ld,\"tgid\":%d,\"uid\":%u,\"result\":\"%s\",\"agent\":", pid, (int)l->tgid,
		       (unsigned)uid, res[w.result]);
		ctl_json_str(stdout, agent);
		printf(",\"project\":");
		ctl_json_str(stdout, agent ? w.agent.project : NULL);
		printf(",\"cgroup\":");
		ctl_json_str(stdout, (l->have & ACL_L_CGROUP) ? l->cgroup : NULL);
		ctl_json_hex(stdout, "cgroup", (l->have & ACL_L_CGROUP) ? l->cgroup : NULL);
		printf(",\"exe\":");
		ctl_json_str(stdout, (l->have & ACL_L_EXE) ? l->exe : NULL);
		ctl_json_hex(stdout, "exe", (l->have & ACL_L_EXE) ? l->exe : NULL);
		printf(",\"lsm\":");
		ctl_json_str(stdout, (l->have & ACL_L_LSM) ? l->lsm : NULL);
		printf(",\"binding\":");
		if (agent) {
			printf("{\"uid\":%u,\"cgroup\":", (unsigned)w.agent.uid);
			ctl_json_str(stdout, (w.agent.labels & ACL_L_CGROUP) ? w.agent.cgroup : NULL);
			printf(",\"exe\":");
			ctl_json_str(stdout, (w.agent.labels & ACL_L_EXE) ? w.agent.exe : NULL);
			printf(",\"lsm\":");
			ctl_json_str(stdout, (w.agent.labels & ACL_L_LSM) ? w.agent.lsm : NULL);
			printf(",\"enabled\":%s,\"strength\":", w.agent.enabled ? "true" : "false");
			ctl_json_str(stdout, acl_binding_strength(&w.agent, scope, strength, sizeof strength));
			printf("}");
		} else {
			printf("null");
		}
		printf(",\"refused\":");
		ctl_json_str(stdout, w.refused ? acl_refused_str(w.refused) : NULL);
		printf(",\"traced_by\":");
		if (l->tracer)
			printf("%d", (int)l->tracer);
		else
			printf("null");
		printf(",\"reason\":");
		ctl_json_str(stdout, w.reason);
		puts("}");
		return 0;
	}
	printf("pid %ld (process %d), uid %u: %s%s%s\n", pid, (int)l->tgid, (unsigned)uid,
	       agent ? "agent " : res[w.result], agent ? agent : "", agent && !w.agent.enabled ? " (disabled)" : "");
	printf("  labels read: cgroup=%s exe=%s lsm=%s\n", (l->have & ACL_L_CGROUP) ? l->cgroup : "-",
	       (l->have & ACL_L_EXE) ? l->exe : "-", (l->have & ACL_L_LSM) ? l->lsm : "-");
	if (agent)
		printf("  binding: uid=%u%s%s%s%s%s%s (project %s)\n", (unsigned)w.agent.uid,
		       (w.agent.labels & ACL_L_CGROUP) ? " cgroup=" : "", (w.agent.labels & ACL_L_CGROUP) ? w.agent.cgroup : "",
		       (w.agent.labels & ACL_L_EXE) ? " exe=" : "", (w.agent.labels & ACL_L_EXE) ? w.agent.exe : "",
		       (w.agent.labels & ACL_L_LSM) ? " lsm=" : "", (w.agent.labels & ACL_L_LSM) ? w.agent.lsm : "",
		       w.agent.project);
	if (agent)
		printf("  strength: %s\n", acl_binding_strength(&w.agent, scope, strength, sizeof strength));
	printf("  why: %s\n", w.reason);
	return 0;
}
