/* ident.c - who is calling: read a FUSE caller's labels (cgroup v2 path, exe
 * device/inode, LSM label) from /proc, pinned against PID reuse with a pidfd,
 * and match them against agent bindings. Runs on every FUSE request.
 *
 * MUST:
 * - deny (return -1) when a wanted label cannot be read or parsed; the only
 *   absence that is not an error is "no LSM" (EINVAL, ENOENT, EOPNOTSUPP on
 *   attr/current);
 * - deny pid <= 0 (outside our pid namespace, or no credentials): never root;
 * - on the real /proc, pin the task with a pidfd before the first read and
 *   confirm after the last read that it is still alive, so no label read here
 *   belongs to a process that reused the pid;
 * - take Tgid and the fs-uid (4th Uid: field) from status, and deny when the
 *   fs-uid is not the request's uid;
 * - never read environ or cmdline; never print; `why` holds only pids, file
 *   names and errno text, never a label file's raw content or a secret;
 * - no malloc; fixed-size stack buffers, bounded reads, O_CLOEXEC; a label
 *   that does not fit denies, it is never truncated into something that
 *   could match a binding (the exe path is display-only and may be cut).
 */
#include "acl/ident.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <linux/magic.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <sodium.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* the same number on every architecture */
#endif
#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL /* Linux >= 6.9, include/uapi/linux/pidfd.h */
#endif

/* PIDFD_GET_INFO (Linux >= 6.13): tgid and credentials of the pinned task
 * in one ioctl, instead of formatting and parsing its status file. The
 * layout is the kernel's struct pidfd_info, version 0 (64 bytes). */
struct ident_pidfd_info {
	uint64_t mask;
	uint64_t cgroupid;
	uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
	int32_t exit_code;
};
#define IDENT_PIDFD_GET_INFO _IOWR(0xFF, 11, struct ident_pidfd_info)
#define IDENT_PIDFD_INFO_PID (1ULL << 0)
#define IDENT_PIDFD_INFO_CREDS (1ULL << 1)

/* One buffer for status, cgroup and attr/current. status is ~1.5 KiB, the
 * cgroup file of a hybrid host carries a line per v1 hierarchy. */
#define IDENT_BUF 16384

/* Whether pidfd_open() knows PIDFD_THREAD: 0 not probed yet, 1 yes, 2 no.
 * The probe is idempotent, so racing threads may both run it. */
static int pidfd_thread_state;

static int deny(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int deny(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static const char *errtext(int e)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
	const char *s = strerrordesc_np(e); /* static, thread-safe */

	return s ? s : "unknown error";
#else
	return strerror(e);
#endif
}

static int sys_pidfd_open(pid_t pid, unsigned flags)
{
	return (int)syscall(SYS_pidfd_open, pid, flags);
}

static int have_pidfd_thread(void)
{
	int st = __atomic_load_n(&pidfd_thread_state, __ATOMIC_RELAXED);

	if (st == 0) {
		/* Probe on ourselves: an EINVAL for a live task can only mean
		 * the flag is unknown (kernel < 6.9). Probing on the caller
		 * instead would mistake "its thread is exiting" for that. */
		int fd = sys_pidfd_open(getpid(), PIDFD_THREAD);

		if (fd >= 0) {
			close(fd);
			st = 1;
		} else if (errno == EINVAL) {
			st = 2;
		} else {
			return 1; /* EMFILE, ENOMEM...: decide nothing yet, probe again */
		}
		__atomic_store_n(&pidfd_thread_state, st, __ATOMIC_RELAXED);
	}
	return st == 1;
}

/* One bounded read of dirfd/name into buf, NUL-terminated. procfs status and
 * cgroup (single_open seq files) and attr/current hand over their whole
 * content in one read when it fits, as does a regular file; *full says the
 * buffer filled up and more may follow. Returns 0 or -errno. */
static int read_at(int dirfd, const char *name, char *buf, size_t cap, size_t *len, int *full)
{
	ssize_t n;
	int fd, e;

	*len = 0;
	*full = 0;
	buf[0] = '\0';
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0)
		return errno ? -errno : -EIO;
	do
		n = read(fd, buf, cap - 1);
	while (n < 0 && errno == EINTR);
	e = errno ? errno : EIO;
	close(fd);
	if (n < 0)
		return -e;
	buf[n] = '\0';
	*len = (size_t)n;
	*full = (size_t)n == cap - 1;
	return 0;
}

