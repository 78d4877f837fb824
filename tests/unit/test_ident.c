/* test_ident.c - unit tests of acl/ident.c: cgroup globs, most-specific
 * binding, and label reading from a fake /proc built in a mkdtemp directory
 * at run time, plus a few reads of the real /proc about this process. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/auxv.h>
#include <sys/fsuid.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "acl/ident.h"

#define ALL (ACL_L_CGROUP | ACL_L_EXE | ACL_L_LSM)

/* ---- the fake /proc ----------------------------------------------------- */

struct fake {
	char root[256];      /* the temp dir */
	char proc[300];      /* root/proc: what acl_labels_read gets */
	char bin[300];       /* root/agent: a real file that exe links point at */
};

static void put(struct fake *f, const char *rel, const char *content)
{
	char path[1024], *s;
	FILE *fp;

	snprintf(path, sizeof path, "%s/%s", f->proc, rel);
	for (s = path + strlen(f->root) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			fail_msg("mkdir %s: %s", path, strerror(errno));
		*s = '/';
	}
	fp = fopen(path, "w");
	if (!fp)
		fail_msg("fopen %s: %s", path, strerror(errno));
	fputs(content, fp);
	fclose(fp);
}

static void link_exe(struct fake *f, int pid, const char *target)
{
	char path[1024];

	snprintf(path, sizeof path, "%s/%d/exe", f->proc, pid);
	unlink(path);
	if (symlink(target, path) < 0)
		fail_msg("symlink %s: %s", path, strerror(errno));
}

static void status(struct fake *f, int pid, int tgid, const char *uids)
{
	char rel[64], text[1024];

	snprintf(rel, sizeof rel, "%d/status", pid);
	snprintf(text, sizeof text,
		 "Name:\tagent\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t%d\nNgid:\t0\n"
		 "Pid:\t%d\nPPid:\t1\nTracerPid:\t0\nUid:\t%s\nGid:\t100\t100\t100\t100\n"
		 "FDSize:\t64\nGroups:\t100 \nVmRSS:\t    1000 kB\nThreads:\t2\n",
		 tgid, pid, uids);
	put(f, rel, text);
}

static void file_of(struct fake *f, int pid, const char *name, const char *content)
{
	char rel[128];

	snprintf(rel, sizeof rel, "%d/%s", pid, name);
	put(f, rel, content);
}

/* A complete process: status with uid 1000, a cgroup, exe, lsm. */
static void process(struct fake *f, int pid, const char *cgroup_path, const char *lsm)
{
	char line[1200];

	status(f, pid, pid, "1000\t1000\t1000\t1000");
	snprintf(line, sizeof line, "0::%s\n", cgroup_path);
	file_of(f, pid, "cgroup", line);
	link_exe(f, pid, f->bin);
	if (lsm)
		file_of(f, pid, "attr/current", lsm);
}

static int fake_setup(void **state)
{
	struct fake *f = calloc(1, sizeof *f);
	int fd;

	assert_non_null(f);
	snprintf(f->root, sizeof f->root, "/tmp/test_ident.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->proc, sizeof f->proc, "%s/proc", f->root);
	assert_int_equal(mkdir(f->proc, 0755), 0);
	snprintf(f->bin, sizeof f->bin, "%s/agent", f->root);
	fd = open(f->bin, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	assert_true(fd >= 0);
	close(fd);
	*state = f;
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path);
}

static int fake_teardown(void **state)
{
	struct fake *f = *state;
	int rc = nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);

	free(f);
	return rc;
}

static int read_fake(struct fake *f, int pid, uid_t uid, unsigned want, struct acl_labels *l,
		     char *why, size_t whylen)
{
	memset(l, 0x5a, sizeof *l); /* nothing may survive from before */
	why[0] = '\0';
	return acl_labels_read(f->proc, pid, uid, want, l, why, whylen);
}

/* ---- globs -------------------------------------------------------------- */

static void test_glob_star_stays_in_component(void **state)
{
	assert_true(acl_cgroup_match("/system.slice/*.service", "/system.slice/a.service"));
	assert_false(acl_cgroup_match("/system.slice/*.service", "/system.slice/x/a.service"));
	assert_false(acl_cgroup_match("/system.slice/*", "/system.slice/a.service/sub"));
	assert_true(acl_cgroup_match("/system.slice/mcp-?.service", "/system.slice/mcp-1.service"));
	assert_false(acl_cgroup_match("/system.slice/mcp-?.service", "/system.slice/mcp-12.service"));
	assert_true(acl_cgroup_match("/machine.slice/libpod-[0-9a-f]*.scope",
				     "/machine.slice/libpod-0af3.scope"));
	assert_false(acl_cgroup_match("/machine.slice/libpod-[0-9a-f]*.scope",
				      "/machine.slice/libpod-xyz.scope"));
	assert_true(acl_cgroup_match("/exact/path", "/exact/path"));
	assert_false(acl_cgroup_match("/exact/path", "/exact/path/below"));
	assert_false(acl_cgroup_match("/exact/path", "/exact/pat"));
	/* no glob or no path never matches */
	assert_false(acl_cgroup_match(NULL, "/a"));
	assert_false(acl_cgroup_match("/a", NULL));
	assert_false(acl_cgroup_match("", "/a"));
}

static void test_glob_double_star(void **state)
{
	const char *g = "/system.slice/agent.service/**";

	assert_true(acl_cgroup_match(g, "/system.slice/agent.service"));
	assert_true(acl_cgroup_match(g, "/system.slice/agent.service/a"));
	assert_true(acl_cgroup_match(g, "/system.slice/agent.service/a/b/c"));
	assert_false(acl_cgroup_match(g, "/system.slice/agent.services"));
	assert_false(acl_cgroup_match(g, "/system.slice/agent.service2/a"));
	assert_false(acl_cgroup_match(g, "/system.slice"));
	assert_false(acl_cgroup_match(g, "/other/system.slice/agent.service"));

	/* globs before the trailing slash-star-star keep to their component */
	g = "/user.slice/*/app.slice/**";
	assert_true(acl_cgroup_match(g, "/user.slice/u1/app.slice"));
	assert_true(acl_cgroup_match(g, "/user.slice/u1/app.slice/x.scope/y"));
	assert_false(acl_cgroup_match(g, "/user.slice/u1/u2/app.slice/x"));

	/* slash-star-star alone is the whole tree */
	assert_true(acl_cgroup_match("/**", "/"));
	assert_true(acl_cgroup_match("/**", "/a/b"));
	/* "**" elsewhere is just two stars */
	assert_false(acl_cgroup_match("/a/**/c", "/a/b/x/c"));
}

