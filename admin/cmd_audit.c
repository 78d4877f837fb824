/* cmd_audit.c - scopeholdctl audit list, verify, prune and export: reading,
 * checking and trimming the hash-chained audit trail. Rows hold names, ids,
 * numbers and the caller's labels, never a value. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/ctl.h"

#define LIST_USAGE \
	"usage: scopeholdctl audit list [--agent A] [--secret P/K] [--result R] [--since TIME]\n" \
	"                               [--until TIME] [--limit N] [--json] [--follow]\n"
#define VERIFY_USAGE "       scopeholdctl audit verify [--json]\n"
#define PRUNE_USAGE "       scopeholdctl audit prune --before TIME\n"
#define EXPORT_USAGE "       scopeholdctl audit export [--format jsonl] [--after ID]\n"

#define TIME_HELP \
	"TIME: seconds since the epoch, YYYY-MM-DD[THH:MM:SS][Z] (UTC), or relative: -30m, -2h, -7d.\n"

static const char audit_usage[] =
	LIST_USAGE VERIFY_USAGE PRUNE_USAGE EXPORT_USAGE
	"\n"
	"The audit trail has one row per open (granted or not), per lookup of a secret that\n"
	"exists but is not granted, and per admin change. Results:\n"
	"  granted         the open was allowed; the handle reads the version shown\n"
	"  denied          no effective grant (opens), or a lookup of an ungranted secret;\n"
	"                  repeats of one process and path within a second are one row\n"
	"                  whose count says how many\n"
	"  unknown-caller  no agent binding matched the caller (uid and labels)\n"
	"  ambiguous       two equally specific bindings matched: denied\n"
	"  error           /proc or the database could not be read: denied\n"
	"  ok, failed      admin changes, with the admin's uid and sudo uid\n"
	"Each row stores hash = BLAKE2b-256(previous row's hash || the row), so an edited,\n"
	"deleted, inserted or reordered row is found by `audit verify`. `audit prune` deletes\n"
	"old rows and appends an anchor row recording where the trail now starts.\n"
	"Never a value, a hash of a value, or a key.\n\n" TIME_HELP;

static const char list_usage[] =
	LIST_USAGE "\n"
	"Rows oldest first; --limit N shows the newest N. --secret matches the path\n"
	"PROVIDER/KEY (opens, lookups and admin changes of that secret). --follow prints\n"
	"the last 10 matching rows (or --limit) and then each new row as it is committed,\n"
	"until interrupted; with --json it prints one JSON object per line.\n"
	"Results: granted, denied, unknown-caller, ambiguous, error, ok, failed.\n" TIME_HELP;

static const char verify_usage[] =
	"usage: scopeholdctl audit verify [--json]\n\n"
	"Walk the hash chain from the first row (or the latest prune anchor). Exit 0 and\n"
	"print the row count when intact; exit 1 naming the first row that was edited,\n"
	"deleted, inserted or moved. The last row's hash is printed too: keep a copy\n"
	"elsewhere, and a rewritten chain is caught as well.\n";

static const char prune_usage[] =
	"usage: scopeholdctl audit prune --before TIME\n\n"
	"Delete the rows older than TIME (from the oldest up to the first row at or after\n"
	"TIME), and append an anchor row recording the id and hash the trail now starts\n"
	"from, so that `audit verify` still verifies.\n" TIME_HELP;

static const char export_usage[] =
	"usage: scopeholdctl audit export [--format jsonl] [--after ID]\n\n"
	"Print every row (with id > ID) as one JSON object per line, all fields, with\n"
	"prev_hash and hash in hex, for shipping to a SIEM. The hash of each row can be\n"
	"recomputed from the fields (see acl/audit.h for the encoding).\n";

static const char *const results[] = {
	"granted", "denied", "unknown-caller", "ambiguous", "error", "ok", "failed",
};

/* ---- output --------------------------------------------------------------- */

/* Text output: control characters (a cgroup path can hold a newline) as '?'. */
static void put_text(const char *s)
{
	if (!s) {
		fputc('-', stdout);
		return;
	}
	if (!*s) {
		fputs("\"\"", stdout);
		return;
	}
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, stdout);
}

