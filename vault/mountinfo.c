/* mountinfo.c - read /proc/self/mountinfo: field 5 is the mount point,
 * the first field after " - " the filesystem type. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vault/mountinfo.h"

static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') << 6 | (r[2] - '0') << 3 | (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = 0;
}

int vault_mountinfo_each(int (*fn)(void *arg, const char *mp, const char *fstype), void *arg)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	if (!f)
		return -1;
	while (getline(&line, &cap, f) > 0) {
		char mp[PATH_MAX], ty[64];
		char *sep = strstr(line, " - ");
		if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1 || sscanf(sep + 3, "%63s", ty) != 1)
			continue;
		unescape(mp);
		if (fn(arg, mp, ty))
			break;
	}
	free(line);
	fclose(f);
	return 0;
}
