/* acl.h - projects, agents and their bindings, assignments, grants, and the
 * access rule:
 *   agent resolved ∧ agent enabled ∧ grant(agent, secret) not expired ∧ assignment(secret, agent.project)
 * checked against the database on every call (no cache across a change).
 * Never prints. */
#ifndef SCOPEHOLD_ACL_H
#define SCOPEHOLD_ACL_H

#include <stdint.h>
#include <sys/types.h>

#include "acl/ident.h"
#include "vault/vault.h"

/* vault_db_open plus the acl migrations. (The audit store is a file of its
 * own: audit_db_open.) */
struct vault_db *acl_db_open(const char *path, unsigned flags, struct vault_err *e);

int acl_project_add(struct vault_db *db, const char *name, struct vault_err *e);
int acl_project_rm(struct vault_db *db, const char *name, struct vault_err *e);
/* id, 0 when missing, -1 on error */
int64_t acl_project_id(struct vault_db *db, const char *name, struct vault_err *e);

struct acl_agent {
	int64_t id;
	int64_t project_id;
	char name[VAULT_NAME_MAX + 1];
	char project[VAULT_NAME_MAX + 1];
	int enabled;
	uid_t uid;
	unsigned labels;                /* ACL_L_* the binding requires */
	char cgroup[ACL_LABEL_MAX];
	char exe[ACL_LABEL_MAX];        /* path given at agent add */
	uint64_t exe_dev, exe_ino;
	struct acl_exe_id exe_id;       /* the file as bound (ctime_ns -1: bound before
					 * this was recorded; it matches nothing) */
	char exe_hash[65];              /* BLAKE2b-256 of its contents, hex; "" unknown */
	int require_secure;             /* --require-secure-exec */
	int launched;                   /* --launched: cgroup is <[launch] cgroup>/NAME/ ** */
	char lsm[256];
};

/* Add an agent. With ACL_L_EXE the file at a->exe is checked and recorded
 * now by acl_exe_record() (which refuses a binary a non-root uid could
 * change); a->exe_id and a->exe_hash are filled from it, not taken from the
 * caller. */
int acl_agent_add(struct vault_db *db, const struct acl_agent *a, struct vault_err *e);
int acl_agent_rm(struct vault_db *db, const char *name, struct vault_err *e);

/* What acl_agent_set changes: ACL_SET_PROJECT, ACL_SET_UID, and each of
 * ACL_L_CGROUP / ACL_L_EXE / ACL_L_LSM, which sets that label to a's when a
 * has it (a->labels) and removes it when not. */
enum { ACL_SET_PROJECT = 1 << 12, ACL_SET_UID = 1 << 13 };

/* Change agent name's binding or project in place (grants, enabled state
 * and id kept), validated like acl_agent_add; an exe is stat()ed and
 * recorded only when ACL_L_EXE is in what. *before (may be NULL) gets the
 * agent as it was. */
int acl_agent_set(struct vault_db *db, const char *name, const struct acl_agent *a, unsigned what,
		  struct acl_agent *before, struct vault_err *e);

/* 1 when a caller could match both bindings equally (same uid, same number
 * of labels, and each label they share can match one caller as far as can
 * be told: same exe file, same lsm label, cgroup globs that can meet), so
 * that every such caller would be denied as ambiguous. Pure. */
int acl_binding_overlap(const struct acl_agent *a, const struct acl_agent *b);
/* The first other agent (id != a->id) whose binding overlaps a's: 1 and
 * *other filled, 0 none, -1 error. */
int acl_agent_overlap(struct vault_db *db, const struct acl_agent *a, struct acl_agent *other,
		      struct vault_err *e);
int acl_agent_enable(struct vault_db *db, const char *name, int enabled, struct vault_err *e);
/* 1 found, 0 missing, -1 error */
int acl_agent_get(struct vault_db *db, const char *name, struct acl_agent *out, struct vault_err *e);
int acl_agent_get_id(struct vault_db *db, int64_t id, struct acl_agent *out, struct vault_err *e);
/* fn for each agent by name; stops when fn returns non-zero. */
int acl_agent_each(struct vault_db *db, int (*fn)(void *, const struct acl_agent *), void *arg,
		   struct vault_err *e);
/* fn for each agent bound to uid (the candidates of a caller). */
int acl_agent_each_uid(struct vault_db *db, uid_t uid, int (*fn)(void *, const struct acl_agent *),
		       void *arg, struct vault_err *e);

int acl_assign(struct vault_db *db, const char *provider, const char *key, const char *project,
	       int assign, struct vault_err *e);
/* Grant (grant != 0, never expiring) or revoke. 0 changed; 1 nothing to do
 * (already granted / no grant), with e saying so; -1 error. */
int acl_grant(struct vault_db *db, const char *agent, const char *provider, const char *key,
	      int grant, struct vault_err *e);
/* Grant until expires_ns (ns since the epoch; 0 never). An existing grant
 * gets the new expiry. 0 changed, 1 already granted with that expiry (e
 * says so), -1 error. */
int acl_grant_until(struct vault_db *db, const char *agent, const char *provider, const char *key,
		    int64_t expires_ns, struct vault_err *e);
