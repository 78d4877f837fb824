/* cmd_acl.c - scopeholdctl project, agent, grant, revoke and grants: who may
 * read what. Every change is one transaction with its audit row. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
	if (!rc && c->json)
		ctl_json_ok(add ? "project.add" : "project.rm", argv[2], NULL);
	else if (!rc)
		printf("%s project %s\n", add ? "added" : "removed", argv[2]);
	return rc;
}

static const char agent_usage[] =
	"usage: scopeholdctl agent add NAME --project P --uid UID [--cgroup GLOB] [--exe PATH] [--lsm LABEL]\n"
	"                              [--launched] [--require-secure-exec] [--allow-overlap]\n"
	"       scopeholdctl agent set NAME [--project P] [--uid UID] [--cgroup GLOB|--no-cgroup]\n"
	"                              [--exe PATH|--no-exe] [--lsm LABEL|--no-lsm] [--allow-overlap]\n"
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
	"                 others cannot write; after an upgrade, bind it again (agent set)\n"
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
	"add and set refuse a binding as specific as another agent's on the same uid\n"
	"that can match the same callers (it would lock both out), naming the other\n"
	"agent, unless --allow-overlap. set changes only what it is given and keeps\n"
	"the agent's grants; --no-cgroup, --no-exe, --no-lsm remove a label.\n"
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

/* The options of agent add and agent set. */
struct agent_opts {
	const char *name, *project, *uid, *label[3];
	unsigned drop;     /* ACL_L_* given as --no-LABEL */
	int allow_overlap;
	int launched, require_secure; /* agent add only */
};

static const char *const label_opt[3] = { "--cgroup", "--exe", "--lsm" };
static const char *const label_no[3] = { "--no-cgroup", "--no-exe", "--no-lsm" };
static const unsigned label_bit[3] = { ACL_L_CGROUP, ACL_L_EXE, ACL_L_LSM };

/* Parse argv (argv[0] "add" or "set") into *o and a; *what gets the
 * ACL_SET_* / ACL_L_* bits given. Returns 0, or the exit status. */
static int agent_parse(int argc, char **argv, struct agent_opts *o, struct acl_agent *a, unsigned *what)
{
	int set = !strcmp(argv[0], "set");
	const char *verb = set ? "agent set" : "agent add";
	memset(o, 0, sizeof *o);
	memset(a, 0, sizeof *a);
	for (int i = 1; i < argc; i++) {
		int r = 0, k;
		if ((r = ctl_opt(verb, argc, argv, &i, "--project", &o->project)) ||
		    (r = ctl_opt(verb, argc, argv, &i, "--uid", &o->uid))) {
			if (r < 0)
				return 2;
			continue;
		}
		for (k = 0; k < 3 && !r; k++)
			r = ctl_opt(verb, argc, argv, &i, label_opt[k], &o->label[k]);
		if (r < 0)
			return 2;
		if (r)
			continue;
		for (k = 0; k < 3 && strcmp(argv[i], label_no[k]); k++)
			;
		if (k < 3 && set) {
			if (o->drop & label_bit[k])
				return ctl_usage(verb, "option %s is given twice", label_no[k]);
			o->drop |= label_bit[k];
		} else if (!strcmp(argv[i], "--allow-overlap")) {
			o->allow_overlap = 1;
		} else if (!set && !strcmp(argv[i], "--launched")) {
			o->launched = 1;
		} else if (!set && !strcmp(argv[i], "--require-secure-exec")) {
			o->require_secure = 1;
		} else if (argv[i][0] == '-') {
			return ctl_usage(verb, "unknown option '%s'", argv[i]);
		} else if (o->name) {
			return ctl_usage(verb, "takes one NAME");
		} else {
			o->name = argv[i];
		}
	}
	if (!o->name || (!set && (!o->project || !o->uid)))
		return ctl_usage(verb, set ? "needs NAME" : "needs NAME, --project P and --uid UID");
	*what = (o->project ? ACL_SET_PROJECT : 0) | (o->uid ? ACL_SET_UID : 0) | o->drop;
	if (o->uid && parse_uid(o->uid, &a->uid) < 0)
		return ctl_fail("uid '%s' is neither a number nor a known user", o->uid);
	if (strlen(o->name) > VAULT_NAME_MAX || (o->project && strlen(o->project) > VAULT_NAME_MAX))
		return ctl_fail("agent and project names are at most %d characters", VAULT_NAME_MAX);
	strcpy(a->name, o->name);
	if (o->project)
		strcpy(a->project, o->project);
	char *dst[3] = { a->cgroup, a->exe, a->lsm };
	size_t cap[3] = { sizeof a->cgroup, sizeof a->exe, sizeof a->lsm };
	for (int k = 0; k < 3; k++) {
		if (!o->label[k])
			continue;
		if (o->drop & label_bit[k])
			return ctl_usage(verb, "%s and %s contradict each other", label_opt[k], label_no[k]);
		if (strlen(o->label[k]) >= cap[k])
			return ctl_fail("%s '%.40s...' is too long (at most %zu bytes)", label_opt[k], o->label[k],
					cap[k] - 1);
		a->labels |= label_bit[k];
		*what |= label_bit[k];
		strcpy(dst[k], o->label[k]);
	}
	if (set && !*what)
		return ctl_usage(verb, "nothing to change: give --project, --uid, or a label option");
	return 0;
}

