/* cmd_acl.c - scopeholdctl project, agent, grant, revoke and grants: who may
 * read what. Every change is one transaction with its audit row. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "admin/ctl.h"

static const char project_usage[] =
	"usage: scopeholdctl project add NAME\n"
	"       scopeholdctl project rm NAME\n"
	"       scopeholdctl project list [--json]\n\n"
	"A project groups agents and the secrets assigned to it. Assignment alone gives\n"
	"no access: an agent also needs a direct grant. rm refuses while agents remain.\n";

int ctl_project(struct ctl *c, int argc, char **argv)
{
	struct vault_err e = { 0 };
	if (ctl_wants_help(argc, argv))
		return ctl_help(project_usage);
	if (argc == 2 && !strcmp(argv[1], "list")) {
		if (!ctl_db(c))
			return 1;
		sqlite3_stmt *st = vault_db_stmt(c->db, "SELECT j.name,"
			" (SELECT count(*) FROM agents a WHERE a.project_id = j.id),"
			" (SELECT count(*) FROM assignments x WHERE x.project_id = j.id)"
			" FROM projects j ORDER BY j.name", &e);
		if (!st)
			return ctl_verr(&e);
		if (c->json)
			fputs("[", stdout);
		else
			printf("%-32s %6s %8s\n", "PROJECT", "AGENTS", "SECRETS");
		int rc, first = 1;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			const char *name = (const char *)sqlite3_column_text(st, 0);
			long long na = sqlite3_column_int64(st, 1), ns = sqlite3_column_int64(st, 2);
			if (c->json) {
				printf("%s{\"name\":", first ? "" : ",");
				ctl_json_str(stdout, name);
				printf(",\"agents\":%lld,\"secrets\":%lld}", na, ns);
			} else {
				printf("%-32s %6lld %8lld\n", name, na, ns);
			}
			first = 0;
		}
		sqlite3_reset(st);
		if (c->json)
			puts("]");
		return rc == SQLITE_DONE ? 0 : ctl_fail("listing projects failed");
	}
	if (argc != 3 || (strcmp(argv[1], "add") && strcmp(argv[1], "rm")))
		return ctl_usage("project", "expected: add NAME, rm NAME or list");
	int add = !strcmp(argv[1], "add");
	if (ctl_begin(c))
		return 1;
	int rc = add ? acl_project_add(c->db, argv[2], &e) : acl_project_rm(c->db, argv[2], &e);
	rc = ctl_end(c, rc, &e, add ? "project.add" : "project.rm", argv[2]);
	if (!rc && !c->json)
		printf("%s project %s\n", add ? "added" : "removed", argv[2]);
	return rc;
}

static const char agent_usage[] =
	"usage: scopeholdctl agent add NAME --project P --uid UID [--cgroup GLOB] [--exe PATH] [--lsm LABEL]\n"
	"                              [--require-secure-exec] [--launched]\n"
	"       scopeholdctl agent list [--json]\n"
	"       scopeholdctl agent rm NAME\n"
	"       scopeholdctl agent disable NAME\n"
	"       scopeholdctl agent enable NAME\n\n"
	"An agent is one MCP server, tool runner or container. A caller is recognised as\n"
	"the agent by its uid (a number or a user name) plus optional labels:\n"
	"  --cgroup GLOB  cgroup v2 path, e.g. /system.slice/mcp-github.service; '*' stays\n"
	"                 within one level, a trailing /** matches the whole subtree\n"
	"  --exe PATH     the executable as it is now: this file (device, inode, owner,\n"
	"                 size, ctime), root-owned and in root-owned directories that\n"
	"                 others cannot write; after an upgrade, bind it again\n"
	"  --lsm LABEL    the AppArmor/SELinux label, exactly\n"
	"  --launched     bound to the agent's launch cgroup ([launch] cgroup/NAME/ **),\n"
	"                 which only `scopeholdctl run --agent NAME` enters; more\n"
	"                 specific than the uid alone (no --cgroup with it)\n"
	"  --require-secure-exec\n"
	"                 match only processes exec'd in secure mode (AT_SECURE: setuid,\n"
	"                 setgid or file capabilities), which ignore LD_PRELOAD and\n"
	"                 cannot be read or traced by their uid's other processes\n"
	"The most specific match wins; two equally specific matches deny (ambiguous).\n"
	"A traced process (TracerPid) matches no label binding, and an exe label holds\n"
	"only for callers in the host's user namespace.\n"
	"The uid is the hard boundary; labels divide one uid and are a boundary only\n"
	"where the caller cannot change them, and against the uid's other processes\n"
	"only under Yama ptrace_scope >= 1 (agent list shows each binding's strength).\n";

static int parse_uid(const char *s, uid_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (*s && !*end && !errno && v < (unsigned long)(uid_t)-1 && s[0] != '-') {
		*out = (uid_t)v;
		return 0;
	}
	struct passwd *pw = getpwnam(s);
	if (!pw)
		return -1;
	*out = pw->pw_uid;
	return 0;
}

/* One line on stderr when uid lies in a range that the subordinate-uid
 * file delegates to a user: that user can become the uid (newuidmap). */
