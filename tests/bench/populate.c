/* populate.c - scopehold-populate, fills a benchmark database fast: it drives
 * the same library calls as scopeholdctl (vault_secret_put seals every value,
 * acl_assign/acl_grant/acl_agent_add, audit_append chains every row), one
 * process and one transaction per batch instead of one process per change.
 * Rows go to the audit store (vault_config_audit_db: NAME-audit.db beside
 * the database), as scopeholdctl writes them.
 * No rule is bypassed: no raw INSERT, and `scopeholdctl audit verify` holds.
 * Benchmark-only, not installed.
 *
 *   scopehold-populate --db DB --key-file KEY keys PROVIDER N PROJECT AGENT
 *       N secrets PROVIDER/k0..kN-1 (40 bytes each), assigned to PROJECT and
 *       granted to AGENT, with an admin audit row for each change.
 *   scopehold-populate --db DB --key-file KEY scale [--providers P]
 *       [--secrets S] [--agents A] [--projects J] [--grants G] [--audit-rows R]
 *       P providers sp0.. with S/P keys each; J projects; each provider's
 *       secrets assigned to project (p % J); A agents (uid 200000 + i) spread
 *       over the projects with G grants each; admin rows for all of it, then
 *       "open" rows (mostly granted, some denied) until this run has written
 *       R rows. Defaults: the scale, 1000/100000/10000/100/10/1000000.
 * Prints "secs=S" and what it made on stdout.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "acl/acl.h"
#include "acl/audit.h"
#include "vault/config.h"
#include "vault/vault.h"

#define BATCH 1000
#define VALUE_LEN 40

/* Admin rows and open rows are collected here and appended per batch. */
struct slot {
	char event[32], result[16], reason[48], agent[24], path[64], exe[32], cgroup[64];
};

struct pop {
	struct vault_db *db;   /* grants, secrets, ... */
	struct vault_db *adb;  /* the audit store, a database of its own */
	struct vault_key *key;
	struct audit_row rows[BATCH];
	struct slot slots[BATCH];
	size_t n;          /* rows waiting */
	size_t in_batch;   /* changes in the open transaction */
	int64_t audit_rows;
	struct vault_err e;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(struct pop *p, const char *what)
{
	fprintf(stderr, "scopehold-populate: %s: %s\n", what, p->e.msg);
	return -1;
}

static int flush_rows(struct pop *p)
{
	if (p->n && audit_append(p->adb, p->rows, p->n, &p->e) < 0)
		return fail(p, "audit_append");
	p->audit_rows += (int64_t)p->n;
	p->n = 0;
	return 0;
}

/* Commit the rows of the open transaction's changes (first, as scopeholdctl
 * does: a change that is not recorded never happens), then the changes, and
 * begin the next transaction. */
static int commit(struct pop *p, int again)
{
	if (flush_rows(p) < 0 || vault_db_commit(p->db, &p->e) < 0)
		return fail(p, "commit");
	p->in_batch = 0;
	if (again && vault_db_begin(p->db, &p->e) < 0)
		return fail(p, "begin");
	return 0;
}

/* One change done: count it; commit every BATCH changes. */
static int changed(struct pop *p)
{
	if (++p->in_batch >= BATCH)
		return commit(p, 1);
	return 0;
}

static struct audit_row *row_new(struct pop *p, struct slot **s)
{
	struct audit_row *r;