/* ---- matching ----------------------------------------------------------- */

static struct acl_labels labels_all(void)
{
	struct acl_labels l;

	memset(&l, 0, sizeof l);
	l.pid = l.tgid = 4242;
	l.uid = 1000;
	l.have = ALL;
	strcpy(l.cgroup, "/system.slice/mcp.service");
	strcpy(l.exe, "/usr/bin/mcp");
	l.exe_dev = 8;
	l.exe_ino = 77;
	l.exe_userns = 1;
	strcpy(l.lsm, "mcp (enforce)");
	return l;
}

static void test_match_most_specific_wins(void **state)
{
	struct acl_labels l = labels_all();
	struct acl_binding b[] = {
		{ .agent_id = 1, .uid = 1000 },
		{ .agent_id = 2, .uid = 1000, .labels = ACL_L_CGROUP, .cgroup = "/system.slice/**" },
		{ .agent_id = 3, .uid = 1000, .labels = ACL_L_CGROUP | ACL_L_EXE,
		  .cgroup = "/system.slice/*.service", .exe_dev = 8, .exe_ino = 77 },
		/* more labels, but another uid: skipped */
		{ .agent_id = 4, .uid = 1001, .labels = ALL, .cgroup = "/**", .exe_dev = 8,
		  .exe_ino = 77, .lsm = "mcp (enforce)" },
	};
	size_t w = 99;

	assert_int_equal(acl_match(b, 4, &l, &w, NULL), ACL_MATCH_ONE);
	assert_int_equal(w, 2);

	/* another binary: the cgroup-only binding is the most specific left */
	l.exe_ino = 78;
	assert_int_equal(acl_match(b, 4, &l, &w, NULL), ACL_MATCH_ONE);
	assert_int_equal(w, 1);

	/* another cgroup too: the uid-only binding */
	strcpy(l.cgroup, "/user.slice/x");
	assert_int_equal(acl_match(b, 4, &l, &w, NULL), ACL_MATCH_ONE);
	assert_int_equal(w, 0);

	/* order does not matter */
	l = labels_all();
	assert_int_equal(acl_match(&b[1], 3, &l, &w, NULL), ACL_MATCH_ONE);
	assert_int_equal(w, 1);
}

static void test_match_equal_specificity_ambiguous(void **state)
{
	struct acl_labels l = labels_all();
	struct acl_binding b[] = {
		{ .agent_id = 1, .uid = 1000, .labels = ACL_L_CGROUP, .cgroup = "/system.slice/*" },
		{ .agent_id = 2, .uid = 1000, .labels = ACL_L_EXE, .exe_dev = 8, .exe_ino = 77 },
		{ .agent_id = 3, .uid = 1000 },
		{ .agent_id = 4, .uid = 1000 },
	};
	size_t w = 99;

	assert_int_equal(acl_match(b, 4, &l, &w, NULL), ACL_MATCH_AMBIGUOUS);
	assert_true(w == 0 || w == 1);

	/* two uid-only bindings of one uid */
	assert_int_equal(acl_match(&b[2], 2, &l, &w, NULL), ACL_MATCH_AMBIGUOUS);

	/* a tie below the top does not matter */
	assert_int_equal(acl_match(&b[1], 3, &l, &w, NULL), ACL_MATCH_ONE);
	assert_int_equal(w, 0);
}

static void test_match_none(void **state)
{
	struct acl_labels l = labels_all();
	struct acl_binding other_uid = { .agent_id = 1, .uid = 0 };
	struct acl_binding cg = { .agent_id = 2, .uid = 1000, .labels = ACL_L_CGROUP,
				  .cgroup = "/system.slice/other.service" };
	struct acl_binding exe = { .agent_id = 3, .uid = 1000, .labels = ACL_L_EXE,
				   .exe_dev = 9, .exe_ino = 77 };
	/* AppArmor's attr/current carries the mode: matching is exact */
	struct acl_binding lsm = { .agent_id = 4, .uid = 1000, .labels = ACL_L_LSM, .lsm = "mcp" };
	struct acl_binding lsm_ok = { .agent_id = 5, .uid = 1000, .labels = ACL_L_LSM,
				      .lsm = "mcp (enforce)" };
	struct acl_binding null_glob = { .agent_id = 6, .uid = 1000, .labels = ACL_L_CGROUP };
	struct acl_binding unknown = { .agent_id = 7, .uid = 1000, .labels = 1u << 7 };
	size_t w = 99;

	assert_int_equal(acl_match(&other_uid, 1, &l, &w, NULL), ACL_MATCH_NONE);
	assert_int_equal(acl_match(&cg, 1, &l, &w, NULL), ACL_MATCH_NONE);
	assert_int_equal(acl_match(&exe, 1, &l, &w, NULL), ACL_MATCH_NONE);
	assert_int_equal(acl_match(&lsm, 1, &l, &w, NULL), ACL_MATCH_NONE);
	assert_int_equal(acl_match(&null_glob, 1, &l, &w, NULL), ACL_MATCH_NONE);
	assert_int_equal(acl_match(&unknown, 1, &l, &w, NULL), ACL_MATCH_NONE);
	assert_int_equal(acl_match(&lsm_ok, 0, &l, &w, NULL), ACL_MATCH_NONE);
	assert_int_equal(w, 99);
	assert_int_equal(acl_match(&lsm_ok, 1, &l, &w, NULL), ACL_MATCH_ONE);

	/* a label that was not read (no LSM) never satisfies a binding */
	l.have &= ~(unsigned)ACL_L_LSM;
	assert_int_equal(acl_match(&lsm_ok, 1, &l, &w, NULL), ACL_MATCH_NONE);
	/* even when the stale string would match */
	l.have = ACL_L_EXE;
	struct acl_binding cg_all = { .agent_id = 8, .uid = 1000, .labels = ACL_L_CGROUP,
				      .cgroup = "/**" };
	assert_int_equal(acl_match(&cg_all, 1, &l, &w, NULL), ACL_MATCH_NONE);
}

