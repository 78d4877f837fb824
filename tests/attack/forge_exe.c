/* forge_exe.c - the exe forgery of issue 15, run by the integration suite:
 * an unprivileged process takes a user namespace of its own (where it holds
 * CAP_CHECKPOINT_RESTORE over itself), unmaps its executable and repoints
 * /proc/self/exe at BOUND with prctl(PR_SET_MM_MAP), then reads FILE.
 *
 *   /lib64/ld-linux-x86-64.so.2 forge-exe BOUND FILE
 *
 * Run through the dynamic loader, so that the executable the kernel knows
 * is ld.so, whose mappings can go without taking this program's code along
 * (linked -z now: nothing resolves through ld.so afterwards). Exit 0 and
 * the file's bytes on stdout when the read worked; 1 with "open: ERRNO" on
 * stderr when it did not; 77 when this kernel does not let the forgery
 * happen at all (then the test is skipped, saying why). */
#include <errno.h>
#include <fcntl.h>
#include <linux/prctl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int unmap_exe(void)
{
	char exe[4096], line[4096 + 128];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	unsigned long lo[64], hi[64];
	int k = 0;
	FILE *f;

	if (n <= 0)
		return -1;
	exe[n] = '\0';
	f = fopen("/proc/self/maps", "re");
	if (!f)
		return -1;
	while (k < 64 && fgets(line, sizeof line, f)) {
		char *path = strchr(line, '/');
		if (!path)
			continue;
		path[strcspn(path, "\n")] = '\0';
		if (strcmp(path, exe) == 0 && sscanf(line, "%lx-%lx", &lo[k], &hi[k]) == 2)
			k++;
	}
	fclose(f);
	for (int i = 0; i < k; i++)
		if (munmap((void *)lo[i], hi[i] - lo[i]) < 0)
			return -1;
	return k > 0 ? 0 : -1;
}

static int stat_fields(struct prctl_mm_map *m)
{
	char buf[4096], *p;
	unsigned long v[52];
	FILE *f = fopen("/proc/self/stat", "re");
	int i;

	if (!f || !fgets(buf, sizeof buf, f))
		return -1;
	fclose(f);
	p = strrchr(buf, ')'); /* comm may hold spaces */
	if (!p)
		return -1;
	p += 2; /* field 3 on */
	for (i = 3; i <= 51; i++) {
		v[i] = strtoul(p, &p, 10);
		if (i == 3) { /* state is a letter */
			while (*p == ' ')
				p++;
			p++;
		}
	}
	m->start_code = v[26];
	m->end_code = v[27];
	m->start_stack = v[28];
	m->start_data = v[45];
	m->end_data = v[46];
	m->start_brk = v[47];
	m->arg_start = v[48];
	m->arg_end = v[49];
	m->env_start = v[50];
	m->env_end = v[51];
	m->brk = (unsigned long)syscall(SYS_brk, 0);
	return 0;
}

int main(int argc, char **argv)
{
	struct prctl_mm_map m;
	char buf[65536];
	ssize_t n;
	int fd;

	if (argc != 3) {
		fprintf(stderr, "usage: ld.so forge-exe BOUND FILE\n");
		return 2;
	}
	if (unshare(CLONE_NEWUSER) < 0) {
		fprintf(stderr, "unshare(CLONE_NEWUSER): %s\n", strerror(errno));
		return 77;
	}
	memset(&m, 0, sizeof m);
	if (stat_fields(&m) < 0) {
		fprintf(stderr, "cannot read /proc/self/stat\n");
		return 77;
	}
	m.exe_fd = (unsigned)open(argv[1], O_RDONLY | O_CLOEXEC);
	if ((int)m.exe_fd < 0) {
		fprintf(stderr, "open %s: %s\n", argv[1], strerror(errno));
		return 77;
	}
	if (unmap_exe() < 0) {
		fprintf(stderr, "cannot unmap the executable (run through ld.so)\n");
		return 77;
	}
	if (prctl(PR_SET_MM, PR_SET_MM_MAP, (unsigned long)&m, sizeof m, 0) < 0) {
		fprintf(stderr, "prctl(PR_SET_MM_MAP): %s\n", strerror(errno));
		return 77;
	}
	n = readlink("/proc/self/exe", buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = '\0';
	fprintf(stderr, "exe now %s\n", buf);
	fd = open(argv[2], O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "open: %s\n", strerrorname_np(errno));
		_exit(1);
	}
	while ((n = read(fd, buf, sizeof buf)) > 0)
		if (write(1, buf, (size_t)n) != n)
			_exit(1);
	close(fd);
	_exit(n < 0 ? 1 : 0); /* ld.so is gone: no exit handlers */
}