	if (p->n == BATCH && flush_rows(p) < 0)
		return NULL;
	r = &p->rows[p->n];
	*s = &p->slots[p->n++];
	memset(r, 0, sizeof(*r));
	memset(*s, 0, sizeof(**s));
	r->uid = r->gid = r->pid = r->tgid = r->sudo_uid = -1;
	r->count = 1;
	return r;
}

/* The row scopeholdctl writes for an admin change (admin/util.c ctl_end). */
static int admin_row(struct pop *p, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int admin_row(struct pop *p, const char *event, const char *fmt, ...)
{
	struct slot *s;
	struct audit_row *r = row_new(p, &s);
	va_list ap;

	if (!r)
		return -1;
	snprintf(s->event, sizeof(s->event), "%s", event);
	snprintf(s->result, sizeof(s->result), "ok");
	va_start(ap, fmt);
	vsnprintf(s->path, sizeof(s->path), fmt, ap);
	va_end(ap);
	r->event = s->event;
	r->result = s->result;
	r->path = s->path;
	r->uid = getuid();
	r->gid = getgid();
	r->pid = r->tgid = getpid();
	return 0;
}

/* A 40-byte value that differs per secret; not secret (benchmark data). */
static void make_value(uint8_t *v)
{
	static const char hex[] = "0123456789abcdef";

	randombytes_buf(v, VALUE_LEN);
	for (int j = 0; j < VALUE_LEN; j++)
		v[j] = (uint8_t)hex[v[j] & 15];
}

static int put_secret(struct pop *p, const char *provider, const char *key)
{
	uint8_t v[VALUE_LEN];
	int64_t version;

	make_value(v);
	if (vault_secret_put(p->db, p->key, provider, key, v, VALUE_LEN, 0, &version, &p->e) < 0) {
		sodium_memzero(v, sizeof(v));
		return fail(p, "secret put");
	}
	sodium_memzero(v, sizeof(v));
	if (admin_row(p, "secret.put", "%s/%s", provider, key) < 0)
		return -1;
	return changed(p);
}

static int add_provider(struct pop *p, const char *name)
{
	int64_t id = vault_provider_id(p->db, name, &p->e);

	if (id < 0)
		return fail(p, "provider id");
	if (id > 0)
		return 0;
	if (vault_provider_add(p->db, name, &p->e) < 0)
		return fail(p, "provider add");
	if (admin_row(p, "provider.add", "%s", name) < 0)
		return -1;
	return changed(p);
}

static int add_project(struct pop *p, const char *name)
{
	int64_t id = acl_project_id(p->db, name, &p->e);

	if (id < 0)
		return fail(p, "project id");
	if (id > 0)
		return 0;
	if (acl_project_add(p->db, name, &p->e) < 0)
		return fail(p, "project add");
	if (admin_row(p, "project.add", "%s", name) < 0)
		return -1;
	return changed(p);
}

static int assign(struct pop *p, const char *provider, const char *key, const char *project)
{
	if (acl_assign(p->db, provider, key, project, 1, &p->e) < 0)
		return fail(p, "assign");
	if (admin_row(p, "secret.assign", "%s/%s -> %s", provider, key, project) < 0)
		return -1;
	return changed(p);
}

static int grant(struct pop *p, const char *agent, const char *provider, const char *key)
{
	if (acl_grant(p->db, agent, provider, key, 1, &p->e) < 0)
		return fail(p, "grant");
	if (admin_row(p, "grant", "%s/%s -> %s", provider, key, agent) < 0)
		return -1;
	return changed(p);
}

static int cmd_keys(struct pop *p, const char *provider, long n, const char *project,
		    const char *agent)
{
	char key[32];

	if (add_provider(p, provider) < 0)
		return -1;
	for (long i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "k%ld", i);
		if (put_secret(p, provider, key) < 0 || assign(p, provider, key, project) < 0 ||
		    grant(p, agent, provider, key) < 0)
			return -1;
	}
	printf("secrets=%ld provider=%s project=%s agent=%s", n, provider, project, agent);
	return 0;
}

struct scale {
	long providers, secrets, agents, projects, grants, audit_rows;
};

/* The g-th grant of agent a: a secret of a provider assigned to a's project. */
static void grant_of(const struct scale *s, long a, long g, char *prov, size_t plen, char *key,
		     size_t klen, int64_t *index)
{
	long per_project = s->providers / s->projects; /* providers per project */
	long keys = s->secrets / s->providers;
	long pj = a % s->projects;
	long pv = pj + s->projects * ((a / s->projects + g) % (per_project ? per_project : 1));
	long k = (a / s->projects * 7 + g) % keys;

	snprintf(prov, plen, "sp%ld", pv);
	snprintf(key, klen, "k%ld", k);
	*index = (int64_t)pv * keys + k;
}

static int cmd_scale(struct pop *p, const struct scale *s)
{
	long keys = s->secrets / s->providers;
	char prov[32], key[32], proj[32];
	int64_t *ids, now = vault_now_ns(), opens;
	uint64_t rnd = 0x9e3779b97f4a7c15u;
	struct vault_secret sec;

	ids = calloc((size_t)s->secrets, sizeof(*ids));
	if (!ids) {
		fprintf(stderr, "scopehold-populate: out of memory\n");
		return -1;
	}
	for (long j = 0; j < s->projects; j++) {
		snprintf(proj, sizeof(proj), "proj%ld", j);
		if (add_project(p, proj) < 0)
			goto err;
	}
	for (long pv = 0; pv < s->providers; pv++) {
		snprintf(prov, sizeof(prov), "sp%ld", pv);
		snprintf(proj, sizeof(proj), "proj%ld", pv % s->projects);
		if (add_provider(p, prov) < 0)
			goto err;
		for (long k = 0; k < keys; k++) {
			snprintf(key, sizeof(key), "k%ld", k);
			if (put_secret(p, prov, key) < 0 || assign(p, prov, key, proj) < 0)
				goto err;
			if (vault_secret_find(p->db, prov, key, &sec, &p->e) != 1) {
				fail(p, "secret find");
				goto err;
			}
			ids[pv * keys + k] = sec.id;
		}
	}
	for (long a = 0; a < s->agents; a++) {
		struct acl_agent ag;

		memset(&ag, 0, sizeof(ag));
		snprintf(ag.name, sizeof(ag.name), "a%ld", a);
		snprintf(ag.project, sizeof(ag.project), "proj%ld", a % s->projects);
		ag.uid = (uid_t)(200000 + a);
		ag.enabled = 1;
		if (acl_agent_add(p->db, &ag, &p->e) < 0) {
			fail(p, "agent add");
			goto err;
		}
		if (admin_row(p, "agent.add", "%s", ag.name) < 0 || changed(p) < 0)
			goto err;
		for (long g = 0; g < s->grants; g++) {
			int64_t idx;

			grant_of(s, a, g, prov, sizeof(prov), key, sizeof(key), &idx);
			if (grant(p, ag.name, prov, key) < 0)
				goto err;
		}
	}
	if (commit(p, 1) < 0)
		goto err;

	/* Open rows, oldest first, spread over the 30 days before now. */
	opens = s->audit_rows - p->audit_rows;
	for (int64_t i = 0; i < opens; i++) {
		struct slot *sl;
		struct audit_row *r = row_new(p, &sl);
		long a, g;
		int64_t idx;

		if (!r)
			goto err;
		rnd = rnd * 6364136223846793005u + 1442695040888963407u;
		a = (long)((rnd >> 33) % (uint64_t)s->agents);
		g = (long)((rnd >> 20) % (uint64_t)(s->grants ? s->grants : 1));
		grant_of(s, a, g, prov, sizeof(prov), key, sizeof(key), &idx);
		r->time_ns = now - (opens - i) * (30LL * 86400 * 1000000000 / (opens ? opens : 1));
		snprintf(sl->event, sizeof(sl->event), "open");
		if ((rnd >> 8) % 20 == 0) {
			snprintf(sl->result, sizeof(sl->result), "denied");
			snprintf(sl->reason, sizeof(sl->reason), "no grant");
			r->reason = sl->reason;
			idx = (idx + keys) % s->secrets;
			snprintf(prov, sizeof(prov), "sp%ld", (long)(idx / keys));
			snprintf(key, sizeof(key), "k%ld", (long)(idx % keys));
		} else {
			snprintf(sl->result, sizeof(sl->result), "granted");
			r->version = 1;
		}
		snprintf(sl->agent, sizeof(sl->agent), "a%ld", a);
		snprintf(sl->path, sizeof(sl->path), "%s/%s", prov, key);
		snprintf(sl->exe, sizeof(sl->exe), "/usr/bin/python3");
		snprintf(sl->cgroup, sizeof(sl->cgroup), "/system.slice/agent-a%ld.service", a);
		r->event = sl->event;
		r->result = sl->result;
		r->agent = sl->agent;
		r->path = sl->path;
		r->exe = sl->exe;
		r->cgroup = sl->cgroup;
		r->uid = r->gid = 200000 + a;
		r->pid = r->tgid = 1000 + (int64_t)((rnd >> 40) % 4000000);
		r->secret_id = ids[idx];
		if (p->n == BATCH && commit(p, 1) < 0)
			goto err;
	}
	printf("providers=%ld secrets=%ld projects=%ld agents=%ld grants=%ld", s->providers,
	       s->secrets, s->projects, s->agents, s->agents * s->grants);
	free(ids);
	return 0;
err:
	free(ids);
	return -1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: scopehold-populate --db DB --key-file KEY keys PROVIDER N PROJECT AGENT\n"
		"       scopehold-populate --db DB --key-file KEY scale [--providers P] [--secrets S]\n"
		"             [--agents A] [--projects J] [--grants G] [--audit-rows R]\n");
}