/* A binding whose labels match but whose caller fails a check is refused,
 * and the caller does not fall back to a weaker binding of its uid. */
static void test_match_refused(void **state)
{
	struct acl_labels l = labels_all();
	struct acl_binding b[] = {
		{ .agent_id = 1, .uid = 1000 },
		{ .agent_id = 2, .uid = 1000, .labels = ACL_L_EXE, .exe_dev = 8, .exe_ino = 77 },
	};
	struct acl_binding cg = { .agent_id = 3, .uid = 1000, .labels = ACL_L_CGROUP,
				  .cgroup = "/system.slice/**" };
	size_t w = 99;
	unsigned r = 99;

	assert_int_equal(acl_match(b, 2, &l, &w, &r), ACL_MATCH_ONE);
	assert_int_equal(w, 1);
	assert_int_equal(r, 0);

	/* traced: no label binding, not even the uid-only fallback */
	l.tracer = 555;
	assert_int_equal(acl_match(b, 2, &l, &w, &r), ACL_MATCH_REFUSED);
	assert_int_equal(w, 1);
	assert_int_equal(r, ACL_R_TRACED);
	assert_string_equal(acl_refused_str(r), "traced");
	assert_int_equal(acl_match(&cg, 1, &l, &w, &r), ACL_MATCH_REFUSED);
	/* a traced caller of a uid-only agent is that agent (strace works) */
	assert_int_equal(acl_match(b, 1, &l, &w, &r), ACL_MATCH_ONE);
	l.tracer = 0;

	/* the inode number of the bound file, recycled by another file */
	l.exe_id.ctime_ns = 12345;
	assert_int_equal(acl_match(b, 2, &l, &w, &r), ACL_MATCH_REFUSED);
	assert_int_equal(r, ACL_R_EXE_CHANGED);
	assert_string_equal(acl_refused_str(r), "exe-changed");
	l.exe_id.ctime_ns = 0;
	l.exe_id.uid = 1000;
	assert_int_equal(acl_match(b, 2, &l, &w, &r), ACL_MATCH_REFUSED);
	l.exe_id.uid = 0;
	l.exe_id.size = 1;
	assert_int_equal(acl_match(b, 2, &l, &w, &r), ACL_MATCH_REFUSED);
	l.exe_id.size = 0;
	/* birth time compared where both have one */
	b[1].exe_id.btime_ns = 7;
	assert_int_equal(acl_match(b, 2, &l, &w, &r), ACL_MATCH_ONE);
	l.exe_id.btime_ns = 8;
	assert_int_equal(acl_match(b, 2, &l, &w, &r), ACL_MATCH_REFUSED);
	l.exe_id.btime_ns = 7;
	assert_int_equal(acl_match(b, 2, &l, &w, &r), ACL_MATCH_ONE);
	/* a binding made before the file's identity was recorded */
	b[1].exe_id.ctime_ns = -1;
	assert_int_equal(acl_match(b, 2, &l, &w, &r), ACL_MATCH_REFUSED);
	b[1].exe_id.ctime_ns = 0;

	/* exe labels hold only in the daemon's user namespace */
	l.exe_userns = 0;
	assert_int_equal(acl_match(b, 2, &l, &w, &r), ACL_MATCH_REFUSED);
	assert_int_equal(r, ACL_R_USERNS);
	assert_int_equal(acl_match(&cg, 1, &l, &w, &r), ACL_MATCH_ONE); /* cgroup is not exe */
	l.exe_userns = 1;

	/* --require-secure-exec */
	b[1].require_secure = 1;
	l.secure = 0;
	assert_int_equal(acl_match(b, 2, &l, &w, &r), ACL_MATCH_REFUSED);
	assert_int_equal(r, ACL_R_INSECURE);
	l.secure = -1;
	assert_int_equal(acl_match(b, 2, &l, &w, &r), ACL_MATCH_REFUSED);
	l.secure = 1;
	assert_int_equal(acl_match(b, 2, &l, &w, &r), ACL_MATCH_ONE);

	/* a refused binding below an accepted, more specific one is moot */
	struct acl_binding two[] = {
		{ .agent_id = 4, .uid = 1000, .labels = ACL_L_CGROUP | ACL_L_LSM,
		  .cgroup = "/system.slice/**", .lsm = "mcp (enforce)" },
		{ .agent_id = 5, .uid = 1000, .labels = ACL_L_EXE, .exe_dev = 8, .exe_ino = 77,
		  .require_secure = 1 },
	};
	l.secure = 0;
	assert_int_equal(acl_match(two, 2, &l, &w, &r), ACL_MATCH_ONE);
	assert_int_equal(w, 0);
}

/* ---- reading a fake /proc ----------------------------------------------- */

static void test_pid_zero_denies(void **state)
{
	struct fake *f = *state;
	struct acl_labels l;
	char why[256];

	process(f, 1, "/", NULL);
	assert_int_equal(read_fake(f, 0, 0, ALL, &l, why, sizeof why), -1);
	assert_non_null(strstr(why, "no pid"));
	assert_int_equal(l.have, 0);
	assert_int_equal(read_fake(f, -1, 0, ALL, &l, why, sizeof why), -1);
	assert_non_null(strstr(why, "no pid"));
	assert_int_equal(acl_labels_read("/proc", 0, 0, ALL, &l, why, sizeof why), -1);
	assert_non_null(strstr(why, "no pid"));
	/* no room for a reason is fine */
	assert_int_equal(acl_labels_read("/proc", 0, 0, ALL, &l, NULL, 0), -1);
}

