/* test_acl.c - the access rule: grant ∧ assignment ∧ agent enabled, and
 * the view built from it; cascades on removal; bad names. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "tests/unit/helpers.h"

static int setup(void **state)
{
	struct tvault *v = th_vault_new();
	struct vault_err e = { 0 };
	assert_int_equal(vault_provider_add(v->db, "stripe", &e), 0);
	assert_int_equal(vault_provider_add(v->db, "github", &e), 0);
	assert_int_equal(vault_secret_put(v->db, v->key, "stripe", "test_key", (const uint8_t *)"sk", 2, 0, NULL, &e), 0);
	assert_int_equal(vault_secret_put(v->db, v->key, "stripe", "live_key", (const uint8_t *)"lk", 2, 0, NULL, &e), 0);
	assert_int_equal(vault_secret_put(v->db, v->key, "github", "token", (const uint8_t *)"gh", 2, 0, NULL, &e), 0);
	assert_int_equal(acl_project_add(v->db, "demo", &e), 0);
	assert_int_equal(acl_project_add(v->db, "other", &e), 0);
	struct acl_agent a = { .uid = 1001 };
	strcpy(a.name, "billing");
	strcpy(a.project, "demo");
	assert_int_equal(acl_agent_add(v->db, &a, &e), 0);
	*state = v;
	return 0;
}

static int teardown(void **state)
{
	th_vault_free(*state);
	return 0;
}

static enum acl_decision check(struct tvault *v, const char *agent, const char *p, const char *k)
{
	struct vault_err e = { 0 };
	struct acl_agent a;
	struct vault_secret s;
	assert_int_equal(acl_agent_get(v->db, agent, &a, &e), 1);
	return acl_check(v->db, &a, p, k, &s, &e);
}

static int count_provider(void *arg, int64_t id, const char *name)
{
	(void)id; (void)name;
	++*(int *)arg;
	return 0;
}

static int view_count(struct tvault *v, const char *agent)
{
	struct vault_err e = { 0 };
	struct acl_agent a;
	assert_int_equal(acl_agent_get(v->db, agent, &a, &e), 1);
	int n = 0;
	assert_int_equal(acl_view_providers(v->db, &a, count_provider, &n, &e), 0);
	return n;
}

static void test_rule(void **state)
{
	struct tvault *v = *state;
	struct vault_err e = { 0 };
	assert_int_equal(check(v, "billing", "stripe", "test_key"), ACL_NO_GRANT);
	/* assignment alone (project visibility) gives nothing */
	assert_int_equal(acl_assign(v->db, "stripe", "test_key", "demo", 1, &e), 0);
	assert_int_equal(check(v, "billing", "stripe", "test_key"), ACL_NO_GRANT);
	assert_int_equal(view_count(v, "billing"), 0);
	/* a grant without the assignment gives nothing either */
	assert_int_equal(acl_grant(v->db, "billing", "stripe", "live_key", 1, &e), 0);
	assert_int_equal(check(v, "billing", "stripe", "live_key"), ACL_NOT_ASSIGNED);
	assert_int_equal(view_count(v, "billing"), 0);
	/* assignment to another project does not count */
	assert_int_equal(acl_assign(v->db, "stripe", "live_key", "other", 1, &e), 0);
	assert_int_equal(check(v, "billing", "stripe", "live_key"), ACL_NOT_ASSIGNED);
	/* both: allowed */
	assert_int_equal(acl_grant(v->db, "billing", "stripe", "test_key", 1, &e), 0);
	assert_int_equal(check(v, "billing", "stripe", "test_key"), ACL_ALLOW);
	assert_int_equal(view_count(v, "billing"), 1);
	/* disabled: nothing */
	assert_int_equal(acl_agent_enable(v->db, "billing", 0, &e), 0);
	assert_int_equal(check(v, "billing", "stripe", "test_key"), ACL_DISABLED);
	assert_int_equal(view_count(v, "billing"), 0);
	assert_int_equal(acl_agent_enable(v->db, "billing", 1, &e), 0);
	/* revoke: nothing */
	assert_int_equal(acl_grant(v->db, "billing", "stripe", "test_key", 0, &e), 0);
	assert_int_equal(check(v, "billing", "stripe", "test_key"), ACL_NO_GRANT);
	/* revoking again is nothing to do (1), and says so in the right order */
	int64_t g = vault_generation(v->db, &e);
	assert_int_equal(acl_grant(v->db, "billing", "stripe", "test_key", 0, &e), 1);
	assert_int_equal(e.code, VAULT_ENOENT);
	assert_non_null(strstr(e.msg, "agent 'billing' has no grant of 'stripe/test_key'"));
	assert_int_equal(vault_generation(v->db, &e), g);
	assert_int_equal(check(v, "billing", "stripe", "missing"), ACL_NO_SECRET);
}

