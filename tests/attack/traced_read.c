/* traced_read.c - a borrowed process (issue 15): the parent attaches to its
 * child with ptrace (PTRACE_SEIZE, as gdb -p would attach to a running
 * agent of the same uid) and lets it read FILE; with --no-trace it only
 * waits. The child inherits the cgroup the test put this program in. Exit
 * 0 with the bytes on stdout when the child read FILE, 1 with
 * "open: ERRNO" on stderr when not, 77 when ptrace is not allowed here. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static int child(int go, const char *file)
{
	char buf[65536], c;
	ssize_t n;
	int fd;

	if (read(go, &c, 1) != 1)
		return 3;
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "open: %s\n", strerrorname_np(errno));
		return 1;
	}
	while ((n = read(fd, buf, sizeof buf)) > 0)
		if (write(1, buf, (size_t)n) != n)
			return 1;
	return n < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	int trace = 1, p[2], st;
	const char *file;
	pid_t pid;

	if (argc == 3 && !strcmp(argv[1], "--no-trace"))
		trace = 0;
	else if (argc != 2) {
		fprintf(stderr, "usage: traced-read [--no-trace] FILE\n");
		return 2;
	}
	file = argv[argc - 1];
	if (pipe2(p, O_CLOEXEC) < 0)
		return 3;
	pid = fork();
	if (pid < 0)
		return 3;
	if (pid == 0) {
		close(p[1]);
		_exit(child(p[0], file));
	}
	close(p[0]);
	if (trace && ptrace(PTRACE_SEIZE, pid, 0, 0) < 0) {
		fprintf(stderr, "ptrace(PTRACE_SEIZE): %s\n", strerror(errno));
		kill(pid, 9);
		waitpid(pid, NULL, 0);
		return 77;
	}
	if (write(p[1], "g", 1) != 1)
		return 3;
	for (;;) {
		if (waitpid(pid, &st, 0) < 0)
			return 3;
		if (WIFEXITED(st))
			return WEXITSTATUS(st);
		if (WIFSIGNALED(st))
			return 3;
		/* a stop under ptrace: let it go on with its signal */
		ptrace(PTRACE_CONT, pid, 0, WIFSTOPPED(st) && WSTOPSIG(st) != SIGTRAP ? WSTOPSIG(st) : 0);
	}
}