static void test_read_all_labels(void **state)
{
	struct fake *f = *state;
	struct acl_labels l;
	struct stat st;
	char why[256];

	process(f, 1200, "/system.slice/mcp.service", "mcp (enforce)\n");
	assert_int_equal(read_fake(f, 1200, 1000, ALL, &l, why, sizeof why), 0);
	assert_int_equal(l.pid, 1200);
	assert_int_equal(l.tgid, 1200);
	assert_int_equal(l.uid, 1000);
	assert_int_equal(l.have, ALL);
	assert_string_equal(l.cgroup, "/system.slice/mcp.service");
	assert_string_equal(l.exe, f->bin);
	assert_int_equal(stat(f->bin, &st), 0);
	assert_true(l.exe_dev == (uint64_t)st.st_dev);
	assert_true(l.exe_ino == (uint64_t)st.st_ino);
	assert_string_equal(l.lsm, "mcp (enforce)");

	/* only what is wanted is read */
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_CGROUP, &l, why, sizeof why), 0);
	assert_int_equal(l.have, ACL_L_CGROUP);
	assert_int_equal(l.exe_ino, 0);
	assert_string_equal(l.lsm, "");
	assert_int_equal(read_fake(f, 1200, 1000, 0, &l, why, sizeof why), 0);
	assert_int_equal(l.have, 0);
	assert_int_equal(l.tgid, 1200);

	/* SELinux style: a trailing NUL */
	file_of(f, 1200, "attr/current", "");
	{
		char p[600];
		int fd;

		snprintf(p, sizeof p, "%s/1200/attr/current", f->proc);
		fd = open(p, O_WRONLY | O_TRUNC | O_CLOEXEC);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, "system_u:system_r:mcp_t:s0\0", 28), 28);
		close(fd);
	}
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_LSM, &l, why, sizeof why), 0);
	assert_string_equal(l.lsm, "system_u:system_r:mcp_t:s0");
}

static void test_thread_resolves_to_process(void **state)
{
	struct fake *f = *state;
	struct acl_labels l;
	char why[256];

	process(f, 1200, "/system.slice/mcp.service", "mcp (enforce)\n");
	/* thread 1234 of 1200; its own dir carries other labels that must
	 * not be used */
	status(f, 1234, 1200, "1000\t1000\t1000\t1000");
	file_of(f, 1234, "cgroup", "0::/wrong\n");
	file_of(f, 1234, "attr/current", "wrong\n");

	assert_int_equal(read_fake(f, 1234, 1000, ALL, &l, why, sizeof why), 0);
	assert_int_equal(l.pid, 1234);
	assert_int_equal(l.tgid, 1200);
	assert_int_equal(l.have, ALL);
	assert_string_equal(l.cgroup, "/system.slice/mcp.service");
	assert_string_equal(l.lsm, "mcp (enforce)");

	/* the process is gone: deny */
	status(f, 1235, 1300, "1000\t1000\t1000\t1000");
	assert_int_equal(read_fake(f, 1235, 1000, ACL_L_CGROUP, &l, why, sizeof why), -1);
	assert_non_null(strstr(why, "1300"));
}

static void test_uid_mismatch_denies(void **state)
{
	struct fake *f = *state;
	struct acl_labels l;
	char why[256];

	process(f, 1200, "/a", NULL);
	assert_int_equal(read_fake(f, 1200, 1001, ALL, &l, why, sizeof why), -1);
	assert_string_equal(why, "pid 1200: fs-uid 1000 does not match request uid 1001");
	assert_int_equal(l.have, 0);
	assert_string_equal(l.cgroup, "");

	/* the fs-uid (4th field) counts, not the real or effective uid */
	status(f, 1200, 1200, "1000\t1000\t1000\t2000");
	assert_int_equal(read_fake(f, 1200, 1000, ALL, &l, why, sizeof why), -1);
	assert_non_null(strstr(why, "fs-uid 2000 does not match request uid 1000"));
	status(f, 1200, 1200, "0\t0\t0\t1000");
	assert_int_equal(read_fake(f, 1200, 1000, ALL, &l, why, sizeof why), 0);
	assert_int_equal(l.uid, 1000);

	/* a thread whose status says another uid, even if the process's
	 * says the right one */
	status(f, 1234, 1200, "1000\t1000\t1000\t0");
	assert_int_equal(read_fake(f, 1234, 1000, ALL, &l, why, sizeof why), -1);
	assert_non_null(strstr(why, "fs-uid 0"));
}