static void warn_subuid(const char *file, uid_t uid)
{
	char line[512];
	FILE *f = fopen(file, "re");

	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		char user[256];
		unsigned long start, count;
		if (line[0] == '#' || sscanf(line, "%255[^:]:%lu:%lu", user, &start, &count) != 3)
			continue;
		if (uid >= start && uid - start < count) {
			fprintf(stderr, "scopeholdctl: warning: uid %u lies in the range %lu-%lu that %s "
				"delegates to user '%s', who can become it with newuidmap and read this "
				"agent's secrets; use a uid outside every range there\n", (unsigned)uid,
				start, start + count - 1, file, user);
			break;
		}
	}
	fclose(f);
}

static int agent_add(struct ctl *c, int argc, char **argv)
{
	struct acl_agent a;
	memset(&a, 0, sizeof a);
	const char *name = NULL, *project = NULL, *uid = NULL, *cg = NULL, *exe = NULL, *lsm = NULL;
	for (int i = 1; i < argc; i++) {
		int r;
		if ((r = ctl_opt("agent add", argc, argv, &i, "--project", &project)) ||
		    (r = ctl_opt("agent add", argc, argv, &i, "--uid", &uid)) ||
		    (r = ctl_opt("agent add", argc, argv, &i, "--cgroup", &cg)) ||
		    (r = ctl_opt("agent add", argc, argv, &i, "--exe", &exe)) ||
		    (r = ctl_opt("agent add", argc, argv, &i, "--lsm", &lsm))) {
			if (r < 0)
				return 2;
		} else if (!strcmp(argv[i], "--require-secure-exec")) {
			a.require_secure = 1;
		} else if (!strcmp(argv[i], "--launched")) {
			a.launched = 1;
		} else if (argv[i][0] == '-') {
			return ctl_usage("agent", "unknown option '%s'", argv[i]);
		} else if (name) {
			return ctl_usage("agent", "add takes one NAME");
		} else {
			name = argv[i];
		}
	}
	if (!name || !project || !uid)
		return ctl_usage("agent", "add needs NAME, --project P and --uid UID");
	if (parse_uid(uid, &a.uid) < 0)
		return ctl_fail("uid '%s' is neither a number nor a known user", uid);
	if (strlen(name) > VAULT_NAME_MAX || strlen(project) > VAULT_NAME_MAX)
		return ctl_fail("agent and project names are at most %d characters", VAULT_NAME_MAX);
	strcpy(a.name, name);
	strcpy(a.project, project);
	if ((cg && strlen(cg) >= sizeof a.cgroup) || (exe && strlen(exe) >= sizeof a.exe) ||
	    (lsm && strlen(lsm) >= sizeof a.lsm))
		return ctl_fail("a label given to agent add is too long");
	if (cg && a.launched)
		return ctl_usage("agent", "--launched binds the launch cgroup: give no --cgroup with it");
	if (cg) {
		a.labels |= ACL_L_CGROUP;
		strcpy(a.cgroup, cg);
	}
	if (a.launched) {
		struct vault_err le = { 0 };
		char dir[PATH_MAX];
		if (acl_launch_dir(c->cfg.launch_cgroup, name, dir, sizeof dir, &le) < 0)
			return ctl_verr(&le);
		if (snprintf(a.cgroup, sizeof a.cgroup, "%s/**", dir) >= (int)sizeof a.cgroup)
			return ctl_fail("[launch] cgroup is too long");
		a.labels |= ACL_L_CGROUP;
	}
	if (exe) {
		a.labels |= ACL_L_EXE;
		strcpy(a.exe, exe);
	}
	if (lsm) {
		a.labels |= ACL_L_LSM;
		strcpy(a.lsm, lsm);
	}
	struct vault_err e = { 0 };
	if (ctl_begin(c))
		return 1;
	int rc = ctl_end(c, acl_agent_add(c->db, &a, &e), &e, "agent.add", name);
	if (!rc)
		warn_subuid(c->cfg.subuid_file, a.uid);
	if (!rc && !c->json)
		printf("added agent %s (project %s, uid %u%s%s%s%s%s%s%s)\n", name, project, (unsigned)a.uid,
		       cg ? ", cgroup " : "", cg ? cg : "", exe ? ", exe " : "", exe ? exe : "",
		       lsm ? ", lsm " : "", lsm ? lsm : "", a.launched ? ", launched" : "");
	return rc;
}