/* Tabs/spaces, then a decimal number <= max. NULL when malformed. */
static const char *parse_num(const char *p, const char *end, uint64_t max, uint64_t *v)
{
	const char *s;
	uint64_t x = 0;

	s = p;
	while (p < end && (*p == '\t' || *p == ' '))
		p++;
	if (p == s || p == end || *p < '0' || *p > '9')
		return NULL;
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		if (x > (max - (uint64_t)(*p - '0')) / 10)
			return NULL;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	*v = x;
	return p;
}

static int line_is(const char *p, const char *nl, const char *key)
{
	size_t k = strlen(key);

	return (size_t)(nl - p) >= k && memcmp(p, key, k) == 0;
}

/* The Tgid: and Uid: lines of a status file. Each must occur exactly once
 * among the complete lines (comm is escaped by the kernel, so a process
 * cannot forge a line; a duplicate is refused anyway). NULL or a reason. */
static const char *parse_status(const char *buf, size_t len, int full, pid_t *tgid, uid_t *fsuid,
				pid_t *tracer)
{
	const char *p = buf, *end = buf + len, *nl, *q;
	uint64_t v, uids[4];
	int seen_tgid = 0, seen_uid = 0, seen_tracer = 0, i;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl) {
			if (full)
				break; /* cut by the buffer: ignore */
			nl = end;
		}
		if (line_is(p, nl, "Tgid:")) {
			if (seen_tgid++)
				return "duplicate Tgid line";
			q = parse_num(p + 5, nl, INT_MAX, &v);
			if (!q || q != nl || v == 0)
				return "malformed Tgid line";
			*tgid = (pid_t)v;
		} else if (line_is(p, nl, "TracerPid:")) {
			if (seen_tracer++)
				return "duplicate TracerPid line";
			q = parse_num(p + 10, nl, INT_MAX, &v);
			if (!q || q != nl)
				return "malformed TracerPid line";
			if (tracer)
				*tracer = (pid_t)v;
		} else if (line_is(p, nl, "Uid:")) {
			if (seen_uid++)
				return "duplicate Uid line";
			q = p + 4;
			for (i = 0; i < 4; i++) {
				q = parse_num(q, nl, UINT32_MAX, &uids[i]);
				if (!q)
					return "malformed Uid line";
			}
			while (q < nl && (*q == '\t' || *q == ' '))
				q++;
			if (q != nl)
				return "malformed Uid line";
			*fsuid = (uid_t)uids[3];
		}
		p = nl + 1;
	}
	if (!seen_tgid)
		return "no Tgid line";
	if (!seen_uid)
		return "no Uid line";
	if (tracer && !seen_tracer)
		return "no TracerPid line";
	return NULL;
}

/* The path of the single "0::" line into out. NULL or a reason. */
static const char *parse_cgroup(const char *buf, size_t len, int full, char *out, size_t outlen)
{
	const char *p = buf, *end = buf + len, *nl, *path = NULL;
	size_t plen = 0;
	int n = 0;

	if (full)
		return "file too long";
	if (memchr(buf, '\0', len))
		return "NUL in file";
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		if (line_is(p, nl, "0::")) {
			n++;
			path = p + 3;
			plen = (size_t)(nl - path);
		}
		p = nl + 1;
	}
	if (n == 0)
		return "no cgroup v2 (0::) line";
	if (n > 1)
		return "more than one 0:: line";
	if (plen == 0 || path[0] != '/')
		return "0:: path is not absolute";
	if (plen >= outlen)
		return "0:: path too long";
	memcpy(out, path, plen);
	out[plen] = '\0';
	/* A cgroup outside our cgroup namespace shows as "/../..": the daemon
	 * must run in the host's; never match such a path. */
	if (strstr(out, "/../") || (plen >= 3 && strcmp(out + plen - 3, "/..") == 0))
		return "0:: path leaves the daemon's cgroup namespace";
	return NULL;
}

/* attr/current into out. 1 read, 0 no LSM, -1 with a reason in *r. */
static int read_lsm(int dirfd, char *buf, size_t cap, char *out, size_t outlen, int *err,
		    const char **r)
{
	size_t len;
	int full, rc;

	rc = read_at(dirfd, "attr/current", buf, cap, &len, &full);
	if (rc == -EINVAL || rc == -ENOENT || rc == -EOPNOTSUPP)
		return 0;
	if (rc < 0) {
		*err = -rc;
		*r = NULL;
		return -1;
	}
	*err = 0;
	if (full) {
		*r = "label too long";
		return -1;
	}
	/* SELinux counts a trailing NUL, AppArmor ends with a newline */
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\0'))
		len--;
	if (len == 0)
		return 0;
	if (memchr(buf, '\0', len) || memchr(buf, '\n', len)) {
		*r = "malformed label";
		return -1;
	}
	if (len >= outlen) {
		*r = "label too long";
		return -1;
	}
	memcpy(out, buf, len);
	out[len] = '\0';
	return 1;
}