static void put_col(const char *s, int width)
{
	int n = 0;
	if (s)
		n = *s ? (int)strlen(s) : 2;
	else
		n = 1;
	put_text(s);
	for (; n < width; n++)
		fputc(' ', stdout);
	fputc(' ', stdout);
}

static void put_num(int64_t v, int width, int none)
{
	if (v == none)
		printf("%*s ", width, "-");
	else
		printf("%*" PRId64 " ", width, v);
}

static void text_header(void)
{
	printf("%-24s %-15s %-14s %-16s %6s %7s %-28s %4s %s\n", "TIME", "EVENT", "RESULT", "AGENT",
	       "UID", "PID", "PATH", "VER", "REASON");
}

static void text_row(const struct audit_row *r)
{
	char t[32];
	ctl_format_time(r->time_ns, t, sizeof t);
	printf("%-24s ", t);
	put_col(r->event, 15);
	put_col(r->result, 14);
	put_col(r->agent, 16);
	put_num(r->uid, 6, -1);
	put_num(r->pid, 7, -1);
	put_col(r->path, 28);
	put_num(r->version, 4, 0);
	put_text(r->reason);
	if (r->count > 1)
		printf(" (x%" PRId64 ")", r->count);
	if (r->sudo_uid >= 0)
		printf(" sudo_uid=%" PRId64, r->sudo_uid);
	const char *names[] = { "exe", "cgroup", "lsm" }, *vals[] = { r->exe, r->cgroup, r->lsm };
	for (int i = 0; i < 3; i++) {
		if (vals[i]) {
			printf(" %s=", names[i]);
			put_text(vals[i]);
		}
	}
	fputc('\n', stdout);
}

static void json_row(int64_t id, const struct audit_row *r, const uint8_t *prev, const uint8_t *hash)
{
	char t[32];
	ctl_format_time(r->time_ns, t, sizeof t);
	printf("{\"id\":%" PRId64 ",\"time\":\"%s\",\"time_ns\":%" PRId64 ",\"event\":", id, t, r->time_ns);
	ctl_json_str(stdout, r->event);
	fputs(",\"result\":", stdout);
	ctl_json_str(stdout, r->result);
	fputs(",\"reason\":", stdout);
	ctl_json_str(stdout, r->reason);
	ctl_json_hex(stdout, "reason", r->reason);
	fputs(",\"agent\":", stdout);
	ctl_json_str(stdout, r->agent);
	printf(",\"uid\":%" PRId64 ",\"gid\":%" PRId64 ",\"pid\":%" PRId64 ",\"tgid\":%" PRId64
	       ",\"sudo_uid\":%" PRId64 ",\"exe\":", r->uid, r->gid, r->pid, r->tgid, r->sudo_uid);
	ctl_json_str(stdout, r->exe);
	ctl_json_hex(stdout, "exe", r->exe);
	fputs(",\"cgroup\":", stdout);
	ctl_json_str(stdout, r->cgroup);
	ctl_json_hex(stdout, "cgroup", r->cgroup);
	fputs(",\"lsm\":", stdout);
	ctl_json_str(stdout, r->lsm);
	ctl_json_hex(stdout, "lsm", r->lsm);
	fputs(",\"path\":", stdout);
	ctl_json_str(stdout, r->path);
	/* 0 means "none" in the row: null, not a number that does not apply */
	if (r->secret_id)
		printf(",\"secret_id\":%" PRId64, r->secret_id);
	else
		fputs(",\"secret_id\":null", stdout);
	if (r->version)
		printf(",\"version\":%" PRId64, r->version);
	else
		fputs(",\"version\":null", stdout);
	printf(",\"count\":%" PRId64, r->count);
	if (prev && hash) {
		char hx[2 * AUDIT_HASH_BYTES + 1];
		for (int i = 0; i < AUDIT_HASH_BYTES; i++)
			sprintf(hx + 2 * i, "%02x", prev[i]);
		printf(",\"prev_hash\":\"%s\"", hx);
		for (int i = 0; i < AUDIT_HASH_BYTES; i++)
			sprintf(hx + 2 * i, "%02x", hash[i]);
		printf(",\"hash\":\"%s\"", hx);
	}
	fputc('}', stdout);
}

