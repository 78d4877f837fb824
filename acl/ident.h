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
	/* not a label (never counts toward specificity): read AT_SECURE from
	 * auxv, for bindings that require a secure-mode exec */
	ACL_L_AUXV = 1 << 3,
	/* ACL_L_OPTIONAL * ACL_L_x in want: read x for the record only; when
	 * it cannot be read it is left out (have) instead of denying. */
	ACL_L_OPTIONAL = 1 << 8,
};

/* What an exe binding records of its file at `agent add`, and what the
 * resolver compares with the caller's executable (a statx through
 * /proc/PID/exe): the file, unchanged since it was bound. */
struct acl_exe_id {
	uint64_t dev, ino;
	uint32_t uid, mode;
	uint64_t size;
	int64_t ctime_ns;
	int64_t btime_ns; /* 0 where the filesystem keeps no birth time */
};

/* Fill *id from the executable at path, and refuse a file that another uid
 * than root could change: not a regular file, not owned by root, writable by
 * group or others, or in a directory (or any ancestor) that a non-root uid
 * owns or may write without the sticky bit. 0, or -1 with one line in why
 * saying how to fix it. hash (32 bytes, may be NULL) gets a BLAKE2b-256 of
 * the contents, for display. */
int acl_exe_record(const char *path, struct acl_exe_id *id, unsigned char *hash,
		   char *why, size_t whylen);

/* Kernel's Yama ptrace_scope under proc_root (sys/kernel/yama/ptrace_scope):
 * 0..3, or -1 when there is no Yama (then any process may ptrace, read and
 * write the memory of any other process of its uid). */
int acl_ptrace_scope(const char *proc_root);

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
	struct acl_exe_id exe_id;   /* the whole statx of exe (dev/ino as above) */
	int exe_userns;             /* 1: the caller is in the daemon's user namespace */
	pid_t tracer;               /* TracerPid of the calling thread (when labels were wanted) */
	int secure;                 /* AT_SECURE of the process: 1, 0, or -1 not read */
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
 *   an error); any other failure denies;
 * - when a label is wanted (not only for the record) the calling thread's
 *   TracerPid is read into tracer; with ACL_L_EXE, exe_userns says whether
 *   TGID/ns/user is the daemon's (PROC_ROOT/self/ns/user); with ACL_L_AUXV,
 *   secure gets AT_SECURE from TGID/auxv (an unreadable auxv denies).
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
	struct acl_exe_id exe_id;   /* when ACL_L_EXE; exe_id.ctime_ns 0: not recorded */
	const char *lsm;            /* exact, when ACL_L_LSM */
	int require_secure;         /* match only callers exec'd with AT_SECURE */
};

/* Glob match of a cgroup path: '*', '?', '[...]' within one path component
 * (fnmatch with FNM_PATHNAME); a pattern ending in "/ **" (no space) also
 * matches that directory itself and everything below it. 1 match, 0 not. */
int acl_cgroup_match(const char *glob, const char *path);

enum acl_match_result {
	ACL_MATCH_NONE = 0,
	ACL_MATCH_ONE = 1,
	ACL_MATCH_AMBIGUOUS = 2,
	ACL_MATCH_REFUSED = 3, /* the best match is refused: see *refused */
};

/* Why a binding whose labels match was refused all the same. */
enum {
	ACL_R_TRACED = 1 << 0,      /* the caller is traced: nobody's agent by label */
	ACL_R_EXE_CHANGED = 1 << 1, /* same (dev, ino), not the file that was bound */
	ACL_R_USERNS = 1 << 2,      /* exe label of a caller in another user namespace */
	ACL_R_INSECURE = 1 << 3,    /* binding wants AT_SECURE, the caller has not */
};

/* Among the n bindings (all with uid == l->uid, others are skipped), those
 * whose every required label is present in l and matches; the one with the
 * most labels wins; two with that same count are ambiguous. A binding whose
 * labels match but which fails a check on the caller (ACL_R_*) is refused:
 * when a refused binding is at least as specific as every accepted one, the
 * result is REFUSED (the caller looks like that agent and is not: deny, do
 * not fall back to a weaker binding) and *refused (may be NULL) gets the
 * ACL_R_* bits of those bindings. *winner gets the index of the winner (ONE),
 * of one of the tied ones (AMBIGUOUS), or of the refused one (REFUSED). */
enum acl_match_result acl_match(const struct acl_binding *b, size_t n,
				const struct acl_labels *l, size_t *winner, unsigned *refused);

/* A phrase for ACL_R_* bits: "traced", "exe-changed", ... */
const char *acl_refused_str(unsigned refused);

#endif
