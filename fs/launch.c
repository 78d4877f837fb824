/* launch.c - the launch socket: `scopeholdctl run --agent NAME` asks to be
 * placed into agent NAME, and the daemon moves the asking process into a
 * root-owned cgroup <[launch] cgroup>/NAME/<instance> that a --launched
 * binding matches. One thread serves every connection (poll, a deadline
 * per client) and removes instance cgroups once they are empty.
 *
 * MUST:
 * - take the caller from the socket (SO_PEERCRED, a pidfd), never from the
 *   request; the fs-uid read under /proc must equal the socket's uid;
 * - refuse unless that uid is the agent's, the agent is enabled and bound
 *   --launched, and the caller is not already inside the launch tree (a
 *   launched process cannot launch itself, or anything, as another agent);
 * - move only the pinned process: if the pidfd says it exited before the
 *   move was confirmed, kill whatever is in the new instance and refuse;
 * - commit the audit row of a launch before replying OK; refuse a request
 *   that is not exactly one well-formed struct sh_launch_req, and drop a
 *   client silent past its deadline, without holding up other clients. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fs/fs.h"
#include "fs/launch_proto.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux >= 6.5 */
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#define LAUNCH_CLIENTS 64          /* connections being read at once */
#define LAUNCH_DEADLINE_MS 1000    /* a client must send its request by then */
#define LAUNCH_PER_UID 4           /* connections of one uid being read at once */
#define LAUNCH_REAP_MS 1000        /* how often empty instances are removed */

struct client {
	int fd;
	uid_t uid;              /* from SO_PEERCRED at accept */
	int64_t deadline_ms;
	size_t got;
	struct sh_launch_req req;
};