/* "changed" when the executable bound at add time is no longer that file,
 * unchanged: what the resolver compares (device, inode, owner, size, ctime,
 * birth time). */
static const char *exe_state(const struct acl_agent *a)
{
	struct statx x;
	if (!(a->labels & ACL_L_EXE))
		return NULL;
	if (a->exe_id.ctime_ns == -1)
		return "unrecorded";
	if (statx(AT_FDCWD, a->exe, 0, STATX_BASIC_STATS | STATX_BTIME, &x) < 0)
		return "missing";
	int64_t ct = (int64_t)x.stx_ctime.tv_sec * 1000000000 + x.stx_ctime.tv_nsec;
	int64_t bt = (x.stx_mask & STATX_BTIME) ? (int64_t)x.stx_btime.tv_sec * 1000000000 + x.stx_btime.tv_nsec : 0;
	if ((uint64_t)makedev(x.stx_dev_major, x.stx_dev_minor) != a->exe_dev || x.stx_ino != a->exe_ino ||
	    x.stx_uid != a->exe_id.uid || x.stx_size != a->exe_id.size || ct != a->exe_id.ctime_ns ||
	    (bt && a->exe_id.btime_ns && bt != a->exe_id.btime_ns))
		return "changed";
	return "ok";
}

struct list_ctx {
	struct ctl *c;
	int first;
	int warned;
	int ptrace_scope;
};

static int agent_print(void *arg, const struct acl_agent *a)
{
	struct list_ctx *l = arg;
	const char *es = exe_state(a);
	char strength[160];
	acl_binding_strength(a, l->ptrace_scope, strength, sizeof strength);
	if (l->c->json) {
		printf("%s{\"name\":", l->first ? "" : ",");
		ctl_json_str(stdout, a->name);
		printf(",\"project\":");
		ctl_json_str(stdout, a->project);
		printf(",\"uid\":%u,\"enabled\":%s,\"cgroup\":", (unsigned)a->uid, a->enabled ? "true" : "false");
		ctl_json_str(stdout, (a->labels & ACL_L_CGROUP) ? a->cgroup : NULL);
		printf(",\"exe\":");
		ctl_json_str(stdout, (a->labels & ACL_L_EXE) ? a->exe : NULL);
		printf(",\"exe_state\":");
		ctl_json_str(stdout, es);
		printf(",\"exe_blake2b\":");
		ctl_json_str(stdout, (a->labels & ACL_L_EXE) && a->exe_hash[0] ? a->exe_hash : NULL);
		printf(",\"lsm\":");
		ctl_json_str(stdout, (a->labels & ACL_L_LSM) ? a->lsm : NULL);
		printf(",\"require_secure_exec\":%s,\"launched\":%s,\"strength\":",
		       a->require_secure ? "true" : "false", a->launched ? "true" : "false");
		ctl_json_str(stdout, strength);
		printf("}");
	} else {
		char labels[3 * ACL_LABEL_MAX] = "";
		size_t n = 0;
		if (a->labels & ACL_L_CGROUP)
			n += (size_t)snprintf(labels + n, sizeof labels - n, "cgroup=%s ", a->cgroup);
		if ((a->labels & ACL_L_EXE) && n < sizeof labels)
			n += (size_t)snprintf(labels + n, sizeof labels - n, "exe=%s ", a->exe);
		if ((a->labels & ACL_L_LSM) && n < sizeof labels)
			n += (size_t)snprintf(labels + n, sizeof labels - n, "lsm=%s ", a->lsm);
		if (a->require_secure && n < sizeof labels)
			n += (size_t)snprintf(labels + n, sizeof labels - n, "secure-exec ");
		if (a->launched && n < sizeof labels)
			snprintf(labels + n, sizeof labels - n, "launched");
		printf("%-24s %-20s %7u %-8s %-30s %s\n", a->name, a->project, (unsigned)a->uid,
		       a->enabled ? "enabled" : "disabled", strength, labels[0] ? labels : "-");
	}
	if (es && strcmp(es, "ok")) {
		fprintf(stderr, "scopeholdctl: warning: agent '%s': executable '%s' is %s since it was bound; "
			"it matches no process now (after an upgrade, bind it again: scopeholdctl agent set %s "
			"--exe %s)\n", a->name, a->exe,
			!strcmp(es, "changed") ? "a different or changed file" :
			!strcmp(es, "missing") ? "missing" : "not recorded", a->name, a->exe);
	}
	l->first = 0;
	return 0;
}

