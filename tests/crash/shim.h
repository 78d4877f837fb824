/* shim.h - what the LD_PRELOAD shims of the crash and hygiene tests share. */
#ifndef SCOPEHOLD_TEST_SHIM_H
#define SCOPEHOLD_TEST_SHIM_H

#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

/* The next definition of name (libc's); aborts with a line on fd 2 when
 * there is none. */
static inline void *shim_next(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);
	if (!f) {
		static const char msg[] = "scopehold test shim: a wrapped function is missing\n";
		(void)!write(2, msg, sizeof msg - 1);
		abort();
	}
	return f;
}

#endif