static int64_t ts_ns(const struct statx_timestamp *t)
{
	return (int64_t)t->tv_sec * 1000000000 + (int64_t)t->tv_nsec;
}

static void exe_id_of(const struct statx *x, struct acl_exe_id *id)
{
	id->dev = (uint64_t)makedev(x->stx_dev_major, x->stx_dev_minor);
	id->ino = (uint64_t)x->stx_ino;
	id->uid = x->stx_uid;
	id->mode = x->stx_mode;
	id->size = (uint64_t)x->stx_size;
	id->ctime_ns = ts_ns(&x->stx_ctime);
	id->btime_ns = (x->stx_mask & STATX_BTIME) ? ts_ns(&x->stx_btime) : 0;
}

/* Whether the process dir tfd is in the daemon's user namespace: its ns/user
 * is the same nsfs inode as PROC_ROOT/self/ns/user (cached for the real
 * /proc, where "self" is the daemon). Anything unreadable: no. */
static int same_userns(const char *proc_root, int real, int tfd)
{
	static uint64_t own_dev, own_ino; /* 0: not read yet */
	char path[PATH_MAX];
	struct stat own, st;

	if (fstatat(tfd, "ns/user", &st, 0) < 0)
		return 0;
	if (real && __atomic_load_n(&own_ino, __ATOMIC_RELAXED))
		return (uint64_t)st.st_dev == __atomic_load_n(&own_dev, __ATOMIC_RELAXED) &&
		       (uint64_t)st.st_ino == __atomic_load_n(&own_ino, __ATOMIC_RELAXED);
	if (snprintf(path, sizeof path, "%s/self/ns/user", proc_root) >= (int)sizeof path ||
	    stat(path, &own) < 0)
		return 0;
	if (real) {
		__atomic_store_n(&own_dev, (uint64_t)own.st_dev, __ATOMIC_RELAXED);
		__atomic_store_n(&own_ino, (uint64_t)own.st_ino, __ATOMIC_RELAXED);
	}
	return own.st_dev == st.st_dev && own.st_ino == st.st_ino;
}

/* AT_SECURE from the auxv of the process dir tfd: 1, 0, or -1. The vector
 * must be this ABI's: whole pairs of longs, every type a small number,
 * exactly one AT_SECURE and AT_NULL last. A 32-bit process's vector (pairs
 * of 32-bit words) fails that (its AT_PAGESZ pair reads as a huge type), so
 * it is never taken for a secure one. */
static int read_secure(int tfd, char *buf, size_t cap)
{
	unsigned long pair[2];
	size_t len, i;
	int full, secure = -1;

	if (read_at(tfd, "auxv", buf, cap, &len, &full) < 0 || full || len == 0 ||
	    len % sizeof pair != 0)
		return -1;
	for (i = 0; i < len; i += sizeof pair) {
		memcpy(pair, buf + i, sizeof pair);
		if (pair[0] > 64)
			return -1;
		if (pair[0] == AT_NULL)
			return i + sizeof pair == len ? secure : -1;
		if (pair[0] == AT_SECURE) {
			if (secure != -1)
				return -1;
			secure = pair[1] != 0;
		}
	}
	return -1; /* no AT_NULL */
}

/* Pidfds, and why the order is what it is.
 *
 * A pidfd refers to a struct pid; it does not keep the pid number from being
 * reused, but it tells whether the task it named has exited. The task is
 * alive when pinned (it sent the request and waits for our reply unless a
 * fatal signal ended it) and, if it is still alive after the last read, it
 * held its pid during every read in between: /proc/PID was that task. The
 * only window left is between the request and pidfd_open(); closing it would
 * take a pidfd from the kernel with the request, which FUSE does not give.
 *
 * Kernel >= 6.9: pidfd_open(tid, PIDFD_THREAD) pins the very thread. Its
 * process cannot be replaced while a thread of it lives, so TGID/ read in
 * that window is the caller's process too.
 *
 * Older kernels reject PIDFD_THREAD (EINVAL; probed once on ourselves, kept
 * in pidfd_thread_state), and pidfd_open(tid, 0) accepts only a thread-group
 * leader, which most callers are (EINVAL for another thread; ENOENT on newer
 * kernels). For a non-leader thread, status is read first, unpinned, to
 * learn the tgid; then the process is pinned with pidfd_open(tgid, 0), and
 * status is read again as TGID/task/TID/status inside the pinned window: it
 * must exist there (the thread belongs to the pinned process) and agree on
 * Tgid and fs-uid. That pidfd reports only the exit of the whole process,
 * which is enough: labels are per process, and a killed caller thread never
 * receives the reply.
 *
 * The dirfd of /proc/PID is opened after the pin: if the pid was reused in
 * between, the final check fails; a /proc/PID dirfd keeps naming the task it
 * was opened for, so later reads through it cannot drift to a new one. */

