/* fuzz_ident.c - the /proc parsers of acl/ident.c (status, cgroup,
 * attr/current, auxv) through acl_labels_read on a fake proc tree written
 * from the input: PID/status @@@@ PID/cgroup @@@@ PID/attr/current @@@@
 * PID/auxv. Never crash; a success has a positive tgid, the request's uid,
 * an absolute cgroup without "/../", a one-line LSM label; a denial has a
 * reason and no labels. Asked once with every label deciding, once with
 * every label for the record only. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acl/ident.h"
#include "tests/fuzz/fuzz.h"

#define PID 100
#define UID 1000

static char root[PATH_MAX], piddir[PATH_MAX];

static void rm(const char *name)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", piddir, name);
	unlink(p);
}

static void cleanup(void)
{
	char p[PATH_MAX];
	rm("status");
	rm("cgroup");
	rm("auxv");
	rm("exe");
	rm("attr/current");
	snprintf(p, sizeof p, "%s/attr", piddir);
	rmdir(p);
	rmdir(piddir);
	snprintf(p, sizeof p, "%s/200", root);
	unlink(p);
	rmdir(root);
}

static void setup(void)
{
	char p[PATH_MAX];
	snprintf(root, sizeof root, "%s", fuzz_tmpdir());
	snprintf(piddir, sizeof piddir, "%s/%d", root, PID);
	snprintf(p, sizeof p, "%s/attr", piddir);
	if (mkdir(piddir, 0700) < 0 || mkdir(p, 0700) < 0)
		abort();
	snprintf(p, sizeof p, "%s/exe", piddir);
	if (symlink("/bin/sh", p) < 0)
		abort();
	snprintf(p, sizeof p, "%s/200", root); /* "Tgid: 200" leads here too */
	if (symlink("100", p) < 0)
		abort();
	atexit(cleanup);
}

static void put(const char *name, const uint8_t *b, size_t n)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", piddir, name);
	fuzz_write(p, b, n);
}

static void check(int rc, const struct acl_labels *l, const char *why)
{
	if (rc < 0) {
		if (!why[0] || l->have || l->cgroup[0] || l->lsm[0] || l->exe[0])
			abort();
		return;
	}
	if (rc != 0 || l->tgid <= 0 || l->uid != UID)
		abort();
	if (l->have & ACL_L_CGROUP) {
		size_t n = strlen(l->cgroup);
		if (l->cgroup[0] != '/' || strstr(l->cgroup, "/../") ||
		    (n >= 3 && !strcmp(l->cgroup + n - 3, "/..")) || strchr(l->cgroup, '\n'))
			abort();
	} else if (l->cgroup[0]) {
		abort();
	}
	if ((l->have & ACL_L_LSM) ? !l->lsm[0] || strchr(l->lsm, '\n') : l->lsm[0] != '\0')
		abort();
	if ((l->have & ACL_L_AUXV) ? l->secure != 0 && l->secure != 1 : l->secure != -1)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *part[4];
	size_t len[4];
	struct acl_labels l;
	char why[256];
	const unsigned all = ACL_L_CGROUP | ACL_L_EXE | ACL_L_LSM | ACL_L_AUXV;

	if (!root[0])
		setup();
	fuzz_split(data, size, 4, part, len);
	put("status", part[0], len[0]);
	put("cgroup", part[1], len[1]);
	put("attr/current", part[2], len[2]);
	put("auxv", part[3], len[3]);

	why[0] = '\0';
	check(acl_labels_read(root, PID, UID, all, &l, why, sizeof why), &l, why);
	why[0] = '\0';
	check(acl_labels_read(root, PID, UID, all * ACL_L_OPTIONAL, &l, why, sizeof why), &l, why);
	why[0] = '\0';
	check(acl_labels_read(root, PID, UID, 0, &l, why, sizeof why), &l, why);
	return 0;
}