static int num(const char *opt, const char *s, long lo, long hi, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(s, &end, 10);
	if (errno || end == s || *end || *out < lo || *out > hi) {
		fprintf(stderr, "scopehold-populate: %s \"%s\": want %ld..%ld\n", opt, s, lo, hi);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *db = NULL, *keyf = NULL;
	struct vault_config cfg;
	char adb_path[PATH_MAX];
	struct scale s = { 1000, 100000, 10000, 100, 10, 1000000 };
	struct pop *p;
	double t0;
	int i, rc = 1;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--db") && i + 1 < argc)
			db = argv[++i];
		else if (!strcmp(argv[i], "--key-file") && i + 1 < argc)
			keyf = argv[++i];
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (!db || !keyf || i >= argc) {
		usage(stderr);
		return 2;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "scopehold-populate: sodium_init failed\n");
		return 1;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return 1;
	t0 = now_s();
	p->db = acl_db_open(db, 0, &p->e);
	if (!p->db) {
		fail(p, "open");
		goto out;
	}
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.db, sizeof(cfg.db), "%s", db);
	p->adb = audit_db_open(vault_config_audit_db(&cfg, adb_path), VAULT_DB_CREATE, &p->e);
	if (!p->adb) {
		fail(p, "open audit store");
		goto out_db;
	}
	/* Connection tuning only, for this bulk load: a large page cache (the
	 * audit indexes at 1,000,000 rows do not fit the default 2 MiB) and no
	 * fsync per batch. */
	sqlite3_exec(vault_db_handle(p->db),
		     "PRAGMA cache_size = -65536; PRAGMA synchronous = OFF", NULL, NULL, NULL);
	sqlite3_exec(vault_db_handle(p->adb),
		     "PRAGMA cache_size = -262144; PRAGMA synchronous = OFF", NULL, NULL, NULL);
	p->key = vault_key_load(p->db, keyf, &p->e);
	if (!p->key) {
		fail(p, "key");
		goto out_db;
	}
	if (vault_db_begin(p->db, &p->e) < 0) {
		fail(p, "begin");
		goto out_key;
	}
	if (!strcmp(argv[i], "keys") && argc - i == 5) {
		long n;

		if (num("N", argv[i + 2], 0, 10000000, &n) < 0 ||
		    cmd_keys(p, argv[i + 1], n, argv[i + 3], argv[i + 4]) < 0)
			goto out_tx;
	} else if (!strcmp(argv[i], "scale")) {
		for (i++; i < argc; i += 2) {
			long *to = NULL;

			if (i + 1 >= argc) {
				usage(stderr);
				rc = 2;
				goto out_tx;
			}
			if (!strcmp(argv[i], "--providers"))
				to = &s.providers;
			else if (!strcmp(argv[i], "--secrets"))
				to = &s.secrets;
			else if (!strcmp(argv[i], "--agents"))
				to = &s.agents;
			else if (!strcmp(argv[i], "--projects"))
				to = &s.projects;
			else if (!strcmp(argv[i], "--grants"))
				to = &s.grants;
			else if (!strcmp(argv[i], "--audit-rows"))
				to = &s.audit_rows;
			if (!to || num(argv[i], argv[i + 1], 1, 100000000, to) < 0) {
				usage(stderr);
				rc = 2;
				goto out_tx;
			}
		}
		if (s.secrets < s.providers || s.providers < s.projects) {
			fprintf(stderr, "scopehold-populate: want projects <= providers <= secrets\n");
			rc = 2;
			goto out_tx;
		}
		if (cmd_scale(p, &s) < 0)
			goto out_tx;
	} else {
		usage(stderr);
		rc = 2;
		goto out_tx;
	}
	if (commit(p, 0) < 0)
		goto out_tx;
	printf(" audit_rows=%" PRId64 " secs=%.3f\n", p->audit_rows, now_s() - t0);
	rc = 0;
	goto out_key;
out_tx:
	vault_db_rollback(p->db);
out_key:
	vault_key_free(p->key);
out_db:
	vault_db_close(p->adb);
	vault_db_close(p->db);
out:
	free(p);
	return rc;
}
