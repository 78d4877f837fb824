/* test_log.c - scopeholdfs's log filter (fs/log.c): repeats collapsed, the
 * rate capped, the level applied, and what the operations print to stderr
 * going the same way, each line out before fs_log returns. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fs/log.h"

/* Run fn with fd 2 on a temporary file, the filter started; return what
 * reached fd 2 (malloc'd). */
static char *capture(void (*fn)(void), int ratelimit)
{
	char path[] = "/tmp/scopehold-test-log-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	assert_int_equal(fs_log_start(0, ratelimit), 0);
	fn();
	fs_log_stop();
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	off_t len = lseek(fd, 0, SEEK_END);
	char *buf = calloc(1, (size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)len, 0), len);
	close(fd);
	return buf;
}

static int count(const char *text, const char *needle)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void repeat_100(void)
{
	for (int i = 0; i < 100; i++)
		fs_log(LOG_ERR, "cannot open database '%s'", "/x.db");
	fs_log(LOG_INFO, "something else");
	for (int i = 0; i < 5; i++)
		fprintf(stderr, "scopeholdfs: a fault printed by the operations\n");
}

static void test_repeats_are_collapsed(void **state)
{
	(void)state;
	char *out = capture(repeat_100, 1);
	assert_int_equal(count(out, "cannot open database '/x.db'\n"), 1);
	assert_non_null(strstr(out, "the last message was repeated 99 more times\n"));
	assert_int_equal(count(out, "something else\n"), 1);
	/* stderr's lines, collapsed too; the last run is counted at stop. */
	assert_int_equal(count(out, "a fault printed by the operations\n"), 1);
	assert_non_null(strstr(out, "the last message was repeated 4 more times\n"));
	free(out);
}

static void distinct_500(void)
{
	for (int i = 0; i < 500; i++)
		fs_log(LOG_ERR, "request %d failed", i);
}

static void test_distinct_lines_are_capped(void **state)
{
	(void)state;
	char *out = capture(distinct_500, 1);
	int lines = count(out, "failed\n");
	assert_true(lines >= 100 && lines < 200);
	assert_non_null(strstr(out, "log lines dropped (more than 20 a second)"));
	free(out);
	out = capture(distinct_500, 0); /* -d: every line */
	assert_int_equal(count(out, "failed\n"), 500);
	free(out);
}

static void levels(void)
{
	fs_log_set_level(LOG_WARNING);
	fs_log(LOG_INFO, "an info line");
	fs_log(LOG_DEBUG, "a debug line");
	fs_log(LOG_WARNING, "a warning line");
	fs_log(LOG_ERR, "an error line");
	fs_log_set_level(LOG_INFO);
}

static void test_level_drops_less_important_lines(void **state)
{
	(void)state;
	char *out = capture(levels, 1);
	assert_null(strstr(out, "info line"));
	assert_null(strstr(out, "debug line"));
	assert_non_null(strstr(out, "scopeholdfs: warning: a warning line\n"));
	assert_non_null(strstr(out, "scopeholdfs: an error line\n"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_repeats_are_collapsed),
		cmocka_unit_test(test_distinct_lines_are_capped),
		cmocka_unit_test(test_level_drops_less_important_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