int acl_labels_read(const char *proc_root, pid_t pid, uid_t uid, unsigned want,
		    struct acl_labels *out, char *why, size_t whylen)
{
	char buf[IDENT_BUF], path[PATH_MAX], tpath[64];
	const char *r;
	struct statx stx;
	struct statfs sfs;
	struct pollfd pfd;
	size_t len;
	ssize_t n;
	pid_t tgid = 0, tgid2 = 0;
	uid_t fsuid = 0, fsuid2 = 0;
	int real, thread_pin = 0, pin_tgid = 0, pidfd = -1, dfd = -1, tfd = -1, rc = -1;
	int full, e, got;
	unsigned have = 0;

	/* labels wanted for the record only: a failure leaves them out */
	const unsigned all = ACL_L_CGROUP | ACL_L_EXE | ACL_L_LSM | ACL_L_AUXV;
	unsigned opt = (want / ACL_L_OPTIONAL) & all & ~want;
	unsigned need = want & all; /* labels that decide */
	want = (want | opt) & all;
	pid_t tracer = 0, tracer2 = 0;
#define LABEL_FAIL(bit, skip) do { if (opt & (bit)) goto skip; goto out; } while (0)

	if (!out)
		return deny(why, whylen, "no output buffer");
	out->pid = pid;
	out->tgid = 0;
	out->uid = uid;
	out->have = 0;
	out->cgroup[0] = out->exe[0] = out->lsm[0] = '\0';
	out->exe_dev = out->exe_ino = 0;
	memset(&out->exe_id, 0, sizeof out->exe_id);
	out->exe_userns = 0;
	out->tracer = 0;
	out->secure = -1;

	if (pid <= 0)
		return deny(why, whylen,
			    "no pid: caller outside the daemon's pid namespace or no credentials");
	if (uid == (uid_t)-1)
		return deny(why, whylen, "pid %d: request has no uid", (int)pid);
	if (!proc_root || !*proc_root)
		return deny(why, whylen, "pid %d: no proc_root", (int)pid);
	real = strcmp(proc_root, "/proc") == 0;

	if (real) {
		thread_pin = have_pidfd_thread();
		if (thread_pin) {
			pidfd = sys_pidfd_open(pid, PIDFD_THREAD);
		} else {
			/* a thread that is not its group's leader: EINVAL
			 * before 6.9, ENOENT after; pin its tgid after status */
			pidfd = sys_pidfd_open(pid, 0);
			if (pidfd < 0 && (errno == EINVAL || errno == ENOENT))
				pin_tgid = 1;
		}
		if (pidfd < 0 && !pin_tgid) {
			e = errno;
			return deny(why, whylen, "pid %d: pidfd_open: %s", (int)pid,
				    e == ESRCH || e == EINVAL || e == ENOENT ? "no such task (exited?)"
							       : errtext(e));
		}
	}