/* ---- list ----------------------------------------------------------------- */

struct lister {
	int json;      /* 1: array, 2: one object per line (--follow) */
	int64_t n;     /* rows printed */
	int64_t last;  /* id of the last row printed */
};

static int list_row(void *arg, int64_t id, const struct audit_row *row)
{
	struct lister *l = arg;
	if (l->json == 1)
		fputs(l->n ? ",\n" : "\n", stdout);
	if (l->json) {
		json_row(id, row, NULL, NULL);
		if (l->json == 2)
			fputc('\n', stdout);
	} else {
		text_row(row);
	}
	l->n++;
	l->last = id;
	return ferror(stdout) != 0;
}

static volatile sig_atomic_t stop_follow;

static void on_signal(int sig)
{
	(void)sig;
	stop_follow = 1;
}

/* Poll for new rows every 200 ms until SIGINT/SIGTERM or stdout goes away. */
static int follow(struct ctl *c, struct audit_filter *f, struct lister *l)
{
	struct sigaction sa, old_int, old_term, old_pipe;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal; /* no SA_RESTART: poll returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, &old_pipe); /* a closed pipe: write fails, we stop */
	int ret = 0;
	f->limit = 0;
	while (!stop_follow) {
		if (fflush(stdout) == EOF || ferror(stdout))
			break; /* the reader went away */
		struct pollfd p = { .fd = STDOUT_FILENO, .events = 0 };
		int n = poll(&p, 1, 200);
		if (n > 0 && (p.revents & (POLLERR | POLLHUP | POLLNVAL)))
			break;
		if (stop_follow)
			break;
		struct vault_err e = { 0 };
		f->after_id = l->last;
		if (audit_query(c->adb, f, list_row, l, &e) < 0) {
			ret = ctl_verr(&e);
			break;
		}
	}
	fflush(stdout);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGPIPE, &old_pipe, NULL);
	return ret;
}

static int parse_count(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v < 0)
		return -1;
	*out = v;
	return 0;
}

static int audit_list(struct ctl *c, int argc, char **argv)
{
	struct audit_filter f;
	memset(&f, 0, sizeof f);
	const char *since = NULL, *until = NULL, *limit = NULL;
	int follow_on = 0;
	for (int i = 1; i < argc; i++) {
		int r;
		if ((r = ctl_opt("audit", argc, argv, &i, "--agent", &f.agent)) ||
		    (r = ctl_opt("audit", argc, argv, &i, "--secret", &f.secret)) ||
		    (r = ctl_opt("audit", argc, argv, &i, "--result", &f.result)) ||
		    (r = ctl_opt("audit", argc, argv, &i, "--since", &since)) ||
		    (r = ctl_opt("audit", argc, argv, &i, "--until", &until)) ||
		    (r = ctl_opt("audit", argc, argv, &i, "--limit", &limit))) {
			if (r < 0)
				return 2;
		} else if (!strcmp(argv[i], "--follow") || !strcmp(argv[i], "-f")) {
			follow_on = 1;
		} else if (!strcmp(argv[i], "--json")) {
			c->json = 1;
		} else {
			return ctl_usage("audit", "list: unexpected argument '%s'", argv[i]);
		}
	}
	struct vault_err e = { 0 };
	if (f.agent && vault_name_check("agent", f.agent, &e) < 0)
		return ctl_usage("audit", "list --agent: %s", e.msg);
	char provider[VAULT_NAME_MAX + 1], key[VAULT_NAME_MAX + 1];
	if (f.secret && vault_path_split(f.secret, provider, key, &e) < 0)
		return ctl_usage("audit", "list --secret: %s", e.msg);
	if (f.result) {
		size_t k = 0;
		while (k < sizeof results / sizeof *results && strcmp(f.result, results[k]))
			k++;
		if (k == sizeof results / sizeof *results)
			return ctl_usage("audit", "list --result '%s' is not one of granted, denied, "
					 "unknown-caller, ambiguous, error, ok, failed", f.result);
	}
	if (since && (f.since_ns = ctl_parse_time(since)) < 0)
		return ctl_usage("audit", "list --since: cannot read the time '%s'", since);
	if (until && (f.until_ns = ctl_parse_time(until)) < 0)
		return ctl_usage("audit", "list --until: cannot read the time '%s'", until);
	if (limit && (parse_count(limit, &f.limit) < 0 || f.limit == 0))
		return ctl_usage("audit", "list --limit needs a positive number, not '%s'", limit);
	if (follow_on && !limit)
		f.limit = 10;
	if (!ctl_audit_db(c))
		return 1;

	struct lister l = { .json = c->json ? (follow_on ? 2 : 1) : 0 };
	if (l.json == 1)
		fputs("[", stdout);
	else if (!l.json)
		text_header();
	int rc = audit_query(c->adb, &f, list_row, &l, &e);
	if (l.json == 1)
		fputs(l.n ? "\n]\n" : "]\n", stdout);
	if (rc < 0)
		return ctl_verr(&e);
	if (follow_on)
		return follow(c, &f, &l);
	if (fflush(stdout) == EOF)
		return ctl_fail("cannot write the rows: %s", strerror(errno));
	return 0;
}

