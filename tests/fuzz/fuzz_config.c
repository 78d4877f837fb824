/* fuzz_config.c - vault_config_load on a file holding the input: never
 * crash; a loaded config has every string NUL-terminated and passes or fails
 * vault_config_check cleanly; a refusal says why. */
#include <unistd.h>

#include "tests/fuzz/fuzz.h"
#include "vault/config.h"

static char path[PATH_MAX];

static void cleanup(void)
{
	unlink(path);
	rmdir(fuzz_tmpdir());
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vault_config c;
	struct vault_err e;
	char audit[PATH_MAX];

	if (!path[0]) {
		snprintf(path, sizeof path, "%s/scopehold.ini", fuzz_tmpdir());
		atexit(cleanup);
	}
	fuzz_write(path, data, size);
	memset(&e, 0, sizeof e);
	if (vault_config_load(&c, path, &e) == 0) {
		const char *s[] = { c.db, c.key_file, c.audit_db, c.mountpoint, c.proc_root,
				    c.subuid_file, c.launch_socket, c.launch_cgroup };
		for (size_t i = 0; i < sizeof s / sizeof *s; i++)
			if (!memchr(s[i], '\0', PATH_MAX))
				abort();
		if (c.keep_versions < 1 || c.audit_queue < 1)
			abort();
		if (vault_config_check(&c, &e) == 0 && strlen(vault_config_audit_db(&c, audit)) >= PATH_MAX)
			abort();
	} else if (!e.msg[0] || !memchr(e.msg, '\0', sizeof e.msg)) {
		abort();
	}
	return 0;
}