static void test_cascades(void **state)
{
	struct tvault *v = *state;
	struct vault_err e = { 0 };
	assert_int_equal(acl_assign(v->db, "github", "token", "demo", 1, &e), 0);
	assert_int_equal(acl_grant(v->db, "billing", "github", "token", 1, &e), 0);
	assert_int_equal(view_count(v, "billing"), 1);
	int64_t g0 = vault_generation(v->db, &e);
	assert_int_equal(vault_secret_rm(v->db, "github", "token", &e), 0);
	assert_true(vault_generation(v->db, &e) > g0);
	assert_int_equal(view_count(v, "billing"), 0);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(vault_db_handle(v->db), "SELECT (SELECT count(*) FROM grants) + (SELECT count(*) FROM assignments)",
			   -1, &st, NULL);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0);
	sqlite3_finalize(st);
	/* a project with agents cannot be removed; after the agent, it can */
	assert_int_equal(acl_project_rm(v->db, "demo", &e), -1);
	assert_non_null(strstr(e.msg, "agent"));
	assert_int_equal(acl_agent_rm(v->db, "billing", &e), 0);
	assert_int_equal(acl_project_rm(v->db, "demo", &e), 0);
}

static void test_bad_input(void **state)
{
	struct tvault *v = *state;
	struct vault_err e = { 0 };
	struct acl_agent a = { .uid = 5 };
	strcpy(a.name, "..");
	strcpy(a.project, "demo");
	assert_int_equal(acl_agent_add(v->db, &a, &e), -1);
	assert_int_equal(e.code, VAULT_EINVAL);
	strcpy(a.name, "ok");
	strcpy(a.project, "nope");
	assert_int_equal(acl_agent_add(v->db, &a, &e), -1);
	assert_int_equal(e.code, VAULT_ENOENT);
	strcpy(a.project, "demo");
	a.labels = ACL_L_CGROUP;
	strcpy(a.cgroup, "relative/path");
	assert_int_equal(acl_agent_add(v->db, &a, &e), -1);
	a.labels = ACL_L_EXE;
	strcpy(a.exe, "/nonexistent/binary");
	assert_int_equal(acl_agent_add(v->db, &a, &e), -1);
	assert_int_equal(e.code, VAULT_ENOENT);
	strcpy(a.name, "billing");
	a.labels = 0;
	assert_int_equal(acl_agent_add(v->db, &a, &e), -1);
	assert_int_equal(e.code, VAULT_EEXIST);
	assert_int_equal(acl_project_add(v->db, "a/b", &e), -1);
	assert_int_equal(acl_grant(v->db, "ghost", "stripe", "test_key", 1, &e), -1);
	assert_int_equal(e.code, VAULT_ENOENT);
	assert_int_equal(acl_grant(v->db, "billing", "stripe", "ghost", 1, &e), -1);
	assert_int_equal(e.code, VAULT_ENOENT);
	assert_int_equal(acl_grant(v->db, "billing", "stripe", "test_key", 1, &e), 0);
	/* granting again: nothing to do, not an error */
	assert_int_equal(acl_grant(v->db, "billing", "stripe", "test_key", 1, &e), 1);
	assert_int_equal(e.code, VAULT_EEXIST);
	assert_non_null(strstr(e.msg, "agent 'billing' already has a grant of 'stripe/test_key'"));
	/* assign keeps refusing a repeat (import relies on EEXIST), worded right */
	assert_int_equal(acl_assign(v->db, "stripe", "test_key", "demo", 1, &e), 0);
	assert_int_equal(acl_assign(v->db, "stripe", "test_key", "demo", 1, &e), -1);
	assert_int_equal(e.code, VAULT_EEXIST);
	assert_non_null(strstr(e.msg, "secret 'stripe/test_key' already has an assignment to project 'demo'"));
}