/* 1 when agent_id has a grant of secret_id, expired or not (*expires_ns: 0
 * never), 0 none, -1 error. */
int acl_grant_get(struct vault_db *db, int64_t agent_id, int64_t secret_id, int64_t *expires_ns,
		  struct vault_err *e);

/* How much a's labels are worth here, given Yama's ptrace_scope
 * (acl_ptrace_scope): "uid only", "strong", or "weak: ..." with each reason
 * (ptrace_scope 0 or no Yama unless --require-secure-exec; a user-owned
 * cgroup). Written into buf; returns buf. */
const char *acl_binding_strength(const struct acl_agent *a, int ptrace_scope, char *buf,
				 size_t len);

/* The agents whose label binding does not hold against their uid's other
 * processes: without --require-secure-exec, any label binding when
 * ptrace_scope < 1 (acl_ptrace_scope), and an exe binding whatever it is
 * (the uid can run the binary with LD_PRELOAD). As "'a', 'b'" into names
 * (cut to len). Returns how many, or -1. */
int acl_weak_agents(struct vault_db *db, int ptrace_scope, char *names, size_t len,
		    struct vault_err *e);

/* Where cgroup v2 is mounted (from /proc/self/mountinfo) into buf: 0 or -1. */
int acl_cgroup2_mount(char *buf, size_t len);

/* The launch cgroup of agent (relative to the cgroup v2 mount):
 * "<launch_cgroup>/<agent>", after checking that launch_cgroup is a plain
 * absolute path and agent a valid name. A --launched binding matches that
 * directory's subtree; the daemon makes one instance cgroup below it per
 * launch. 0 or -1. */
int acl_launch_dir(const char *launch_cgroup, const char *agent, char *out, size_t len,
		   struct vault_err *e);

/* ---- the decision ------------------------------------------------------- */

enum acl_who_result {
	ACL_WHO_AGENT,      /* resolved to `agent` */
	ACL_WHO_NONE,       /* no binding matched: empty view */
	ACL_WHO_AMBIGUOUS,  /* two equally specific bindings matched: deny */
	ACL_WHO_ERROR,      /* /proc or database could not be read: deny */
};

struct acl_who {
	enum acl_who_result result;
	struct acl_agent agent;   /* when ACL_WHO_AGENT */
	struct acl_labels labels; /* what was read of the caller */
	unsigned refused;         /* ACL_R_* when a binding matched but was refused */
	size_t tied;              /* AMBIGUOUS: how many bindings match equally */
	char reason[400];
};

/* Resolve the caller (request uid, pid) as the daemon does: bindings of
 * uid from the database, labels read under proc_root as those bindings need
 * them (plus the ACL_L_* bits in also_read, for display), most specific match
 * wins. Always fills *out. Returns 0 when an agent resolved, -1 otherwise. */
int acl_resolve(struct vault_db *db, const char *proc_root, uid_t uid, pid_t pid,
		unsigned also_read, struct acl_who *out);

enum acl_decision {
	ACL_ALLOW = 0,
	ACL_NO_SECRET,      /* the secret does not exist */
	ACL_NO_GRANT,
	ACL_NOT_ASSIGNED,   /* granted, but not assigned to the agent's project */
	ACL_DISABLED,       /* the agent is disabled */
	ACL_EXPIRED,        /* the grant has expired (acl_grant_get says when) */
	ACL_DB_ERROR,
};

/* Why (not): a short phrase for each decision. */
const char *acl_decision_str(enum acl_decision d);

/* Decide whether agent may read provider/key. Fills *s when the secret
 * exists (s->id != 0). */
enum acl_decision acl_check(struct vault_db *db, const struct acl_agent *agent,
			    const char *provider, const char *key,
			    struct vault_secret *s, struct vault_err *e);

/* The view: for each provider with at least one effective grant of agent
 * (provider id, name), or each granted key of one provider (secret). fn
 * returning non-zero stops. */
int acl_view_providers(struct vault_db *db, const struct acl_agent *agent,
		       int (*fn)(void *, int64_t provider_id, const char *name), void *arg,
		       struct vault_err *e);
int acl_view_keys(struct vault_db *db, const struct acl_agent *agent, int64_t provider_id,
		  int (*fn)(void *, const struct vault_secret *), void *arg, struct vault_err *e);
/* 1 when agent has an effective grant under provider name (fills *provider_id), 0 not, -1 error */
int acl_view_provider(struct vault_db *db, const struct acl_agent *agent, const char *name,
		      int64_t *provider_id, struct vault_err *e);
/* The secret key under provider_id, in one query: 1 effective for agent
 * (fills *s), 0 it exists but is not (fills *s for the audit row), 2 no such
 * secret, -1 error. */
int acl_view_key(struct vault_db *db, const struct acl_agent *agent, int64_t provider_id,
		 const char *key, struct vault_secret *s, struct vault_err *e);
/* Effective secret by id (for getattr/open on an inode): 1 allowed (fills *s), 0 not, -1 error */
int acl_view_secret(struct vault_db *db, const struct acl_agent *agent, int64_t secret_id,
		    struct vault_secret *s, struct vault_err *e);

#endif