	/* Fast path: the pinned thread's tgid and fs-uid straight from its
	 * pidfd. Any failure but "exited" falls back to the status file. */
	int info = 0;
	if (real && thread_pin && pidfd >= 0) {
		struct ident_pidfd_info pi;
		memset(&pi, 0, sizeof pi);
		pi.mask = IDENT_PIDFD_INFO_PID | IDENT_PIDFD_INFO_CREDS;
		if (ioctl(pidfd, IDENT_PIDFD_GET_INFO, &pi) == 0) {
			const uint64_t mask = IDENT_PIDFD_INFO_PID | IDENT_PIDFD_INFO_CREDS;
			if ((pi.mask & mask) == mask && pi.tgid > 0 && pi.tgid <= INT_MAX) {
				tgid = (pid_t)pi.tgid;
				fsuid = (uid_t)pi.fsuid;
				info = 1;
			}
		} else if (errno == ESRCH) {
			deny(why, whylen, "pid %d: exited before it could be read", (int)pid);
			goto out;
		}
	}
	if (info) {
		if (fsuid != uid) {
			deny(why, whylen, "pid %d: fs-uid %u does not match request uid %u", (int)pid,
			     (unsigned)fsuid, (unsigned)uid);
			goto out;
		}
		if (want) {
			if (snprintf(path, sizeof path, "%s/%d", proc_root, (int)tgid) >= (int)sizeof path) {
				deny(why, whylen, "pid %d: proc_root too long", (int)pid);
				goto out;
			}
			tfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
			if (tfd < 0) {
				deny(why, whylen, "pid %d: open %s: %s", (int)pid, path, errtext(errno));
				goto out;
			}
		}
		if (need) { /* TracerPid is the thread's own, and not in pidfd_info */
			snprintf(tpath, sizeof tpath, "task/%d/status", (int)pid);
			e = read_at(tfd, tpath, buf, sizeof buf, &len, &full);
			if (e < 0) {
				deny(why, whylen, "pid %d: read %d/%s: %s", (int)pid, (int)tgid, tpath,
				     errtext(-e));
				goto out;
			}
			r = parse_status(buf, len, full, &tgid2, &fsuid2, &tracer);
			if (r || tgid2 != tgid || fsuid2 != uid) {
				deny(why, whylen, "pid %d: %s", (int)pid, r ? r : "changed while being read");
				goto out;
			}
		}
		goto labels;
	}

	if (snprintf(path, sizeof path, "%s/%d", proc_root, (int)pid) >= (int)sizeof path) {
		deny(why, whylen, "pid %d: proc_root too long", (int)pid);
		goto out;
	}
	dfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		deny(why, whylen, "pid %d: open %s: %s", (int)pid, path, errtext(errno));
		goto out;
	}
	if (!real) {
		/* A fake tree is read unpinned; a procfs under another name
		 * ("/proc/", a bind mount) would silently lose the pidfd. */
		if (fstatfs(dfd, &sfs) < 0) {
			deny(why, whylen, "pid %d: fstatfs %s: %s", (int)pid, path, errtext(errno));
			goto out;
		}
		if (sfs.f_type == PROC_SUPER_MAGIC) {
			deny(why, whylen, "pid %d: proc_root is a procfs but not \"/proc\"", (int)pid);
			goto out;
		}
	}

	e = read_at(dfd, "status", buf, sizeof buf, &len, &full);
	if (e < 0) {
		deny(why, whylen, "pid %d: read status: %s", (int)pid, errtext(-e));
		goto out;
	}
	r = parse_status(buf, len, full, &tgid, &fsuid, need ? &tracer : NULL);
	if (r) {
		deny(why, whylen, "pid %d: status: %s", (int)pid, r);
		goto out;
	}
	if (fsuid != uid) {
		deny(why, whylen, "pid %d: fs-uid %u does not match request uid %u", (int)pid,
		     (unsigned)fsuid, (unsigned)uid);
		goto out;
	}

	/* Older kernels: a process pidfd on pid is right only for a leader,
	 * a pidfd on the tgid only for another thread (see above). */
	if (real && !thread_pin && (tgid == pid) == pin_tgid) {
		deny(why, whylen, "pid %d: changed while being pinned", (int)pid);
		goto out;
	}
	if (tgid == pid) {
		tfd = dfd;
	} else {
		if (snprintf(path, sizeof path, "%s/%d", proc_root, (int)tgid) >= (int)sizeof path) {
			deny(why, whylen, "pid %d: proc_root too long", (int)pid);
			goto out;
		}
		if (pin_tgid) {
			pidfd = sys_pidfd_open(tgid, 0);
			if (pidfd < 0) {
				deny(why, whylen, "pid %d: pidfd_open of tgid %d: %s", (int)pid,
				     (int)tgid, errtext(errno));
				goto out;
			}
		}
		tfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (tfd < 0) {
			deny(why, whylen, "pid %d: open %s: %s", (int)pid, path, errtext(errno));
			goto out;
		}
		if (pin_tgid) {
			snprintf(tpath, sizeof tpath, "task/%d/status", (int)pid);
			e = read_at(tfd, tpath, buf, sizeof buf, &len, &full);
			if (e < 0) {
				deny(why, whylen, "pid %d: read %d/%s: %s", (int)pid, (int)tgid,
				     tpath, errtext(-e));
				goto out;
			}
			r = parse_status(buf, len, full, &tgid2, &fsuid2, need ? &tracer2 : NULL);
			if (r || tgid2 != tgid || fsuid2 != uid) {
				deny(why, whylen, "pid %d: changed while being pinned", (int)pid);
				goto out;
			}
			if (tracer2) /* read inside the pinned window */
				tracer = tracer2;
		}
	}