/* Expiring grants: the expiry is part of the rule at each call. */
static void test_grant_expiry(void **state)
{
	struct tvault *v = *state;
	struct vault_err e = { 0 };
	struct acl_agent a;
	struct vault_secret s;
	assert_int_equal(acl_assign(v->db, "stripe", "test_key", "demo", 1, &e), 0);
	int64_t soon = vault_now_ns() + 3600LL * 1000000000LL;
	assert_int_equal(acl_grant_until(v->db, "billing", "stripe", "test_key", soon, &e), 0);
	assert_int_equal(check(v, "billing", "stripe", "test_key"), ACL_ALLOW);
	assert_int_equal(view_count(v, "billing"), 1);
	assert_int_equal(acl_grant_until(v->db, "billing", "stripe", "test_key", soon, &e), 1);
	/* an expiry already passed: no grant, in every query of the rule */
	int64_t past = vault_now_ns() - 1;
	assert_int_equal(acl_grant_until(v->db, "billing", "stripe", "test_key", past, &e), 0);
	assert_int_equal(check(v, "billing", "stripe", "test_key"), ACL_EXPIRED);
	assert_int_equal(view_count(v, "billing"), 0);
	assert_int_equal(acl_agent_get(v->db, "billing", &a, &e), 1);
	int64_t pid = vault_provider_id(v->db, "stripe", &e), exp = 0;
	assert_int_equal(acl_view_key(v->db, &a, pid, "test_key", &s, &e), 0);
	assert_int_equal(acl_view_secret(v->db, &a, s.id, &s, &e), 0);
	assert_int_equal(acl_view_provider(v->db, &a, "stripe", &pid, &e), 0);
	assert_int_equal(acl_grant_get(v->db, a.id, s.id, &exp, &e), 1);
	assert_int_equal(exp, past);
	/* granting without an expiry makes it permanent again */
	assert_int_equal(acl_grant(v->db, "billing", "stripe", "test_key", 1, &e), 0);
	assert_int_equal(check(v, "billing", "stripe", "test_key"), ACL_ALLOW);
	assert_int_equal(acl_grant_get(v->db, a.id, s.id, &exp, &e), 1);
	assert_int_equal(exp, 0);
}