/* ---- verify, prune, export ------------------------------------------------ */

static int audit_verify_cmd(struct ctl *c, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			c->json = 1;
		else
			return ctl_usage("audit", "verify: unexpected argument '%s'", argv[i]);
	}
	if (!ctl_audit_db(c))
		return 1;
	struct audit_verify_result r;
	struct vault_err e = { 0 };
	if (audit_verify(c->adb, &r, &e) < 0)
		return ctl_verr(&e);
	if (!r.broken && r.rows == 0) { /* init writes the first row */
		r.broken = 1;
		r.bad_id = 0;
		snprintf(r.what, sizeof r.what, "the store is empty; every trail starts with its init row, "
			 "so it was emptied or replaced");
	}
	/* Without a prune anchor the trail starts with init's row: else the
	 * store was started anew under a vault that is older. */
	sqlite3_stmt *st = !r.broken && !r.anchor_id ?
		vault_db_stmt(c->adb, "SELECT event FROM audit WHERE id = ?", &e) : NULL;
	if (st) {
		sqlite3_bind_int64(st, 1, r.first_id);
		const char *ev = sqlite3_step(st) == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
		if (!ev || strcmp(ev, "init")) {
			r.broken = 1;
			r.bad_id = r.first_id;
			snprintf(r.what, sizeof r.what, "the trail starts with a '%.32s' row, not with its init row or a "
				 "prune anchor: the store was emptied or started anew", ev ? ev : "?");
		}
		sqlite3_reset(st);
	}
	char hx[2 * AUDIT_HASH_BYTES + 1] = "";
	for (int i = 0; i < AUDIT_HASH_BYTES && r.rows; i++)
		sprintf(hx + 2 * i, "%02x", r.last_hash[i]);
	if (c->json) {
		printf("{\"intact\":%s,\"rows\":%" PRId64, r.broken ? "false" : "true", r.rows);
		if (r.broken) {
			printf(",\"bad_id\":%" PRId64 ",\"what\":", r.bad_id);
			ctl_json_str(stdout, r.what);
		}
		printf(",\"first_id\":%" PRId64 ",\"anchor_id\":%" PRId64 ",\"last_id\":%" PRId64
		       ",\"last_hash\":", r.first_id, r.anchor_id, r.last_id);
		if (r.rows)
			printf("\"%s\"}\n", hx);
		else
			fputs("null}\n", stdout);
	}
	if (r.broken)
		return ctl_fail("audit trail broken at row %" PRId64 ": %s", r.bad_id, r.what);
	if (!c->json) {
		printf("audit trail intact: %" PRId64 " row%s\n", r.rows, r.rows == 1 ? "" : "s");
		if (r.rows)
			printf("last row %" PRId64 " hash %s\n", r.last_id, hx);
	}
	return 0;
}