static void test_bad_status_denies(void **state)
{
	struct fake *f = *state;
	struct acl_labels l;
	char why[256];

	/* no such pid */
	assert_int_equal(read_fake(f, 999, 1000, 0, &l, why, sizeof why), -1);
	assert_non_null(strstr(why, "pid 999"));

	process(f, 1200, "/a", NULL);
	file_of(f, 1200, "status", "Name:\tx\nTgid:\t1200\n");
	assert_int_equal(read_fake(f, 1200, 1000, 0, &l, why, sizeof why), -1);
	assert_non_null(strstr(why, "no Uid line"));

	file_of(f, 1200, "status", "Name:\tx\nUid:\t1000\t1000\t1000\t1000\n");
	assert_int_equal(read_fake(f, 1200, 1000, 0, &l, why, sizeof why), -1);
	assert_non_null(strstr(why, "no Tgid line"));

	file_of(f, 1200, "status", "Tgid:\t1200\nUid:\t1000\t1000\t1000\n");
	assert_int_equal(read_fake(f, 1200, 1000, 0, &l, why, sizeof why), -1);
	assert_non_null(strstr(why, "malformed Uid"));

	file_of(f, 1200, "status", "Tgid:\t1200\nUid:\t1000\t1000\t1000\t1000x\n");
	assert_int_equal(read_fake(f, 1200, 1000, 0, &l, why, sizeof why), -1);

	file_of(f, 1200, "status", "Tgid:\t-5\nUid:\t1000\t1000\t1000\t1000\n");
	assert_int_equal(read_fake(f, 1200, 1000, 0, &l, why, sizeof why), -1);

	file_of(f, 1200, "status", "Tgid:\t1200\nUid:\t1000\t1000\t1000\t99999999999\n");
	assert_int_equal(read_fake(f, 1200, 1000, 0, &l, why, sizeof why), -1);

	/* a forged second line is refused, whichever comes first */
	file_of(f, 1200, "status",
		"Tgid:\t1200\nUid:\t1000\t1000\t1000\t1000\nUid:\t0\t0\t0\t0\n");
	assert_int_equal(read_fake(f, 1200, 1000, 0, &l, why, sizeof why), -1);
	assert_non_null(strstr(why, "duplicate Uid"));
	file_of(f, 1200, "status",
		"Tgid:\t1200\nTgid:\t1\nUid:\t1000\t1000\t1000\t1000\n");
	assert_int_equal(read_fake(f, 1200, 1000, 0, &l, why, sizeof why), -1);
	assert_non_null(strstr(why, "duplicate Tgid"));

	/* the minimal good file */
	file_of(f, 1200, "status", "Tgid:\t1200\nUid:\t1000\t1000\t1000\t1000\n");
	assert_int_equal(read_fake(f, 1200, 1000, 0, &l, why, sizeof why), 0);
}

static void test_unreadable_cgroup_denies(void **state)
{
	struct fake *f = *state;
	struct acl_labels l;
	char why[256], rel[64], path[600];

	process(f, 1200, "/a", NULL);

	/* hybrid host: v1 lines around; only 0:: counts */
	file_of(f, 1200, "cgroup",
		"12:memory:/v1/path\n1:name=systemd:/user.slice\n0::/system.slice/x.service\n");
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_CGROUP, &l, why, sizeof why), 0);
	assert_string_equal(l.cgroup, "/system.slice/x.service");

	/* v1 lines only */
	file_of(f, 1200, "cgroup", "12:memory:/v1/path\n1:name=systemd:/user.slice\n");
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_CGROUP, &l, why, sizeof why), -1);
	assert_non_null(strstr(why, "no cgroup v2 (0::) line"));
	assert_int_equal(l.have, 0);
	/* ... is no matter when cgroup is not wanted */
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_EXE, &l, why, sizeof why), 0);
	assert_int_equal(l.have, ACL_L_EXE);

	/* two 0:: lines */
	file_of(f, 1200, "cgroup", "0::/a\n0::/system.slice/x.service\n");
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_CGROUP, &l, why, sizeof why), -1);

	/* outside our cgroup namespace, or not absolute */
	file_of(f, 1200, "cgroup", "0::/../../system.slice/x.service\n");
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_CGROUP, &l, why, sizeof why), -1);
	file_of(f, 1200, "cgroup", "0::/a/..\n");
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_CGROUP, &l, why, sizeof why), -1);
	file_of(f, 1200, "cgroup", "0::\n");
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_CGROUP, &l, why, sizeof why), -1);

	/* a path that does not fit is refused, not cut */
	{
		char big[ACL_LABEL_MAX + 16];

		memset(big, 'a', sizeof big);
		memcpy(big, "0::/", 4);
		big[sizeof big - 2] = '\n';
		big[sizeof big - 1] = '\0';
		file_of(f, 1200, "cgroup", big);
		assert_int_equal(read_fake(f, 1200, 1000, ACL_L_CGROUP, &l, why, sizeof why), -1);
		assert_non_null(strstr(why, "too long"));
	}

	/* missing */
	snprintf(rel, sizeof rel, "%d/cgroup", 1200);
	snprintf(path, sizeof path, "%s/%s", f->proc, rel);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_CGROUP, &l, why, sizeof why), -1);
	assert_non_null(strstr(why, "cgroup"));
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_EXE | ACL_L_LSM, &l, why, sizeof why), 0);
}

static void test_dangling_exe_denies(void **state)
{
	struct fake *f = *state;
	struct acl_labels l;
	char why[256], gone[600];

	process(f, 1200, "/a", NULL);
	snprintf(gone, sizeof gone, "%s/no-such-binary", f->root);
	link_exe(f, 1200, gone);
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_EXE, &l, why, sizeof why), -1);
	assert_non_null(strstr(why, "exe"));
	assert_int_equal(l.have, 0);
	assert_int_equal(l.exe_ino, 0);
	/* a label read before the failure is not handed out either */
	assert_int_equal(read_fake(f, 1200, 1000, ALL, &l, why, sizeof why), -1);
	assert_int_equal(l.have, 0);
	assert_string_equal(l.cgroup, "");
	assert_string_equal(l.exe, "");
	/* not wanted: not read */
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_CGROUP, &l, why, sizeof why), 0);

	/* a directory is no executable */
	link_exe(f, 1200, f->root);
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_EXE, &l, why, sizeof why), -1);
}

static void test_lsm_absent_is_no_label(void **state)
{
	struct fake *f = *state;
	struct acl_labels l;
	char why[256], path[600];

	process(f, 1200, "/a", NULL);
	assert_int_equal(read_fake(f, 1200, 1000, ALL, &l, why, sizeof why), 0);
	assert_int_equal(l.have, ACL_L_CGROUP | ACL_L_EXE);
	assert_string_equal(l.lsm, "");

	/* an empty label is no label */
	file_of(f, 1200, "attr/current", "\n");
	assert_int_equal(read_fake(f, 1200, 1000, ALL, &l, why, sizeof why), 0);
	assert_int_equal(l.have, ACL_L_CGROUP | ACL_L_EXE);

	/* any other failure denies: here attr/current is a directory */
	snprintf(path, sizeof path, "%s/1200/attr/current", f->proc);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_LSM, &l, why, sizeof why), -1);
	assert_non_null(strstr(why, "attr/current"));
	assert_int_equal(rmdir(path), 0);

	/* too long for the label buffer: refused, not cut */
	{
		char big[400];

		memset(big, 'x', sizeof big);
		big[sizeof big - 1] = '\0';
		file_of(f, 1200, "attr/current", big);
		assert_int_equal(read_fake(f, 1200, 1000, ACL_L_LSM, &l, why, sizeof why), -1);
		assert_non_null(strstr(why, "too long"));
	}
	/* an embedded newline */
	file_of(f, 1200, "attr/current", "a\nb\n");
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_LSM, &l, why, sizeof why), -1);
}