/* agent set changes a binding in place and keeps grants; overlaps are found. */
static void test_agent_set_and_overlap(void **state)
{
	struct tvault *v = *state;
	struct vault_err e = { 0 };
	struct acl_agent a, before, other;
	assert_int_equal(acl_assign(v->db, "stripe", "test_key", "demo", 1, &e), 0);
	assert_int_equal(acl_grant(v->db, "billing", "stripe", "test_key", 1, &e), 0);
	memset(&a, 0, sizeof a);
	a.uid = 2002;
	assert_int_equal(acl_agent_set(v->db, "billing", &a, ACL_SET_UID, &before, &e), 0);
	assert_int_equal(before.uid, 1001);
	assert_int_equal(acl_agent_get(v->db, "billing", &a, &e), 1);
	assert_int_equal(a.uid, 2002);
	assert_int_equal(a.id, before.id);
	assert_string_equal(a.project, "demo");
	assert_int_equal(check(v, "billing", "stripe", "test_key"), ACL_ALLOW);
	/* a label added, then removed; bad values refused like add */
	memset(&a, 0, sizeof a);
	a.labels = ACL_L_CGROUP;
	strcpy(a.cgroup, "relative");
	assert_int_equal(acl_agent_set(v->db, "billing", &a, ACL_L_CGROUP, NULL, &e), -1);
	assert_int_equal(e.code, VAULT_EINVAL);
	strcpy(a.cgroup, "/system.slice/billing.service");
	assert_int_equal(acl_agent_set(v->db, "billing", &a, ACL_L_CGROUP, NULL, &e), 0);
	assert_int_equal(acl_agent_get(v->db, "billing", &a, &e), 1);
	assert_int_equal(a.labels, ACL_L_CGROUP);
	assert_int_equal(a.uid, 2002);
	strcpy(a.project, "nope");
	assert_int_equal(acl_agent_set(v->db, "billing", &a, ACL_SET_PROJECT, NULL, &e), -1);
	assert_int_equal(e.code, VAULT_ENOENT);
	assert_int_equal(acl_agent_set(v->db, "ghost", &a, ACL_SET_UID, NULL, &e), -1);
	/* overlaps: same uid, same count, labels that can meet */
	struct acl_agent x = { .id = 1, .uid = 7 }, y = { .id = 2, .uid = 7 };
	assert_true(acl_binding_overlap(&x, &y));
	y.uid = 8;
	assert_false(acl_binding_overlap(&x, &y));
	y.uid = 7;
	y.labels = ACL_L_CGROUP;
	strcpy(y.cgroup, "/a");
	assert_false(acl_binding_overlap(&x, &y)); /* y is more specific: it wins */
	x.labels = ACL_L_CGROUP;
	strcpy(x.cgroup, "/b");
	assert_false(acl_binding_overlap(&x, &y));
	strcpy(x.cgroup, "/a");
	assert_true(acl_binding_overlap(&x, &y));
	strcpy(x.cgroup, "/*");
	assert_true(acl_binding_overlap(&x, &y));
	strcpy(x.cgroup, "/b/*");
	strcpy(y.cgroup, "/a/*");
	assert_false(acl_binding_overlap(&x, &y));
	strcpy(y.cgroup, "/b/c*");
	assert_true(acl_binding_overlap(&x, &y));
	x.labels = ACL_L_LSM; /* different kinds can hold at once */
	strcpy(x.lsm, "unconfined");
	assert_true(acl_binding_overlap(&x, &y));
	y.labels = ACL_L_LSM;
	strcpy(y.lsm, "other");
	assert_false(acl_binding_overlap(&x, &y));
	/* in the database: a twin of billing is found, billing itself is not */
	assert_int_equal(acl_agent_get(v->db, "billing", &a, &e), 1);
	assert_int_equal(acl_agent_overlap(v->db, &a, &other, &e), 0);
	struct acl_agent t = { .uid = 2002, .labels = ACL_L_CGROUP };
	strcpy(t.name, "twin");
	strcpy(t.project, "other");
	strcpy(t.cgroup, "/system.slice/*.service");
	assert_int_equal(acl_agent_add(v->db, &t, &e), 0);
	assert_int_equal(acl_agent_overlap(v->db, &a, &other, &e), 1);
	assert_string_equal(other.name, "twin");
}

/* acl_resolve on a fake /proc: a uid-only binding, an unbound uid, and a
 * pid of 0. */
