/* execstop.c - LD_PRELOAD shim for the memory hygiene tests: a program that
 * calls execve, execvpe, execvp or execv first writes to fd 2 one line per
 * string of the environment it hands over ("execstop: env ADDR LEN", hex
 * address, length with the NUL), then "execstop: stopped PID", and stops
 * itself with SIGSTOP; after SIGCONT the exec goes on. So a test can read the
 * program's memory as it is just before the exec and tell the environment
 * block from everything else. */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *next(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);
	if (!f) {
		static const char msg[] = "execstop: a wrapped function is missing\n";
		(void)!write(2, msg, sizeof msg - 1);
		abort();
	}
	return f;
}

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
	return ((int (*)(const char *, char *const[], char *const[]))next("execve"))(path, argv, envp);
}

int execvpe(const char *file, char *const argv[], char *const envp[])
{
	stop(envp);
	return ((int (*)(const char *, char *const[], char *const[]))next("execvpe"))(file, argv, envp);
}

int execvp(const char *file, char *const argv[])
{
	stop(environ);
	return ((int (*)(const char *, char *const[]))next("execvp"))(file, argv);
}

int execv(const char *path, char *const argv[])
{
	stop(environ);
	return ((int (*)(const char *, char *const[]))next("execv"))(path, argv);
}