static void test_procfs_under_another_name_denies(void **state)
{
	struct acl_labels l;
	char why[256];

	/* "/proc/" is the real procfs, but would not be pinned: refused */
	assert_int_equal(acl_labels_read("/proc/", getpid(), geteuid(), ALL, &l, why, sizeof why),
			 -1);
	assert_non_null(strstr(why, "procfs"));
	assert_int_equal(acl_labels_read("//proc", getpid(), geteuid(), 0, &l, why, sizeof why), -1);
}


/* TracerPid of the calling thread, the user namespace and AT_SECURE, read
 * only as bindings need them. */
static void test_fake_tracer_userns_auxv(void **state)
{
	struct fake *f = *state;
	struct acl_labels l;
	char why[256], path[1024], self[1024];
	unsigned long auxv[] = { AT_PAGESZ, 4096, AT_SECURE, 1, AT_NULL, 0 };
	FILE *fp;

	process(f, 1200, "/system.slice/a.service", NULL);
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_CGROUP, &l, why, sizeof why), 0);
	assert_int_equal(l.tracer, 0);
	put(f, "1200/status",
	    "Name:\tagent\nTgid:\t1200\nPid:\t1200\nPPid:\t1\nTracerPid:\t4321\n"
	    "Uid:\t1000\t1000\t1000\t1000\n");
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_CGROUP, &l, why, sizeof why), 0);
	assert_int_equal(l.tracer, 4321);
	put(f, "1200/status", "Tgid:\t1200\nTracerPid:\t1\nTracerPid:\t0\nUid:\t1000\t1000\t1000\t1000\n");
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_CGROUP, &l, why, sizeof why), -1);
	assert_non_null(strstr(why, "TracerPid"));
	put(f, "1200/status", "Tgid:\t1200\nUid:\t1000\t1000\t1000\t1000\n");
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_CGROUP, &l, why, sizeof why), -1);
	/* with no label wanted, TracerPid is not needed */
	assert_int_equal(read_fake(f, 1200, 1000, 0, &l, why, sizeof why), 0);
	status(f, 1200, 1200, "1000\t1000\t1000\t1000");

	/* no ns/user at all: not the daemon's namespace (fail closed) */
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_EXE, &l, why, sizeof why), 0);
	assert_int_equal(l.exe_userns, 0);
	put(f, "self/ns/user", "init userns");
	snprintf(self, sizeof self, "%s/self/ns/user", f->proc);
	snprintf(path, sizeof path, "%s/1200/ns/user", f->proc);
	file_of(f, 1200, "ns/user", "another userns");
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_EXE, &l, why, sizeof why), 0);
	assert_int_equal(l.exe_userns, 0);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(link(self, path), 0);
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_EXE, &l, why, sizeof why), 0);
	assert_int_equal(l.exe_userns, 1);
	/* only looked at when exe decides */
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_CGROUP | ACL_L_OPTIONAL * ACL_L_EXE, &l, why,
				   sizeof why), 0);
	assert_int_equal(l.exe_userns, 0);
	assert_true(l.have & ACL_L_EXE);

	/* AT_SECURE */
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_AUXV, &l, why, sizeof why), -1);
	snprintf(path, sizeof path, "%s/1200/auxv", f->proc);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(auxv, sizeof auxv, 1, fp), 1);
	fclose(fp);
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_AUXV, &l, why, sizeof why), 0);
	assert_int_equal(l.secure, 1);
	auxv[3] = 0;
	fp = fopen(path, "w");
	assert_int_equal(fwrite(auxv, sizeof auxv, 1, fp), 1);
	fclose(fp);
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_AUXV, &l, why, sizeof why), 0);
	assert_int_equal(l.secure, 0);
	/* a 32-bit process's vector (pairs of 32-bit words) is never read as
	 * a secure one, though its AT_SECURE word is followed by non-zero ones */
	uint32_t auxv32[] = { AT_PAGESZ, 4096, AT_UID, 1000, AT_SECURE, 0, AT_NULL, 0 };
	fp = fopen(path, "w");
	assert_int_equal(fwrite(auxv32, sizeof auxv32, 1, fp), 1);
	fclose(fp);
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_AUXV, &l, why, sizeof why), -1);
	/* two AT_SECURE entries, or none before AT_NULL */
	unsigned long twice[] = { AT_SECURE, 1, AT_SECURE, 0, AT_NULL, 0 };
	unsigned long none[] = { AT_PAGESZ, 4096, AT_NULL, 0 };
	fp = fopen(path, "w");
	assert_int_equal(fwrite(twice, sizeof twice, 1, fp), 1);
	fclose(fp);
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_AUXV, &l, why, sizeof why), -1);
	fp = fopen(path, "w");
	assert_int_equal(fwrite(none, sizeof none, 1, fp), 1);
	fclose(fp);
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_AUXV, &l, why, sizeof why), -1);
	/* not asked for: unknown */
	assert_int_equal(read_fake(f, 1200, 1000, ACL_L_CGROUP, &l, why, sizeof why), 0);
	assert_int_equal(l.secure, -1);
}

