/* ident.h - who is calling: the labels of a process read from /proc (cgroup
 * v2 path, executable device/inode, LSM label), pinned against PID reuse with
 * a pidfd, and the pure matching of those labels against agent bindings.
 * Never prints; never reads a process's environ or cmdline. */
#ifndef SCOPEHOLD_IDENT_H
#define SCOPEHOLD_IDENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ACL_LABEL_MAX 1024

enum {
	ACL_L_CGROUP = 1 << 0,
	ACL_L_EXE = 1 << 1,
	ACL_L_LSM = 1 << 2,
	/* ACL_L_OPTIONAL * ACL_L_x in want: read x for the record only; when
	 * it cannot be read it is left out (have) instead of denying. */
	ACL_L_OPTIONAL = 1 << 8,
};

/* What was read of one calling process. `have` says which labels were read
 * (a label that was not asked for, or that the system has none of, such as
 * lsm without an active LSM, is absent). */
struct acl_labels {
	pid_t pid;            /* the request's pid: a thread id */
	pid_t tgid;           /* its process */
	uid_t uid;            /* fs-uid from status, equal to the request's uid */
	unsigned have;        /* ACL_L_* */
	char cgroup[ACL_LABEL_MAX]; /* "0::" line's path, e.g. "/system.slice/x.service" */
	char exe[ACL_LABEL_MAX];    /* readlink of exe, for display and audit only */
	uint64_t exe_dev, exe_ino;  /* stat of exe: what bindings compare */
	char lsm[256];              /* attr/current, trailing newline removed */
};

/* Read the labels of the thread pid (a FUSE request's pid) under proc_root
 * ("/proc", or a fake tree in tests), asking for `want` (ACL_L_* bits).
 * Rules (all fail closed, returning -1 with a reason in why):
 * - pid <= 0 denies;
 * - the thread is pinned with pidfd_open (PIDFD_THREAD when available) before
 *   any read, and the pidfd is checked to still name a live task after the
 *   reads (only when proc_root is the real "/proc"; a fake tree is not pinned);
 * - Tgid and the fs-uid (4th field of Uid:) come from PID/status; fs-uid must
 *   equal uid;
 * - cgroup: the "0::" line of PID/cgroup (from the thread's tgid dir);
 * - exe: stat() of TGID/exe gives dev/ino, readlink gives the display path;
 * - lsm: TGID/attr/current; EINVAL or ENOENT means no LSM (label absent, not
 *   an error); any other failure denies.
 * Returns 0 on success. */
int acl_labels_read(const char *proc_root, pid_t pid, uid_t uid, unsigned want,
		    struct acl_labels *out, char *why, size_t whylen);

/* One binding of an agent, as the matcher sees it. */
struct acl_binding {
	int64_t agent_id;
	uid_t uid;
	unsigned labels;            /* ACL_L_* that this binding requires */
	const char *cgroup;         /* glob, when ACL_L_CGROUP */
	uint64_t exe_dev, exe_ino;  /* when ACL_L_EXE */
	const char *lsm;            /* exact, when ACL_L_LSM */
};

/* Glob match of a cgroup path: '*', '?', '[...]' within one path component
 * (fnmatch with FNM_PATHNAME); a pattern ending in "/ **" (no space) also
 * matches that directory itself and everything below it. 1 match, 0 not. */
int acl_cgroup_match(const char *glob, const char *path);

enum acl_match_result {
	ACL_MATCH_NONE = 0,
	ACL_MATCH_ONE = 1,
	ACL_MATCH_AMBIGUOUS = 2,
};

/* Among the n bindings (all with uid == l->uid, others are skipped), those
 * whose every required label is present in l and matches; the one with the
 * most labels wins; two with that same count are ambiguous. *winner gets the
 * index of the winner (ONE), or of one of the tied ones (AMBIGUOUS). */
enum acl_match_result acl_match(const struct acl_binding *b, size_t n,
				const struct acl_labels *l, size_t *winner);

#endif