labels:
	if (want & ACL_L_CGROUP) {
		e = read_at(tfd, "cgroup", buf, sizeof buf, &len, &full);
		if (e < 0) {
			deny(why, whylen, "pid %d (tgid %d): read cgroup: %s", (int)pid, (int)tgid,
			     errtext(-e));
			LABEL_FAIL(ACL_L_CGROUP, no_cgroup);
		}
		r = parse_cgroup(buf, len, full, out->cgroup, sizeof out->cgroup);
		if (r) {
			deny(why, whylen, "pid %d (tgid %d): cgroup: %s", (int)pid, (int)tgid, r);
			LABEL_FAIL(ACL_L_CGROUP, no_cgroup);
		}
		have |= ACL_L_CGROUP;
	}
no_cgroup:
	if (!(have & ACL_L_CGROUP))
		out->cgroup[0] = '\0';

	if (want & ACL_L_EXE) {
		/* follows the magic link to the running binary, also when it
		 * was deleted or replaced on disk since */
		/* DONT_SYNC: a binary on a network or FUSE filesystem never
		 * makes a worker wait for that filesystem */
		if (statx(tfd, "exe", AT_STATX_DONT_SYNC, STATX_BASIC_STATS | STATX_BTIME, &stx) < 0) {
			deny(why, whylen, "pid %d (tgid %d): stat exe: %s", (int)pid, (int)tgid,
			     errtext(errno));
			LABEL_FAIL(ACL_L_EXE, no_exe);
		}
		if (!S_ISREG(stx.stx_mode)) {
			deny(why, whylen, "pid %d (tgid %d): exe is not a regular file", (int)pid,
			     (int)tgid);
			LABEL_FAIL(ACL_L_EXE, no_exe);
		}
		n = readlinkat(tfd, "exe", out->exe, sizeof out->exe);
		if (n < 0) {
			deny(why, whylen, "pid %d (tgid %d): readlink exe: %s", (int)pid, (int)tgid,
			     errtext(errno));
			LABEL_FAIL(ACL_L_EXE, no_exe);
		}
		if ((size_t)n >= sizeof out->exe) /* display only: cut, and say so */
			memcpy(out->exe + sizeof out->exe - 4, "...", 4);
		else
			out->exe[n] = '\0';
		exe_id_of(&stx, &out->exe_id);
		out->exe_dev = out->exe_id.dev;
		out->exe_ino = out->exe_id.ino;
		/* An exe label is good only in the daemon's user namespace: in
		 * one of its own, a process may repoint its exe (PR_SET_MM_MAP) */
		if (need & ACL_L_EXE)
			out->exe_userns = same_userns(proc_root, real, tfd);
		have |= ACL_L_EXE;
	}
no_exe:

	if (want & ACL_L_AUXV) {
		got = read_secure(tfd, buf, sizeof buf);
		if (got < 0) {
			deny(why, whylen, "pid %d (tgid %d): auxv: cannot read AT_SECURE", (int)pid,
			     (int)tgid);
			LABEL_FAIL(ACL_L_AUXV, no_auxv);
		}
		out->secure = got;
		have |= ACL_L_AUXV;
	}
no_auxv:

	if (want & ACL_L_LSM) {
		got = read_lsm(tfd, buf, sizeof buf, out->lsm, sizeof out->lsm, &e, &r);
		if (got < 0) {
			deny(why, whylen, "pid %d (tgid %d): attr/current: %s", (int)pid, (int)tgid,
			     r ? r : errtext(e));
			LABEL_FAIL(ACL_L_LSM, no_lsm);
		}
		if (got > 0)
			have |= ACL_L_LSM;
	}
no_lsm:

	if (real) {
		if (pidfd < 0) { /* cannot happen; poll() would skip it */
			deny(why, whylen, "pid %d: not pinned", (int)pid);
			goto out;
		}
		/* POLLIN: the task exited (a zombie too); POLLHUP: reaped */
		pfd.fd = pidfd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		do
			e = poll(&pfd, 1, 0);
		while (e < 0 && errno == EINTR);
		if (e != 0) {
			deny(why, whylen, "pid %d: %s", (int)pid,
			     e < 0 ? "poll on pidfd failed" : "exited during the read");
			goto out;
		}
	}

	out->tgid = tgid;
	out->uid = fsuid;
	out->have = have;
	out->tracer = tracer;
	rc = 0;