static void test_fake_ptrace_scope(void **state)
{
	struct fake *f = *state;

	assert_int_equal(acl_ptrace_scope(f->proc), -1); /* no Yama */
	put(f, "sys/kernel/yama/ptrace_scope", "1\n");
	assert_int_equal(acl_ptrace_scope(f->proc), 1);
	put(f, "sys/kernel/yama/ptrace_scope", "0\n");
	assert_int_equal(acl_ptrace_scope(f->proc), 0);
	put(f, "sys/kernel/yama/ptrace_scope", "x\n");
	assert_int_equal(acl_ptrace_scope(f->proc), -1);
}

/* agent add --exe: only a file that no uid but root can change */
static void test_exe_record_refuses_changeable_files(void **state)
{
	struct fake *f = *state;
	struct acl_exe_id id, again;
	unsigned char h[32], h2[32];
	char why[512], dir[300], bin[400];
	struct stat st;
	int fd;

	if (geteuid() != 0) {
		print_message("skipped: chown needs root\n");
		skip();
	}
	snprintf(dir, sizeof dir, "%s/bin", f->root);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(bin, sizeof bin, "%s/tool", dir);
	fd = open(bin, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "#!/bin/sh\n", 10), 10);
	close(fd);
	assert_int_equal(chmod(f->root, 0755), 0);

	assert_int_equal(acl_exe_record(bin, &id, h, why, sizeof why), 0);
	assert_int_equal(stat(bin, &st), 0);
	assert_true(id.ino == (uint64_t)st.st_ino && id.dev == (uint64_t)st.st_dev);
	assert_int_equal(id.uid, 0);
	assert_int_equal(id.size, 10);
	assert_true(id.ctime_ns == (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec);
	assert_int_equal(acl_exe_record(bin, &again, h2, why, sizeof why), 0);
	assert_memory_equal(h, h2, sizeof h);

	assert_int_equal(acl_exe_record("tool", &id, NULL, why, sizeof why), -1);
	assert_non_null(strstr(why, "absolute"));
	assert_int_equal(acl_exe_record(dir, &id, NULL, why, sizeof why), -1);
	assert_non_null(strstr(why, "not a regular file"));

	assert_int_equal(chown(bin, 1000, 0), 0);
	assert_int_equal(acl_exe_record(bin, &id, NULL, why, sizeof why), -1);
	assert_non_null(strstr(why, "owned by uid 1000"));
	assert_int_equal(chown(bin, 0, 0), 0);

	assert_int_equal(chmod(bin, 0775), 0);
	assert_int_equal(acl_exe_record(bin, &id, NULL, why, sizeof why), -1);
	assert_non_null(strstr(why, "chmod go-w"));
	assert_int_equal(chmod(bin, 0755), 0);

	assert_int_equal(chmod(dir, 0777), 0);
	assert_int_equal(acl_exe_record(bin, &id, NULL, why, sizeof why), -1);
	assert_non_null(strstr(why, "directory"));
	assert_int_equal(chmod(dir, 01777), 0); /* sticky: others cannot rename root's file */
	assert_int_equal(acl_exe_record(bin, &id, NULL, why, sizeof why), 0);
	assert_int_equal(chmod(dir, 0755), 0);

	assert_int_equal(chown(f->root, 1000, 0), 0); /* an ancestor */
	assert_int_equal(acl_exe_record(bin, &id, NULL, why, sizeof why), -1);
	assert_non_null(strstr(why, "owned by uid 1000"));
	assert_int_equal(chown(f->root, 0, 0), 0);
	assert_int_equal(acl_exe_record(bin, &id, NULL, why, sizeof why), 0);
}

/* ---- the real /proc ----------------------------------------------------- */

static void check_self(const struct acl_labels *l, pid_t pid)
{
	struct stat st;

	assert_int_equal(l->pid, pid);
	assert_int_equal(l->tgid, getpid());
	assert_int_equal(l->uid, geteuid());
	assert_true(l->have & ACL_L_CGROUP);
	assert_true(l->have & ACL_L_EXE);
	assert_int_equal(l->cgroup[0], '/');
	assert_int_equal(stat("/proc/self/exe", &st), 0);
	assert_true(l->exe_dev == (uint64_t)st.st_dev);
	assert_true(l->exe_ino == (uint64_t)st.st_ino);
	assert_int_equal(l->exe[0], '/');
	/* LSM: present or not depending on the host; never an error */
	if (!(l->have & ACL_L_LSM))
		assert_string_equal(l->lsm, "");
}

static void test_real_proc_self(void **state)
{
	struct acl_labels l;
	char why[256] = "";
	int rc;

	rc = acl_labels_read("/proc", getpid(), geteuid(), ALL, &l, why, sizeof why);
	if (rc != 0)
		fail_msg("acl_labels_read(getpid()): %s", why);
	check_self(&l, getpid());

	rc = acl_labels_read("/proc", gettid(), geteuid(), ALL, &l, why, sizeof why);
	if (rc != 0)
		fail_msg("acl_labels_read(gettid()): %s", why);
	check_self(&l, gettid());
}

static void test_real_proc_wrong_uid(void **state)
{
	struct acl_labels l;
	char why[256] = "";

	assert_int_equal(acl_labels_read("/proc", getpid(), geteuid() + 1, ALL, &l, why,
					 sizeof why), -1);
	assert_non_null(strstr(why, "does not match request uid"));
	assert_int_equal(l.have, 0);
}

struct parked {
	pid_t tid;
	uid_t fsuid; /* set in the thread when not (uid_t)-1 */
	int ready[2], go[2];
};

static void *park(void *arg)
{
	struct parked *p = arg;
	char c = 0;

	p->tid = gettid();
	if (p->fsuid != (uid_t)-1)
		setfsuid(p->fsuid); /* per thread: not broadcast by glibc */
	if (write(p->ready[1], &c, 1) != 1 || read(p->go[0], &c, 1) != 1)
		return NULL;
	return NULL;
}

/* Waits up to 10 s until /proc/self/task/TID is gone (the task has been
 * released, not merely joined); fails the test if it never goes. */