int ctl_agent(struct ctl *c, int argc, char **argv)
{
	struct vault_err e = { 0 };
	if (ctl_wants_help(argc, argv))
		return ctl_help(agent_usage);
	if (argc < 2)
		return ctl_usage("agent", "expected add, list, rm, disable or enable");
	const char *v = argv[1];
	if (!strcmp(v, "add"))
		return agent_add(c, argc - 1, argv + 1);
	if (!strcmp(v, "list")) {
		if (argc != 2)
			return ctl_usage("agent", "list takes no arguments");
		if (!ctl_db(c))
			return 1;
		struct list_ctx l = { c, 1, 0, acl_ptrace_scope(c->cfg.proc_root) };
		if (c->json)
			fputs("[", stdout);
		else
			printf("%-24s %-20s %7s %-8s %-30s %s\n", "AGENT", "PROJECT", "UID", "STATE", "STRENGTH",
			       "LABELS");
		int rc = acl_agent_each(c->db, agent_print, &l, &e);
		if (c->json)
			puts("]");
		return rc < 0 ? ctl_verr(&e) : 0;
	}
	if (argc != 3)
		return ctl_usage("agent", "%s takes one NAME", v);
	int rc;
	const char *event;
	if (ctl_begin(c))
		return 1;
	if (!strcmp(v, "rm")) {
		rc = acl_agent_rm(c->db, argv[2], &e);
		event = "agent.rm";
	} else if (!strcmp(v, "disable") || !strcmp(v, "enable")) {
		rc = acl_agent_enable(c->db, argv[2], !strcmp(v, "enable"), &e);
		event = !strcmp(v, "enable") ? "agent.enable" : "agent.disable";
	} else {
		vault_db_rollback(c->db);
		return ctl_usage("agent", "unknown action '%s'", v);
	}
	rc = ctl_end(c, rc, &e, event, argv[2]);
	if (!rc && !c->json)
		printf("%s agent %s\n", !strcmp(v, "rm") ? "removed" : !strcmp(v, "enable") ? "enabled" : "disabled",
		       argv[2]);
	return rc;
}

static const char grant_usage[] =
	"usage: scopeholdctl grant AGENT P/K\n"
	"       scopeholdctl revoke AGENT P/K\n\n"
	"A grant lets one agent read one secret, when the secret is also assigned to the\n"
	"agent's project and the agent is enabled. Both take effect at the next open.\n";

