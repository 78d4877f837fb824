/* fuzz.h - what the libFuzzer targets share: NUL-terminated copies of the
 * input, splitting one input into parts, a scratch directory. */
#ifndef SCOPEHOLD_FUZZ_H
#define SCOPEHOLD_FUZZ_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input as a C string: cut at its first NUL, malloc'd. */
static inline char *fuzz_str(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* Up to n parts of data separated by FUZZ_SEP; missing parts are empty.
 * part[i]/len[i] point into data. Returns how many separators were found. */
#define FUZZ_SEP "@@@@"
static inline size_t fuzz_split(const uint8_t *data, size_t size, size_t n,
				const uint8_t **part, size_t *len)
{
	size_t i, found = 0, sl = strlen(FUZZ_SEP);
	for (i = 0; i < n; i++) {
		const uint8_t *sep = i + 1 < n ? memmem(data, size, FUZZ_SEP, sl) : NULL;
		part[i] = data;
		len[i] = sep ? (size_t)(sep - data) : size;
		if (sep) {
			found++;
			size -= len[i] + sl;
			data = sep + sl;
		} else {
			data += size;
			size = 0;
		}
	}
	return found;
}

/* A private directory for files a target writes: under $TMPDIR when set
 * (scripts/fuzz points it into its own scratch directory, which it removes
 * also after a crash), else /dev/shm (no disk writes per run). A target
 * removes it at exit. */
static inline const char *fuzz_tmpdir(void)
{
	static char dir[PATH_MAX];
	if (!dir[0]) {
		const char *t = getenv("TMPDIR");
		snprintf(dir, sizeof dir, "%s/scopehold-fuzz.XXXXXX", t && *t ? t : "/dev/shm");
		if (!mkdtemp(dir))
			abort();
	}
	return dir;
}

/* Write len bytes to path (mode 0600), replacing it; abort on failure. */
static inline void fuzz_write(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "we");
	if (!f || (len && fwrite(buf, 1, len, f) != len) || fclose(f) != 0)
		abort();
}

#endif