static void wait_task_gone(pid_t tid)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof path, "/proc/self/task/%d", (int)tid);
	for (int i = 0; i < 10000; i++) {
		if (stat(path, &st) != 0 && errno == ENOENT)
			return;
		usleep(1000);
	}
	fail_msg("thread %d still listed in /proc 10 s after pthread_join", (int)tid);
}

/* A non-leader thread, as a FUSE request from a threaded caller gives it,
 * while it waits (as it would for the reply). On kernels < 6.9 this runs
 * the pidfd-of-the-tgid fallback. */
static void test_real_proc_other_thread(void **state)
{
	struct parked p = { .fsuid = (uid_t)-1 };
	struct acl_labels l;
	pthread_t t;
	char why[256] = "", c = 0;
	int rc;

	assert_int_equal(pipe2(p.ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(p.go, O_CLOEXEC), 0);
	assert_int_equal(pthread_create(&t, NULL, park, &p), 0);
	assert_int_equal(read(p.ready[0], &c, 1), 1);
	assert_true(p.tid != getpid());

	rc = acl_labels_read("/proc", p.tid, geteuid(), ALL, &l, why, sizeof why);
	assert_int_equal(write(p.go[1], &c, 1), 1);
	pthread_join(t, NULL);
	if (rc != 0)
		fail_msg("acl_labels_read(thread %d): %s", (int)p.tid, why);
	check_self(&l, p.tid);

	/* the thread is gone now: deny. pthread_join returns when the kernel
	 * clears the thread's tid word, before it releases the task, so wait
	 * (bounded) until /proc no longer lists it: then it has certainly
	 * exited, and a resolution of it must fail. */
	wait_task_gone(p.tid);
	assert_int_equal(acl_labels_read("/proc", p.tid, geteuid(), 0, &l, why, sizeof why), -1);
	close(p.ready[0]);
	close(p.ready[1]);
	close(p.go[0]);
	close(p.go[1]);
}

/* The fs-uid is the calling thread's own: a thread that switched its
 * fs-uid is that uid, whatever its process's main thread says. */
static void test_real_proc_thread_fsuid(void **state)
{
	struct parked p = { .fsuid = 54321 };
	struct acl_labels l;
	pthread_t t;
	char why[256] = "", c = 0;
	int rc_other, rc_own;

	if (geteuid() != 0) {
		print_message("skipped: setfsuid needs root\n");
		skip();
	}
	assert_int_equal(pipe2(p.ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(p.go, O_CLOEXEC), 0);
	assert_int_equal(pthread_create(&t, NULL, park, &p), 0);
	assert_int_equal(read(p.ready[0], &c, 1), 1);

	rc_other = acl_labels_read("/proc", p.tid, geteuid(), ALL, &l, why, sizeof why);
	rc_own = acl_labels_read("/proc", p.tid, 54321, ALL, &l, why, sizeof why);
	assert_int_equal(write(p.go[1], &c, 1), 1);
	pthread_join(t, NULL);
	close(p.ready[0]);
	close(p.ready[1]);
	close(p.go[0]);
	close(p.go[1]);

	assert_int_equal(rc_other, -1);
	if (rc_own != 0)
		fail_msg("acl_labels_read(thread %d, uid 54321): %s", (int)p.tid, why);
	assert_int_equal(l.uid, 54321);
	assert_int_equal(l.tgid, getpid());
	/* and the main thread is still geteuid() */
	assert_int_equal(acl_labels_read("/proc", getpid(), 54321, 0, &l, why, sizeof why), -1);
}

/* A caller that exited before its labels were confirmed: its /proc/PID
 * (a zombie's status) is still readable, but the pidfd says it is gone. */
static void test_real_proc_exited_denies(void **state)
{
	struct acl_labels l;
	siginfo_t si;
	char why[256] = "", want[64];
	pid_t child;

	child = fork();
	assert_true(child >= 0);
	if (child == 0)
		_exit(0);
	memset(&si, 0, sizeof si);
	assert_int_equal(waitid(P_PID, (id_t)child, &si, WEXITED | WNOWAIT), 0);

	assert_int_equal(acl_labels_read("/proc", child, geteuid(), 0, &l, why, sizeof why), -1);
	/* denied by the pidfd check after the reads, not by a read */
	snprintf(want, sizeof want, "pid %d: exited during the read", (int)child);
	assert_string_equal(why, want);

	assert_int_equal(waitpid(child, NULL, 0), child);
	assert_int_equal(acl_labels_read("/proc", child, geteuid(), 0, &l, why, sizeof why), -1);
	assert_int_equal(l.have, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_glob_star_stays_in_component),
		cmocka_unit_test(test_glob_double_star),
		cmocka_unit_test(test_match_most_specific_wins),
		cmocka_unit_test(test_match_equal_specificity_ambiguous),
		cmocka_unit_test(test_match_none),
		cmocka_unit_test_setup_teardown(test_fake_tracer_userns_auxv, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_fake_ptrace_scope, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_exe_record_refuses_changeable_files, fake_setup, fake_teardown),
		cmocka_unit_test(test_match_refused),
		cmocka_unit_test_setup_teardown(test_pid_zero_denies, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_read_all_labels, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_thread_resolves_to_process, fake_setup,
						fake_teardown),
		cmocka_unit_test_setup_teardown(test_uid_mismatch_denies, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_bad_status_denies, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_unreadable_cgroup_denies, fake_setup,
						fake_teardown),
		cmocka_unit_test_setup_teardown(test_dangling_exe_denies, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_lsm_absent_is_no_label, fake_setup,
						fake_teardown),
		cmocka_unit_test(test_procfs_under_another_name_denies),
		cmocka_unit_test(test_real_proc_self),
		cmocka_unit_test(test_real_proc_wrong_uid),
		cmocka_unit_test(test_real_proc_other_thread),
		cmocka_unit_test(test_real_proc_thread_fsuid),
		cmocka_unit_test(test_real_proc_exited_denies),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
