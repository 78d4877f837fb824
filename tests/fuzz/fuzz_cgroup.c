/* fuzz_cgroup.c - acl_cgroup_match(glob, path) on two strings split from one
 * input at its first NUL: never crash; a literal glob (no *?[\) matches its
 * own path; "DIR/ **" matches DIR itself (no space in the real pattern). */
#include "acl/ident.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t gl = nul ? (size_t)(nul - data) : size;
	char *glob = fuzz_str(data, gl);
	char *path = nul ? fuzz_str(nul + 1, size - gl - 1) : fuzz_str(data, 0);

	int m = acl_cgroup_match(glob, path);
	if (m != 0 && m != 1)
		abort();
	if (*glob && !strpbrk(glob, "*?[\\") && acl_cgroup_match(glob, glob) != 1)
		abort();
	size_t n = strlen(glob);
	if (n > 3 && !strcmp(glob + n - 3, "/**") && !strpbrk(path, "*?[\\") &&
	    !strncmp(glob, path, n - 3) && path[n - 3] == '\0' && strlen(path) < 4000 &&
	    acl_cgroup_match(glob, path) != 1)
		abort();
	free(glob);
	free(path);
	return 0;
}
