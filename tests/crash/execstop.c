/* execstop.c - LD_PRELOAD shim for the memory hygiene tests: a program that
 * calls execve, execvpe, execvp or execv first writes to fd 2 one line per
 * string of the environment it hands over ("execstop: env ADDR LEN", hex
 * address, length with the NUL), then "execstop: stopped PID", and stops
 * itself with SIGSTOP; after SIGCONT the exec goes on. So a test can read the
 * program's memory as it is just before the exec and tell the environment
 * block from everything else. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/crash/shim.h"

/* Say where envp's strings are, and stop until continued. */
static void stop(char *const envp[])
{
	char line[96];
	for (int i = 0; envp && envp[i]; i++) {
		int n = snprintf(line, sizeof line, "execstop: env %p %zu\n", (void *)envp[i], strlen(envp[i]) + 1);
		(void)!write(2, line, (size_t)n);
	}
	int n = snprintf(line, sizeof line, "execstop: stopped %ld\n", (long)getpid());
	(void)!write(2, line, (size_t)n);
	raise(SIGSTOP);
}

extern char **environ;

int execve(const char *path, char *const argv[], char *const envp[])
{
	stop(envp);
	return ((int (*)(const char *, char *const[], char *const[]))shim_next("execve"))(path, argv, envp);
}

int execvpe(const char *file, char *const argv[], char *const envp[])
{
	stop(envp);
	return ((int (*)(const char *, char *const[], char *const[]))shim_next("execvpe"))(file, argv, envp);
}

int execvp(const char *file, char *const argv[])
{
	stop(environ);
	return ((int (*)(const char *, char *const[]))shim_next("execvp"))(file, argv);
}

int execv(const char *path, char *const argv[])
{
	stop(environ);
	return ((int (*)(const char *, char *const[]))shim_next("execv"))(path, argv);
}
