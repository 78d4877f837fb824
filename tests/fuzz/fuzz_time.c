/* fuzz_time.c - scopeholdctl's time and duration parsers (admin/util.c:
 * ctl_parse_time for --since/--until, ctl_parse_duration for --ttl) on any
 * string: never crash, never overflow; a result is -1 or a time in
 * [0, INT64_MAX] ns, a duration in (0, 100 years]. */
#include "admin/ctl.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_str(data, size);
	int64_t t = ctl_parse_time(s);
	if (t < -1)
		abort();
	int64_t d = ctl_parse_duration(s);
	if (d < -1 || d == 0 || d > 100LL * 365 * 86400 * 1000000000LL)
		abort();
	if (t >= 0) { /* what a time prints as must parse again to the same second */
		char buf[64], back[64];
		ctl_format_time(t, buf, sizeof buf);
		strcpy(back, buf);
		char *dot = strchr(back, '.');
		if (dot)
			strcpy(dot, "Z");
		if (ctl_parse_time(back) != t / 1000000000LL * 1000000000LL)
			abort();
	}
	free(s);
	return 0;
}