static void test_resolve_fake_proc(void **state)
{
	struct tvault *v = *state;
	char proc[PATH_MAX + 16], path[PATH_MAX + 64];
	snprintf(proc, sizeof proc, "%s/proc", v->dir);
	snprintf(path, sizeof path, "%s/4242", proc);
	assert_int_equal(mkdir(proc, 0700), 0);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof path, "%s/4242/status", proc);
	FILE *f = fopen(path, "w");
	fprintf(f, "Name:\tmcp\nTgid:\t4242\nPid:\t4242\nTracerPid:\t0\nUid:\t1001\t1001\t1001\t1001\nGid:\t1001\t1001\t1001\t1001\n");
	fclose(f);
	snprintf(path, sizeof path, "%s/4242/cgroup", proc);
	f = fopen(path, "w");
	fprintf(f, "0::/user.slice/mcp\n");
	fclose(f);
	struct acl_who w;
	assert_int_equal(acl_resolve(v->db, proc, 1001, 4242, 0, &w), 0);
	assert_int_equal(w.result, ACL_WHO_AGENT);
	assert_string_equal(w.agent.name, "billing");
	assert_int_equal(w.labels.tgid, 4242);
	/* labels for the record only: one that cannot be read (no exe in
	 * this tree) is left out, it does not deny */
	assert_int_equal(acl_resolve(v->db, proc, 1001, 4242, ACL_L_CGROUP | ACL_L_EXE, &w), 0);
	assert_int_equal(w.labels.have, ACL_L_CGROUP);
	assert_string_equal(w.labels.cgroup, "/user.slice/mcp");
	assert_int_equal(acl_resolve(v->db, proc, 1002, 4242, 0, &w), -1);
	assert_int_equal(w.result, ACL_WHO_ERROR); /* fs-uid mismatch */
	assert_int_equal(acl_resolve(v->db, proc, 1001, 0, 0, &w), -1);
	assert_int_equal(w.result, ACL_WHO_ERROR);
	/* two uid-only agents on one uid are ambiguous */
	struct vault_err e = { 0 };
	struct acl_agent a = { .uid = 1001 };
	strcpy(a.name, "twin");
	strcpy(a.project, "demo");
	assert_int_equal(acl_agent_add(v->db, &a, &e), 0);
	assert_int_equal(acl_resolve(v->db, proc, 1001, 4242, 0, &w), -1);
	assert_int_equal(w.result, ACL_WHO_AMBIGUOUS);
	/* a more specific cgroup binding wins over both */
	a.labels = ACL_L_CGROUP;
	strcpy(a.name, "mcp");
	strcpy(a.cgroup, "/user.slice/*");
	assert_int_equal(acl_agent_add(v->db, &a, &e), 0);
	assert_int_equal(acl_resolve(v->db, proc, 1001, 4242, 0, &w), 0);
	assert_string_equal(w.agent.name, "mcp");
	assert_string_equal(w.labels.cgroup, "/user.slice/mcp");
}

/* acl_view_key decides one key in one query: an agent with another
 * effective grant under the provider must still not see this one. */
static void test_view_key(void **state)
{
	struct tvault *v = *state;
	struct vault_err e = { 0 };
	struct acl_agent a;
	struct vault_secret s;
	assert_int_equal(acl_assign(v->db, "stripe", "test_key", "demo", 1, &e), 0);
	assert_int_equal(acl_grant(v->db, "billing", "stripe", "test_key", 1, &e), 0);
	assert_int_equal(acl_assign(v->db, "stripe", "live_key", "demo", 1, &e), 0);
	assert_int_equal(acl_agent_get(v->db, "billing", &a, &e), 1);
	int64_t pid = vault_provider_id(v->db, "stripe", &e);
	assert_int_equal(acl_view_key(v->db, &a, pid, "test_key", &s, &e), 1);
	assert_string_equal(s.key, "test_key");
	assert_string_equal(s.provider, "stripe");
	assert_int_equal(s.len, 2);
	assert_int_equal(acl_view_key(v->db, &a, pid, "live_key", &s, &e), 0);
	assert_string_equal(s.key, "live_key"); /* names for the audit row */
	assert_int_equal(acl_view_key(v->db, &a, pid, "missing", &s, &e), 2);
	assert_int_equal(acl_agent_enable(v->db, "billing", 0, &e), 0);
	assert_int_equal(acl_agent_get(v->db, "billing", &a, &e), 1);
	assert_int_equal(acl_view_key(v->db, &a, pid, "test_key", &s, &e), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rule, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cascades, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolve_fake_proc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_view_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grant_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_set_and_overlap, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