/* "uid=1001 cgroup=/x exe=- lsm=- project=p": a binding for messages and
 * the audit row. */
static void describe(const struct acl_agent *a, char *buf, size_t len)
{
	snprintf(buf, len, "project=%s uid=%u cgroup=%s exe=%s lsm=%s", a->project, (unsigned)a->uid,
		 (a->labels & ACL_L_CGROUP) ? a->cgroup : "-", (a->labels & ACL_L_EXE) ? a->exe : "-",
		 (a->labels & ACL_L_LSM) ? a->lsm : "-");
}

/* Inside the change's transaction: refuse (-1 with e) when agent name's
 * binding now overlaps another agent's, and allow is 0. */
static int overlap_check(struct ctl *c, const char *name, int allow, struct vault_err *e)
{
	struct acl_agent a, other;
	int r = acl_agent_get(c->db, name, &a, e);
	if (r <= 0)
		return r < 0 ? -1 : vault_fail(e, VAULT_ENOENT, "agent '%s' does not exist", name);
	if (allow)
		return 0;
	r = acl_agent_overlap(c->db, &a, &other, e);
	if (r == 1)
		return vault_fail(e, VAULT_EEXIST, "agent '%s' would be exactly as specific as agent '%s' on uid %u "
				  "(a caller matching both would be denied as ambiguous); add a label that tells "
				  "them apart, or pass --allow-overlap", name, other.name, (unsigned)a.uid);
	return r;
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

static int agent_change(struct ctl *c, int argc, char **argv)
{
	struct agent_opts o;
	struct acl_agent a, before, after;
	unsigned what = 0;
	int set = !strcmp(argv[0], "set");
	int rc = agent_parse(argc, argv, &o, &a, &what);
	if (rc)
		return rc;
	struct vault_err e = { 0 };
	a.require_secure = o.require_secure;
	if (o.launched) {
		char dir[PATH_MAX];
		if (o.label[0])
			return ctl_usage("agent add", "--launched binds the launch cgroup: give no --cgroup with it");
		if (acl_launch_dir(c->cfg.launch_cgroup, o.name, dir, sizeof dir, &e) < 0)
			return ctl_verr(&e);
		if (snprintf(a.cgroup, sizeof a.cgroup, "%s/**", dir) >= (int)sizeof a.cgroup)
			return ctl_fail("[launch] cgroup is too long");
		a.labels |= ACL_L_CGROUP;
		a.launched = 1;
	}
	if (ctl_begin(c))
		return 1;
	rc = set ? acl_agent_set(c->db, o.name, &a, what, &before, &e) : acl_agent_add(c->db, &a, &e);
	if (rc == 0)
		rc = overlap_check(c, o.name, o.allow_overlap, &e);
	char was[3 * ACL_LABEL_MAX], now[3 * ACL_LABEL_MAX], why[6 * ACL_LABEL_MAX + 32] = "";
	if (rc == 0 && acl_agent_get(c->db, o.name, &after, &e) == 1) {
		describe(&after, now, sizeof now);
		if (set) {
			describe(&before, was, sizeof was);
			snprintf(why, sizeof why, "before: %s; after: %s", was, now);
		} else {
			snprintf(why, sizeof why, "%s", now);
		}
	}
	rc = ctl_end_why(c, rc, &e, set ? "agent.set" : "agent.add", o.name, why);
	if (rc)
		return rc;
	if (o.uid)
		warn_subuid(c->cfg.subuid_file, a.uid);
	if (c->json) {
		printf("{\"ok\":true,\"action\":\"%s\",\"target\":", set ? "agent.set" : "agent.add");
		ctl_json_str(stdout, o.name);
		printf(",\"before\":");
		ctl_json_str(stdout, set ? was : NULL);
		printf(",\"after\":");
		ctl_json_str(stdout, now);
		puts("}");
	} else if (set) {
		printf("changed agent %s: %s (was %s); grants kept\n", o.name, now, was);
	} else {
		printf("added agent %s (%s)\n", o.name, now);
	}
	return 0;
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
	struct acl_agent other;
	struct vault_err e = { 0 };
	const char *amb = acl_agent_overlap(l->c->db, a, &other, &e) == 1 ? other.name : NULL;
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
		ctl_json_hex(stdout, "exe", (a->labels & ACL_L_EXE) ? a->exe : NULL);
		printf(",\"exe_state\":");
		ctl_json_str(stdout, es);
		printf(",\"exe_blake2b\":");
		ctl_json_str(stdout, (a->labels & ACL_L_EXE) && a->exe_hash[0] ? a->exe_hash : NULL);
		printf(",\"lsm\":");
		ctl_json_str(stdout, (a->labels & ACL_L_LSM) ? a->lsm : NULL);
		printf(",\"ambiguous_with\":");
		ctl_json_str(stdout, amb);
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
		printf("%-24s %-20s %7u %-8s %-30s %s%s%s\n", a->name, a->project, (unsigned)a->uid,
		       a->enabled ? "enabled" : "disabled", strength, labels[0] ? labels : "-",
		       amb ? "  AMBIGUOUS with " : "", amb ? amb : "");
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
		return ctl_usage("agent", "expected add, set, list, rm, disable or enable");
	const char *v = argv[1];
	if (!strcmp(v, "add") || !strcmp(v, "set"))
		return agent_change(c, argc - 1, argv + 1);
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
	if (!rc && c->json)
		ctl_json_ok(event, argv[2], NULL);
	else if (!rc)
		printf("%s agent %s\n", !strcmp(v, "rm") ? "removed" : !strcmp(v, "enable") ? "enabled" : "disabled",
		       argv[2]);
	return rc;
}

static const char grant_usage[] =
	"usage: scopeholdctl grant AGENT P/K [--ttl DURATION | --until TIME]\n"
	"       scopeholdctl revoke AGENT P/K\n\n"
	"A grant lets one agent read one secret, when the secret is also assigned to the\n"
	"agent's project and the agent is enabled. Both take effect at the next open;\n"
	"files already open keep reading. Repeating either is not an error (exit 0,\n"
	"nothing recorded). --ttl 90s|15m|8h|7d or --until TIME (as audit list --since\n"
	"takes it: YYYY-MM-DD[THH:MM:SS][Z] UTC, or seconds since 1970) makes the grant\n"
	"expire: from then on the rule no longer holds, at the next lookup or open.\n"
	"Granting again replaces the expiry (no option: never expires).\n";

int ctl_grant(struct ctl *c, int argc, char **argv)
{
	int on = !strcmp(argv[0], "grant");
	if (ctl_wants_help(argc, argv))
		return ctl_help(grant_usage);
	const char *agent = NULL, *pk = NULL, *ttl = NULL, *until = NULL;
	for (int i = 1; i < argc; i++) {
		int r = 0;
		if (on && ((r = ctl_opt(argv[0], argc, argv, &i, "--ttl", &ttl)) ||
			   (r = ctl_opt(argv[0], argc, argv, &i, "--until", &until)))) {
			if (r < 0)
				return 2;
		} else if (argv[i][0] == '-') {
			return ctl_usage(argv[0], "unknown option '%s'", argv[i]);
		} else if (!agent) {
			agent = argv[i];
		} else if (!pk) {
			pk = argv[i];
		} else {
			return ctl_usage(argv[0], "expected AGENT P/K");
		}
	}
	if (!pk)
		return ctl_usage(argv[0], "expected AGENT P/K");
	if (ttl && until)
		return ctl_usage(argv[0], "give --ttl or --until, not both");
	int64_t now = vault_now_ns(), expires = 0;
	if (ttl && (expires = ctl_parse_duration(ttl)) < 0)
		return ctl_usage(argv[0], "--ttl '%s' is not a duration like 90s, 15m, 8h or 7d", ttl);
	if (ttl)
		expires += now;
	if (until && (expires = ctl_parse_time(until)) < 0)
		return ctl_usage(argv[0], "--until '%s' is not a time (YYYY-MM-DD[THH:MM:SS][Z], UTC, or seconds since 1970)",
				 until);
	if (until && expires <= now)
		return ctl_fail("--until '%s' is in the past; a grant must expire after now", until);
	char provider[VAULT_NAME_MAX + 1], key[VAULT_NAME_MAX + 1];
	struct vault_err e = { 0 };
	if (vault_name_check("agent", agent, &e) < 0 || vault_path_split(pk, provider, key, &e) < 0)
		return ctl_verr(&e);
	if (ctl_begin(c))
		return 1;
	char what[3 * VAULT_NAME_MAX + 8], when[40] = "", why[64] = "";
	snprintf(what, sizeof what, "%s -> %s", pk, agent);
	if (expires) {
		ctl_format_time(expires, when, sizeof when);
		snprintf(why, sizeof why, "expires %s", when);
	}
	int rc = on ? acl_grant_until(c->db, agent, provider, key, expires, &e)
		    : acl_grant(c->db, agent, provider, key, 0, &e);
	if (rc == 1) { /* already so: nothing changes, nothing recorded */
		vault_db_rollback(c->db);
		if (c->json)
			ctl_json_ok(argv[0], what, "\"changed\":false");
		else
			printf("%s: %s\n", on ? "already granted" : "not granted", e.msg);
		return 0;
	}
	rc = ctl_end_why(c, rc, &e, on ? "grant" : "revoke", what, why[0] ? why : NULL);
	if (rc)
		return rc;
	if (c->json) {
		ctl_json_ok(argv[0], what, "\"changed\":true,\"expires\":%s%s%s", when[0] ? "\"" : "",
			    when[0] ? when : "null", when[0] ? "\"" : "");
	} else {
		printf("%s %s %s %s%s%s\n", on ? "granted" : "revoked", pk, on ? "to" : "from", agent,
		       when[0] ? ", until " : "", when);
	}
	if (on) { /* say at once when the grant is not yet effective */
		struct acl_agent a;
		struct vault_secret s;
		if (acl_agent_get(c->db, agent, &a, &e) == 1) {
			enum acl_decision d = acl_check(c->db, &a, provider, key, &s, &e);
			if (d != ACL_ALLOW)
				fprintf(stderr, "scopeholdctl: warning: not effective yet: %s%s%s\n", acl_decision_str(d),
					d == ACL_NOT_ASSIGNED ? "; run: scopeholdctl secret assign " : "",
					d == ACL_NOT_ASSIGNED ? pk : "");
		}
	}
	return 0;
}

static const char grants_usage[] =
	"usage: scopeholdctl grants [--agent A] [--json]\n\n"
	"List direct grants, when each expires, and whether it is effective now\n"
	"(not expired, assigned to the agent's project, agent enabled).\n";

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
		" EXISTS (SELECT 1 FROM assignments x WHERE x.secret_id = s.id AND x.project_id = a.project_id),"
		" g.expires_ns"
		" FROM grants g JOIN agents a ON a.id = g.agent_id JOIN secrets s ON s.id = g.secret_id"
		" JOIN providers p ON p.id = s.provider_id"
		" WHERE ?1 IS NULL OR a.name = ?1 ORDER BY a.name, p.name, s.key", &e);
	if (!st)
		return ctl_verr(&e);
	if (agent)
		sqlite3_bind_text(st, 1, agent, -1, SQLITE_STATIC);
	int64_t now = vault_now_ns();
	if (c->json)
		fputs("[", stdout);
	else
		printf("%-24s %-40s %-24s %s\n", "AGENT", "SECRET", "EXPIRES", "EFFECTIVE");
	int rc, first = 1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *an = (const char *)sqlite3_column_text(st, 0);
		const char *sk = (const char *)sqlite3_column_text(st, 1);
		int enabled = sqlite3_column_int(st, 2), assigned = sqlite3_column_int(st, 3);
		int64_t exp = sqlite3_column_type(st, 4) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 4);
		int expired = exp && exp <= now;
		char when[40] = "", eff[96];
		if (exp)
			ctl_format_time(exp, when, sizeof when);
		snprintf(eff, sizeof eff, "%s", expired ? "no: expired" : !assigned ? "no: not assigned to the agent's project"
			 : !enabled ? "no: agent disabled" : "yes");
		if (c->json) {
			printf("%s{\"agent\":", first ? "" : ",");
			ctl_json_str(stdout, an);
			printf(",\"secret\":");
			ctl_json_str(stdout, sk);
			printf(",\"effective\":%s,\"assigned\":%s,\"enabled\":%s,\"expired\":%s,\"expires\":",
			       assigned && enabled && !expired ? "true" : "false", assigned ? "true" : "false",
			       enabled ? "true" : "false", expired ? "true" : "false");
			ctl_json_str(stdout, exp ? when : NULL);
			fputc('}', stdout);
		} else {
			printf("%-24s %-40s %-24s %s\n", an, sk, exp ? when : "never", eff);
		}
		first = 0;
	}
	sqlite3_reset(st);
	if (c->json)
		puts("]");
	return rc == SQLITE_DONE ? 0 : ctl_fail("listing grants failed");
}