struct fs_launch {
	struct fs_state *fs;
	pthread_t thread;
	int lfd, wake[2];
	char sock[sizeof ((struct sockaddr_un *)0)->sun_path];
	char cg2[PATH_MAX];     /* cgroup v2 mount */
	char base[PATH_MAX];    /* [launch] cgroup, relative to cg2 */
	struct vault_db *db;
	uint64_t seq;
	struct client c[LAUNCH_CLIENTS];
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An audit row of the launcher; granted rows are waited for. */
static int launch_audit(struct fs_launch *L, const char *result, const char *reason,
			const char *agent, const struct ucred *cr, const struct acl_labels *l)
{
	struct audit_row r = {
		.event = "launch",
		.result = result,
		.reason = reason,
		.agent = agent,
		.uid = cr ? (int64_t)cr->uid : -1,
		.gid = cr ? (int64_t)cr->gid : -1,
		.pid = cr ? cr->pid : -1,
		.tgid = l && l->tgid ? l->tgid : -1,
		.sudo_uid = -1,
		.exe = l && (l->have & ACL_L_EXE) ? l->exe : NULL,
		.cgroup = l && (l->have & ACL_L_CGROUP) ? l->cgroup : NULL,
		.count = 1,
	};
	return audit_writer_submit(L->fs->audit, &r, !strcmp(result, "granted"));
}

static void reply(int fd, enum sh_launch_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reply(int fd, enum sh_launch_status st, const char *fmt, ...)
{
	struct sh_launch_rep rep;
	va_list ap;

	memset(&rep, 0, sizeof rep);
	rep.magic = SH_LAUNCH_MAGIC;
	rep.version = SH_LAUNCH_VERSION;
	rep.status = (uint16_t)st;
	va_start(ap, fmt);
	vsnprintf(rep.msg, sizeof rep.msg, fmt, ap);
	va_end(ap);
	/* the client waits for exactly this; a full socket buffer is its loss */
	if (send(fd, &rep, sizeof rep, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		return;
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW), rc = 0;

	if (fd < 0)
		return -1;
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		rc = -1;
	if (close(fd) < 0)
		rc = -1;
	return rc;
}

/* The directory PATH exists, root-owned and not writable by others
 * (created 0755 if missing). 0 or -1 with errno. */
static int root_dir(const char *path)
{
	struct stat st;

	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -1;
	if (lstat(path, &st) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		errno = EPERM;
		return -1;
	}
	return 0;
}

/* 1 when process pid is in the daemon's namespace of kind ("pid", "user"). */
static int same_ns(const char *proc_root, pid_t pid, const char *kind)
{
	char a[PATH_MAX], b[PATH_MAX];
	struct stat x, y;

	snprintf(a, sizeof a, "%s/%d/ns/%s", proc_root, (int)pid, kind);
	snprintf(b, sizeof b, "%s/self/ns/%s", proc_root, kind);
	return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

static int pidfd_alive(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	return poll(&p, 1, 0) == 0;
}

/* One complete request from cl: decide, move, audit, reply. */
static void handle(struct fs_launch *L, struct client *cl)
{
	struct ucred cr;
	socklen_t len = sizeof cr;
	struct acl_labels l;
	struct vault_err e = { 0 };
	struct acl_agent a;
	char name[SH_LAUNCH_NAME_MAX + 1], why[400], dir[PATH_MAX], inst[PATH_MAX], path[PATH_MAX * 2];
	char rel[PATH_MAX];
	int pidfd = -1, found;
	size_t bl = strlen(L->base);

	memset(&l, 0, sizeof l);
	why[0] = '\0';
	if (getsockopt(cl->fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 || cr.pid <= 0) {
		reply(cl->fd, SH_LAUNCH_FAILED, "cannot read the caller's credentials");
		return;
	}
	if (cl->req.magic != SH_LAUNCH_MAGIC || cl->req.version != SH_LAUNCH_VERSION ||
	    cl->req.name_len == 0 || cl->req.name_len > SH_LAUNCH_NAME_MAX) {
		launch_audit(L, "denied", "malformed launch request", NULL, &cr, NULL);
		reply(cl->fd, SH_LAUNCH_REFUSED, "malformed request (protocol version %d expected)",
		      SH_LAUNCH_VERSION);
		return;
	}
	memcpy(name, cl->req.name, cl->req.name_len);
	name[cl->req.name_len] = '\0';
	if (vault_name_checkn("agent", cl->req.name, cl->req.name_len, &e) < 0) {
		launch_audit(L, "denied", "malformed agent name", NULL, &cr, NULL);
		reply(cl->fd, SH_LAUNCH_REFUSED, "%s", e.msg);
		return;
	}
	/* pin the very process that connected */
	len = sizeof pidfd;
	if (getsockopt(cl->fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0) {
		/* Only a kernel without SO_PEERPIDFD (< 6.5) may fall back to
		 * the pid: any other failure means the peer is gone, and its
		 * pid may already name another process. */
		if (errno != ENOPROTOOPT) {
			launch_audit(L, "denied", "caller exited before it could be pinned", name, &cr, NULL);
			reply(cl->fd, SH_LAUNCH_FAILED, "cannot pin the calling process");
			return;
		}
		pidfd = (int)syscall(SYS_pidfd_open, cr.pid, 0);
		if (pidfd < 0) {
			launch_audit(L, "denied", "caller exited before it could be pinned", name, &cr, NULL);
			reply(cl->fd, SH_LAUNCH_FAILED, "cannot pin the calling process");
			return;
		}
	}
	if (acl_labels_read(L->fs->cfg.proc_root, cr.pid, cr.uid, ACL_L_CGROUP | ACL_L_OPTIONAL * ACL_L_EXE,
			    &l, why, sizeof why) < 0 || !pidfd_alive(pidfd)) {
		launch_audit(L, "denied", why[0] ? why : "caller exited", name, &cr, NULL);
		reply(cl->fd, SH_LAUNCH_REFUSED, "cannot read the calling process");
		goto out;
	}
	/* A launch is for host processes: a container (which may reach the
	 * socket through a bind of /run/scopehold) is not moved out of its
	 * cgroup into an agent's. */
	if (!same_ns(L->fs->cfg.proc_root, cr.pid, "pid") || !same_ns(L->fs->cfg.proc_root, cr.pid, "user")) {
		launch_audit(L, "denied", "caller is in a pid or user namespace of its own (a container)", name,
			     &cr, &l);
		reply(cl->fd, SH_LAUNCH_REFUSED, "launches are only for processes in the host's pid and user "
		      "namespaces");
		goto out;
	}
	if (!strncmp(l.cgroup, L->base, bl) && (l.cgroup[bl] == '/' || !l.cgroup[bl])) {
		snprintf(why, sizeof why, "caller is already inside the launch tree (%s)", l.cgroup);
		launch_audit(L, "denied", why, name, &cr, &l);
		reply(cl->fd, SH_LAUNCH_REFUSED, "a launched process cannot launch an agent");
		goto out;
	}
	if (!L->db && !(L->db = acl_db_open(L->fs->cfg.db, VAULT_DB_NOMIGRATE, &e))) {
		launch_audit(L, "error", e.msg, name, &cr, &l);
		reply(cl->fd, SH_LAUNCH_FAILED, "database unavailable");
		goto out;
	}
	/* A process that is already an agent by its labels (a service in
	 * its unit's cgroup, a bound binary) stays that agent: it may not
	 * become another one of its uid through the launcher. */
	struct acl_who who;
	if (acl_resolve(L->db, L->fs->cfg.proc_root, cr.uid, cr.pid, 0, &who) == 0 && who.agent.labels) {
		snprintf(why, sizeof why, "caller is agent '%s' by its labels; a labelled agent cannot launch "
			 "as another", who.agent.name);
		launch_audit(L, "denied", why, name, &cr, &l);
		reply(cl->fd, SH_LAUNCH_REFUSED, "this process is already an agent by its labels");
		goto out;
	}
	if (who.result == ACL_WHO_AMBIGUOUS || (who.result == ACL_WHO_NONE && who.refused)) {
		launch_audit(L, "denied", who.reason, name, &cr, &l);
		reply(cl->fd, SH_LAUNCH_REFUSED, "this process matches a label binding it cannot be");
		goto out;
	}
	found = acl_agent_get(L->db, name, &a, &e);
	if (found < 0) {
		vault_db_close(L->db);
		L->db = NULL;
		launch_audit(L, "error", e.msg, name, &cr, &l);
		reply(cl->fd, SH_LAUNCH_FAILED, "database unavailable");
		goto out;
	}
	/* one answer for "no such agent", "not launched" and "not yours": the
	 * names of other uids' agents are not the caller's to learn */
	if (!found || !a.launched || a.uid != cr.uid) {
		snprintf(why, sizeof why, "%s", !found ? "no such agent" : !a.launched ?
			 "agent is not bound --launched" : "caller's uid is not the agent's");
		launch_audit(L, "denied", why, found ? name : NULL, &cr, &l);
		reply(cl->fd, SH_LAUNCH_REFUSED, "no launched agent '%s' for uid %u", name,
		      (unsigned)cr.uid);
		goto out;
	}
	if (!a.enabled) {
		launch_audit(L, "denied", "agent disabled", name, &cr, &l);
		reply(cl->fd, SH_LAUNCH_REFUSED, "agent '%s' is disabled", name);
		goto out;
	}
	if (acl_launch_dir(L->base, name, rel, sizeof rel, &e) < 0 ||
	    snprintf(dir, sizeof dir, "%s%s", L->cg2, rel) >= (int)sizeof dir ||
	    root_dir(dir) < 0 ||
	    snprintf(inst, sizeof inst, "%s/i%llu-%d", dir, (unsigned long long)++L->seq,
		     (int)cr.pid) >= (int)sizeof inst ||
	    mkdir(inst, 0755) < 0) {
		snprintf(why, sizeof why, "cannot make the instance cgroup under '%s': %s", dir,
			 strerror(errno));
		launch_audit(L, "error", why, name, &cr, &l);
		reply(cl->fd, SH_LAUNCH_FAILED, "cannot make the launch cgroup");
		goto out;
	}
	snprintf(path, sizeof path, "%s/cgroup.procs", inst);
	char pidtext[24];
	snprintf(pidtext, sizeof pidtext, "%d", (int)cr.pid);
	int moved = pidfd_alive(pidfd) && write_file(path, pidtext) == 0;
	int err = errno;
	/* the process moved is the one pinned only if it still lives now */
	if (!moved || !pidfd_alive(pidfd) ||
	    acl_labels_read(L->fs->cfg.proc_root, cr.pid, cr.uid, ACL_L_CGROUP, &l, why, sizeof why) < 0 ||
	    strcmp(l.cgroup, inst + strlen(L->cg2)) != 0) {
		snprintf(path, sizeof path, "%s/cgroup.kill", inst);
		write_file(path, "1");
		snprintf(why, sizeof why, "could not confirm the move into '%s'%s%s", inst + strlen(L->cg2),
			 moved ? "" : ": ", moved ? "" : strerror(err));
		launch_audit(L, "error", why, name, &cr, &l);
		reply(cl->fd, SH_LAUNCH_FAILED, "could not move the process");
		goto out;
	}
	snprintf(why, sizeof why, "launched into %s", l.cgroup);
	if (launch_audit(L, "granted", why, name, &cr, &l) < 0) {
		snprintf(path, sizeof path, "%s/cgroup.kill", inst);
		write_file(path, "1");
		reply(cl->fd, SH_LAUNCH_FAILED, "audit store not writable");
		goto out;
	}
	reply(cl->fd, SH_LAUNCH_OK, "%s", l.cgroup);
out:
	if (pidfd >= 0)
		close(pidfd);
}

/* rmdir every empty instance (a populated one says EBUSY). */
static void reap(struct fs_launch *L)
{
	char top[PATH_MAX], agent[PATH_MAX * 2], inst[PATH_MAX * 3], why[PATH_MAX + 32];
	DIR *d, *ad;
	struct dirent *de, *ie;

	if (snprintf(top, sizeof top, "%s%s", L->cg2, L->base) >= (int)sizeof top || !(d = opendir(top)))
		return;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		snprintf(agent, sizeof agent, "%s/%s", top, de->d_name);
		if (!(ad = opendir(agent)))
			continue;
		while ((ie = readdir(ad))) {
			if (ie->d_type != DT_DIR || ie->d_name[0] != 'i')
				continue;
			snprintf(inst, sizeof inst, "%s/%s", agent, ie->d_name);
			if (rmdir(inst) == 0) {
				snprintf(why, sizeof why, "instance %s/%s/%s ended", L->base, de->d_name,
					 ie->d_name);
				launch_audit(L, "reaped", why, de->d_name, NULL, NULL);
			}
		}
		closedir(ad);
	}
	closedir(d);
}

static int clients_of(const struct fs_launch *L, uid_t uid)
{
	int n = 0;

	for (int i = 0; i < LAUNCH_CLIENTS; i++)
		n += L->c[i].fd >= 0 && L->c[i].uid == uid;
	return n;
}

static void drop(struct client *cl)
{
	close(cl->fd);
	cl->fd = -1;
}

static void *launch_main(void *arg)
{
	struct fs_launch *L = arg;
	struct pollfd p[LAUNCH_CLIENTS + 2];
	int64_t next_reap = now_ms() + LAUNCH_REAP_MS;

	for (;;) {
		int64_t t = now_ms(), wait = next_reap - t;
		nfds_t n = 2;
		int slot = -1;

		p[0] = (struct pollfd){ .fd = L->wake[0], .events = POLLIN };
		for (int i = 0; i < LAUNCH_CLIENTS; i++) {
			p[n++] = (struct pollfd){ .fd = L->c[i].fd, .events = POLLIN };
			if (L->c[i].fd < 0 && slot < 0)
				slot = i;
			if (L->c[i].fd >= 0 && L->c[i].deadline_ms - t < wait)
				wait = L->c[i].deadline_ms - t;
		}
		/* with every slot taken, new clients wait in the listen backlog */
		p[1] = (struct pollfd){ .fd = slot >= 0 ? L->lfd : -1, .events = POLLIN };
		if (poll(p, n, wait < 0 ? 0 : (int)wait) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		t = now_ms();
		if (slot >= 0 && (p[1].revents & POLLIN)) {
			int fd = accept4(L->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			struct ucred cr;
			socklen_t crl = sizeof cr;
			if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) == 0 &&
			    clients_of(L, cr.uid) >= LAUNCH_PER_UID) {
				/* one uid cannot hold every slot */
				reply(fd, SH_LAUNCH_BUSY, "too many launch requests of this uid at once");
				close(fd);
			} else if (fd >= 0) {
				L->c[slot] = (struct client){ .fd = fd, .uid = crl == sizeof cr ? cr.uid : (uid_t)-1,
							      .deadline_ms = t + LAUNCH_DEADLINE_MS };
			}
		}
		for (int i = 0; i < LAUNCH_CLIENTS; i++) {
			struct client *cl = &L->c[i];
			if (cl->fd < 0 || p[i + 2].fd < 0) /* empty, or accepted just now */
				continue;
			if (p[i + 2].revents) {
				ssize_t r = read(cl->fd, (char *)&cl->req + cl->got, sizeof cl->req - cl->got);
				if (r > 0)
					cl->got += (size_t)r;
				if (cl->got == sizeof cl->req) {
					char extra;
					if (read(cl->fd, &extra, 1) > 0) {
						struct ucred cr;
						socklen_t cl_len = sizeof cr;
						int ok = getsockopt(cl->fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl_len) == 0;
						launch_audit(L, "denied", "oversized launch request", NULL,
							     ok ? &cr : NULL, NULL);
						reply(cl->fd, SH_LAUNCH_REFUSED, "oversized request");
					} else {
						handle(L, cl);
					}
					drop(cl);
					continue;
				}
				if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
					drop(cl); /* closed early: nothing was asked */
					continue;
				}
			}
			if (cl->fd >= 0 && t >= cl->deadline_ms) {
				struct ucred cr;
				socklen_t cl_len = sizeof cr;
				int ok = getsockopt(cl->fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl_len) == 0;
				launch_audit(L, "denied", cl->got ? "incomplete launch request" :
					     "silent launch client dropped", NULL, ok ? &cr : NULL, NULL);
				drop(cl);
			}
		}
		if (now_ms() >= next_reap) {
			reap(L);
			next_reap = now_ms() + LAUNCH_REAP_MS;
		}
	}
	for (int i = 0; i < LAUNCH_CLIENTS; i++)
		if (L->c[i].fd >= 0)
			drop(&L->c[i]);
	return NULL;
}

/* Bind the socket at path: a stale socket file is replaced, a live one (a
 * daemon answers) or any other file is refused. */
static int bind_socket(struct fs_launch *L, const char *path, char *why, size_t whylen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	char dir[PATH_MAX], *slash;
	int fd;

	if (strlen(path) >= sizeof sa.sun_path || path[0] != '/') {
		snprintf(why, whylen, "launch socket '%s' must be an absolute path of at most %zu bytes", path,
			 sizeof sa.sun_path - 1);
		return -1;
	}
	strcpy(sa.sun_path, path);
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	*slash = '\0';
	if (dir[0] && mkdir(dir, 0755) < 0 && errno != EEXIST) {
		snprintf(why, whylen, "cannot create '%s' for the launch socket: %s", dir, strerror(errno));
		return -1;
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(why, whylen, "'%s' exists and is not a socket; not replacing it", path);
			return -1;
		}
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
			close(fd);
			snprintf(why, whylen, "another scopeholdfs answers on launch socket '%s'", path);
			return -1;
		}
		if (fd >= 0)
			close(fd);
		unlink(path);
	}
	L->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (L->lfd < 0 || bind(L->lfd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    chmod(path, 0666) < 0 || listen(L->lfd, 64) < 0) {
		snprintf(why, whylen, "cannot listen on launch socket '%s': %s", path, strerror(errno));
		return -1;
	}
	strcpy(L->sock, path);
	return 0;
}

static int misbound_one(void *arg, const struct acl_agent *a)
{
	struct fs_launch *L = arg;
	struct vault_err e = { 0 };
	char dir[PATH_MAX], glob[PATH_MAX + 4];

	if (!a->launched || acl_launch_dir(L->base, a->name, dir, sizeof dir, &e) < 0)
		return 0;
	snprintf(glob, sizeof glob, "%s/**", dir);
	if (strcmp(glob, a->cgroup))
		fprintf(stderr, "scopeholdfs: warning: agent '%s' is bound --launched to '%s', but this "
			"daemon launches into '%s': its launches will not resolve to it; add it again with "
			"the daemon's [launch] cgroup\n", a->name, a->cgroup, glob);
	return 0;
}

/* A --launched binding records the [launch] cgroup of the scopeholdctl
 * that made it: say so when the daemon's differs. */
static void warn_misbound(struct fs_launch *L)
{
	struct vault_err e = { 0 };
	struct vault_db *db = acl_db_open(L->fs->cfg.db, VAULT_DB_NOMIGRATE, &e);

	if (!db)
		return;
	acl_agent_each(db, misbound_one, L, &e);
	vault_db_close(db);
}

int fs_launch_start(struct fs_state *fs)
{
	struct fs_launch *L;
	struct vault_err e = { 0 };
	char why[PATH_MAX + 128], top[PATH_MAX * 2], rel[PATH_MAX];
	const char *path = fs->cfg.launch_socket;

	if (!path[0] || !strcmp(path, "none"))
		return 0;
	L = calloc(1, sizeof *L);
	if (!L)
		return -1;
	L->fs = fs;
	L->lfd = L->wake[0] = L->wake[1] = -1;
	for (int i = 0; i < LAUNCH_CLIENTS; i++)
		L->c[i].fd = -1;
	/* the launch cgroup must be a plain path: check it through the
	 * function that builds an agent's directory under it */
	if (acl_launch_dir(fs->cfg.launch_cgroup, "x", rel, sizeof rel, &e) < 0) {
		snprintf(why, sizeof why, "%s", e.msg);
		goto fail;
	}
	snprintf(L->base, sizeof L->base, "%s", fs->cfg.launch_cgroup);
	if (acl_cgroup2_mount(L->cg2, sizeof L->cg2) < 0) {
		snprintf(why, sizeof why, "no cgroup v2 filesystem is mounted");
		goto fail;
	}
	snprintf(top, sizeof top, "%s%s", L->cg2, L->base);
	if (root_dir(top) < 0) {
		snprintf(why, sizeof why, "launch cgroup '%s' is not a root-owned directory others cannot "
			 "write: %s", top, strerror(errno));
		goto fail;
	}
	if (bind_socket(L, path, why, sizeof why) < 0)
		goto fail;
	if (pipe2(L->wake, O_CLOEXEC) < 0 || pthread_create(&L->thread, NULL, launch_main, L) != 0) {
		snprintf(why, sizeof why, "cannot start the launcher: %s", strerror(errno));
		unlink(L->sock);
		goto fail;
	}
	fs->launch = L;
	fprintf(stderr, "scopeholdfs: launching agents on '%s' into cgroup '%s'\n", path, L->base);
	warn_misbound(L);
	return 0;
fail:
	fprintf(stderr, "scopeholdfs: warning: launcher off: %s (scopeholdctl run --agent will not "
		"work; set [launch] socket = none to silence this)\n", why);
	if (L->lfd >= 0)
		close(L->lfd);
	if (L->wake[0] >= 0) {
		close(L->wake[0]);
		close(L->wake[1]);
	}
	free(L);
	return 0;
}

void fs_launch_stop(struct fs_state *fs)
{
	struct fs_launch *L = fs->launch;

	if (!L)
		return;
	while (write(L->wake[1], "x", 1) < 0 && errno == EINTR)
		;
	pthread_join(L->thread, NULL);
	unlink(L->sock);
	close(L->lfd);
	close(L->wake[0]);
	close(L->wake[1]);
	vault_db_close(L->db);
	free(L);
	fs->launch = NULL;
}