out:
	if (rc < 0) {
		out->have = 0;
		out->cgroup[0] = out->exe[0] = out->lsm[0] = '\0';
		out->exe_dev = out->exe_ino = 0;
		memset(&out->exe_id, 0, sizeof out->exe_id);
		out->exe_userns = 0;
		out->secure = -1;
	}
	if (tfd >= 0 && tfd != dfd)
		close(tfd);
	if (dfd >= 0)
		close(dfd);
	if (pidfd >= 0)
		close(pidfd);
	return rc;
}

int acl_cgroup_match(const char *glob, const char *path)
{
	char base[PATH_MAX];
	size_t gl;

	if (!glob || !path || !*glob)
		return 0;
	if (fnmatch(glob, path, FNM_PATHNAME) == 0)
		return 1;
	gl = strlen(glob);
	if (gl < 3 || strcmp(glob + gl - 3, "/**") != 0 || gl - 3 >= sizeof base)
		return 0;
	/* "DIR/ **" (no space): DIR itself or anything below it. FNM_LEADING_DIR ignores
	 * a rest of path that starts with '/' once DIR has matched. */
	memcpy(base, glob, gl - 3);
	base[gl - 3] = '\0';
	return fnmatch(base, path, FNM_PATHNAME | FNM_LEADING_DIR) == 0;
}

/* 1 when b's labels are all present in l and match, 0 not. */
static int labels_match(const struct acl_binding *b, const struct acl_labels *l)
{
	const unsigned known = ACL_L_CGROUP | ACL_L_EXE | ACL_L_LSM;

	if (b->labels & ~known)
		return 0; /* a label we cannot check never matches */
	if ((b->labels & l->have) != b->labels)
		return 0;
	if ((b->labels & ACL_L_CGROUP) && !acl_cgroup_match(b->cgroup, l->cgroup))
		return 0;
	if ((b->labels & ACL_L_EXE) && (b->exe_dev != l->exe_dev || b->exe_ino != l->exe_ino))
		return 0;
	if ((b->labels & ACL_L_LSM) && (!b->lsm || strcmp(b->lsm, l->lsm) != 0))
		return 0;
	return 1;
}

/* For a binding whose labels match: the ACL_R_* checks on the caller that
 * fail (0: accepted). */
static unsigned refusals(const struct acl_binding *b, const struct acl_labels *l)
{
	unsigned r = 0;

	if (b->labels && l->tracer != 0)
		r |= ACL_R_TRACED;
	if (b->labels & ACL_L_EXE) {
		const struct acl_exe_id *x = &b->exe_id, *y = &l->exe_id;

		if (!l->exe_userns)
			r |= ACL_R_USERNS;
		/* the inode number alone is recycled: the file must be the
		 * one bound, unchanged (a chmod, chown or write moves ctime) */
		if (x->uid != y->uid || x->size != y->size || x->ctime_ns != y->ctime_ns ||
		    (x->btime_ns && y->btime_ns && x->btime_ns != y->btime_ns))
			r |= ACL_R_EXE_CHANGED;
	}
	if (b->require_secure && l->secure != 1)
		r |= ACL_R_INSECURE;
	return r;
}

enum acl_match_result acl_match(const struct acl_binding *b, size_t n,
				const struct acl_labels *l, size_t *winner, unsigned *refused)
{
	size_t i, best = 0, rbest = 0;
	int best_count = -1, rcount = -1, tied = 0, c;
	unsigned rbits = 0, r;

	if (refused)
		*refused = 0;
	if (!b || !l)
		return ACL_MATCH_NONE;
	for (i = 0; i < n; i++) {
		if (b[i].uid != l->uid || !labels_match(&b[i], l))
			continue;
		c = __builtin_popcount(b[i].labels);
		r = refusals(&b[i], l);
		if (r) {
			if (c > rcount) {
				rcount = c;
				rbest = i;
				rbits = 0;
			}
			if (c == rcount)
				rbits |= r;
			continue;
		}
		if (c > best_count) {
			best = i;
			best_count = c;
			tied = 0;
		} else if (c == best_count) {
			tied = 1;
		}
	}
	if (rcount >= 0 && rcount >= best_count) {
		if (winner)
			*winner = rbest;
		if (refused)
			*refused = rbits;
		return ACL_MATCH_REFUSED;
	}
	if (best_count < 0)
		return ACL_MATCH_NONE;
	if (winner)
		*winner = best;
	return tied ? ACL_MATCH_AMBIGUOUS : ACL_MATCH_ONE;
}