int ctl_grant(struct ctl *c, int argc, char **argv)
{
	int on = !strcmp(argv[0], "grant");
	if (ctl_wants_help(argc, argv))
		return ctl_help(grant_usage);
	if (argc != 3)
		return ctl_usage(argv[0], "expected AGENT P/K");
	char provider[VAULT_NAME_MAX + 1], key[VAULT_NAME_MAX + 1];
	struct vault_err e = { 0 };
	if (vault_name_check("agent", argv[1], &e) < 0 || vault_path_split(argv[2], provider, key, &e) < 0)
		return ctl_verr(&e);
	if (ctl_begin(c))
		return 1;
	char what[3 * VAULT_NAME_MAX + 8];
	snprintf(what, sizeof what, "%s -> %s", argv[2], argv[1]);
	int rc = ctl_end(c, acl_grant(c->db, argv[1], provider, key, on, &e), &e, on ? "grant" : "revoke", what);
	if (rc)
		return rc;
	if (!c->json)
		printf("%s %s %s %s\n", on ? "granted" : "revoked", argv[2], on ? "to" : "from", argv[1]);
	if (on) { /* say at once when the grant is not yet effective */
		struct acl_agent a;
		struct vault_secret s;
		if (acl_agent_get(c->db, argv[1], &a, &e) == 1) {
			enum acl_decision d = acl_check(c->db, &a, provider, key, &s, &e);
			if (d != ACL_ALLOW)
				fprintf(stderr, "scopeholdctl: warning: not effective yet: %s%s%s\n", acl_decision_str(d),
					d == ACL_NOT_ASSIGNED ? "; run: scopeholdctl secret assign " : "",
					d == ACL_NOT_ASSIGNED ? argv[2] : "");
		}
	}
	return 0;
}

static const char grants_usage[] =
	"usage: scopeholdctl grants [--agent A] [--json]\n\n"
	"List direct grants, and whether each is effective now (assigned to the agent's\n"
	"project, agent enabled).\n";

int ctl_grants(struct ctl *c, int argc, char **argv)
{
	const char *agent = NULL;
	if (ctl_wants_help(argc, argv))
		return ctl_help(grants_usage);
	for (int i = 1; i < argc; i++) {
		int r = ctl_opt("grants", argc, argv, &i, "--agent", &agent);
		if (r < 0)
			return 2;
		if (!r)
			return ctl_usage("grants", "unexpected argument '%s'", argv[i]);
	}
	struct vault_err e = { 0 };
	if (!ctl_db(c))
		return 1;
	if (agent) {
		struct acl_agent a;
		int found = acl_agent_get(c->db, agent, &a, &e);
		if (found <= 0)
			return found < 0 ? ctl_verr(&e) : ctl_fail("agent '%s' does not exist", agent);
	}
	sqlite3_stmt *st = vault_db_stmt(c->db,
		"SELECT a.name, p.name || '/' || s.key, a.enabled,"
		" EXISTS (SELECT 1 FROM assignments x WHERE x.secret_id = s.id AND x.project_id = a.project_id)"
		" FROM grants g JOIN agents a ON a.id = g.agent_id JOIN secrets s ON s.id = g.secret_id"
		" JOIN providers p ON p.id = s.provider_id"
		" WHERE ?1 IS NULL OR a.name = ?1 ORDER BY a.name, p.name, s.key", &e);
	if (!st)
		return ctl_verr(&e);
	if (agent)
		sqlite3_bind_text(st, 1, agent, -1, SQLITE_STATIC);
	if (c->json)
		fputs("[", stdout);
	else
		printf("%-24s %-40s %s\n", "AGENT", "SECRET", "EFFECTIVE");
	int rc, first = 1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *an = (const char *)sqlite3_column_text(st, 0);
		const char *sk = (const char *)sqlite3_column_text(st, 1);
		int enabled = sqlite3_column_int(st, 2), assigned = sqlite3_column_int(st, 3);
		const char *eff = !assigned ? "no: not assigned to the agent's project"
				 : !enabled ? "no: agent disabled" : "yes";
		if (c->json) {
			printf("%s{\"agent\":", first ? "" : ",");
			ctl_json_str(stdout, an);
			printf(",\"secret\":");
			ctl_json_str(stdout, sk);
			printf(",\"effective\":%s,\"assigned\":%s,\"enabled\":%s}", assigned && enabled ? "true" : "false",
			       assigned ? "true" : "false", enabled ? "true" : "false");
		} else {
			printf("%-24s %-40s %s\n", an, sk, eff);
		}
		first = 0;
	}
	sqlite3_reset(st);
	if (c->json)
		puts("]");
	return rc == SQLITE_DONE ? 0 : ctl_fail("listing grants failed");
}