static int audit_prune_cmd(struct ctl *c, int argc, char **argv)
{
	const char *before = NULL;
	for (int i = 1; i < argc; i++) {
		int r;
		if ((r = ctl_opt("audit", argc, argv, &i, "--before", &before))) {
			if (r < 0)
				return 2;
		} else {
			return ctl_usage("audit", "prune: unexpected argument '%s'", argv[i]);
		}
	}
	if (!before)
		return ctl_usage("audit", "prune needs --before TIME");
	int64_t t = ctl_parse_time(before);
	if (t <= 0)
		return ctl_usage("audit", "prune --before: cannot read the time '%s'", before);
	if (t > vault_now_ns())
		return ctl_fail("prune --before '%s' is in the future; nothing pruned", before);
	if (!ctl_audit_db(c))
		return 1;
	struct audit_row who;
	ctl_admin_row(&who, AUDIT_EVENT_PRUNE, NULL);
	struct vault_err e = { 0 };
	int64_t removed = 0;
	if (audit_prune(c->adb, t, &who, &removed, &e) < 0)
		return ctl_verr(&e);
	char ts[32];
	ctl_format_time(t, ts, sizeof ts);
	if (c->json)
		printf("{\"removed\":%" PRId64 ",\"before\":\"%s\"}\n", removed, ts);
	else
		printf("pruned %" PRId64 " audit row%s before %s; an anchor row records where the trail "
		       "now starts\n", removed, removed == 1 ? "" : "s", ts);
	return 0;
}

static int export_row(void *arg, int64_t id, const struct audit_row *row, const uint8_t *prev,
		      const uint8_t *hash)
{
	(void)arg;
	json_row(id, row, prev, hash);
	fputc('\n', stdout);
	return ferror(stdout) != 0;
}

static int audit_export(struct ctl *c, int argc, char **argv)
{
	const char *format = "jsonl", *after = NULL;
	for (int i = 1; i < argc; i++) {
		int r;
		if ((r = ctl_opt("audit", argc, argv, &i, "--format", &format)) ||
		    (r = ctl_opt("audit", argc, argv, &i, "--after", &after))) {
			if (r < 0)
				return 2;
		} else if (!strcmp(argv[i], "--json")) {
			continue; /* it is JSON anyway */
		} else {
			return ctl_usage("audit", "export: unexpected argument '%s'", argv[i]);
		}
	}
	if (strcmp(format, "jsonl"))
		return ctl_usage("audit", "export --format '%s' is not known (only: jsonl)", format);
	int64_t after_id = 0;
	if (after && parse_count(after, &after_id) < 0)
		return ctl_usage("audit", "export --after needs a row id, not '%s'", after);
	if (!ctl_audit_db(c))
		return 1;
	struct vault_err e = { 0 };
	if (audit_each(c->adb, after_id, export_row, NULL, &e) < 0)
		return ctl_verr(&e);
	if (fflush(stdout) == EOF || ferror(stdout))
		return ctl_fail("cannot write the export: %s", strerror(errno));
	return 0;
}

int ctl_audit(struct ctl *c, int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct ctl *, int, char **);
		const char *usage;
	} verbs[] = {
		{ "list", audit_list, list_usage },
		{ "verify", audit_verify_cmd, verify_usage },
		{ "prune", audit_prune_cmd, prune_usage },
		{ "export", audit_export, export_usage },
	};
	if (argc < 2)
		return ctl_usage("audit", "expected list, verify, prune or export");
	for (size_t i = 0; i < sizeof verbs / sizeof *verbs; i++) {
		if (strcmp(argv[1], verbs[i].name))
			continue;
		if (ctl_wants_help(argc - 1, argv + 1))
			return ctl_help(verbs[i].usage);
		return verbs[i].fn(c, argc - 1, argv + 1);
	}
	if (ctl_wants_help(argc, argv))
		return ctl_help(audit_usage);
	return ctl_usage("audit", "unknown verb '%s'; expected list, verify, prune or export", argv[1]);
}