const char *acl_refused_str(unsigned refused)
{
	/* the most telling first */
	if (refused & ACL_R_TRACED)
		return "traced";
	if (refused & ACL_R_USERNS)
		return "exe-in-user-namespace";
	if (refused & ACL_R_EXE_CHANGED)
		return "exe-changed";
	if (refused & ACL_R_INSECURE)
		return "not-secure-exec";
	return "refused";
}

int acl_ptrace_scope(const char *proc_root)
{
	char path[PATH_MAX], buf[16];
	ssize_t n;
	int fd;

	if (!proc_root || snprintf(path, sizeof path, "%s/sys/kernel/yama/ptrace_scope", proc_root) >=
				  (int)sizeof path)
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0 || buf[0] < '0' || buf[0] > '3')
		return -1;
	return buf[0] - '0';
}

/* One directory on the way to an executable: refused when a uid other than
 * root owns it or may write it (group/other write without the sticky bit,
 * which keeps others from renaming a root-owned file away). */
static int dir_safe(const char *dir, char *why, size_t whylen)
{
	struct stat st;

	if (stat(dir, &st) < 0)
		return deny(why, whylen, "directory '%s': %s", dir, errtext(errno));
	if (st.st_uid != 0)
		return deny(why, whylen,
			    "directory '%s' of the executable is owned by uid %u, who could replace it; "
			    "install the binary under a root-owned directory (chown root '%s')",
			    dir, (unsigned)st.st_uid, dir);
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))
		return deny(why, whylen,
			    "directory '%s' of the executable is writable by group or others; "
			    "run: chmod go-w '%s'", dir, dir);
	return 0;
}

int acl_exe_record(const char *path, struct acl_exe_id *id, unsigned char *hash,
		   char *why, size_t whylen)
{
	char dir[PATH_MAX], *slash;
	struct statx x;
	int fd, rc = -1;

	memset(id, 0, sizeof *id);
	if (!path || path[0] != '/')
		return deny(why, whylen, "executable '%.200s' must be an absolute path", path ? path : "");
	if (strlen(path) >= sizeof dir)
		return deny(why, whylen, "executable path is too long");
	/* the file itself, through one fd: what is checked is what is hashed */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return deny(why, whylen, "executable '%s': %s", path, errtext(errno));
	if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_BTIME, &x) < 0) {
		deny(why, whylen, "executable '%s': %s", path, errtext(errno));
		goto out;
	}
	if (!S_ISREG(x.stx_mode)) {
		deny(why, whylen, "executable '%s' is not a regular file", path);
		goto out;
	}
	if (x.stx_uid != 0) {
		deny(why, whylen, "executable '%s' is owned by uid %u, who can rewrite it and run any code "
		     "as the agent; install it owned by root (chown root '%s')", path,
		     (unsigned)x.stx_uid, path);
		goto out;
	}
	if (x.stx_mode & (S_IWGRP | S_IWOTH)) {
		deny(why, whylen, "executable '%s' is writable by group or others; run: chmod go-w '%s'",
		     path, path);
		goto out;
	}
	/* every ancestor directory, from the binary's own up to "/" (the
	 * path as given: a symbolic link on the way is checked where it
	 * points, by stat, and the link's own directory by this walk) */
	strcpy(dir, path);
	while ((slash = strrchr(dir, '/'))) {
		if (slash == dir) {
			if (dir_safe("/", why, whylen) < 0)
				goto out;
			break;
		}
		*slash = '\0';
		if (dir_safe(dir, why, whylen) < 0)
			goto out;
	}
	exe_id_of(&x, id);
	if (hash) {
		crypto_generichash_state h;
		unsigned char chunk[65536];
		ssize_t n;

		crypto_generichash_init(&h, NULL, 0, 32);
		while ((n = read(fd, chunk, sizeof chunk)) > 0)
			crypto_generichash_update(&h, chunk, (unsigned long long)n);
		if (n < 0) {
			deny(why, whylen, "executable '%s': read: %s", path, errtext(errno));
			goto out;
		}
		crypto_generichash_final(&h, hash, 32);
	}
	rc = 0;
out:
	close(fd);
	return rc;
}
