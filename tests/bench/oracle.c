/* oracle.c - the existence oracle of issue 15, measured: N stat() calls of
 * each of two paths, interleaved A B A B..., each timed; prints the median
 * and p90 of each and the difference of the medians. With A an existing but
 * ungranted name and B a missing one, a difference is what a caller learns
 * about whether A exists. Both must fail with ENOENT (exit 1 otherwise).
 *
 *   scopehold-oracle N PATH_A PATH_B
 *   -> a_p50_us=.. a_p90_us=.. b_p50_us=.. b_p90_us=.. diff_p50_us=.. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int one(const char *path, double *out)
{
	struct stat st;
	double t0 = now_us();
	int rc = stat(path, &st);

	*out = now_us() - t0;
	return rc < 0 && errno == ENOENT ? 0 : -1;
}

int main(int argc, char **argv)
{
	long n = argc == 4 ? strtol(argv[1], NULL, 10) : 0;
	double *a, *b;

	if (n <= 0 || n > 10000000) {
		fprintf(stderr, "usage: scopehold-oracle N PATH_A PATH_B\n");
		return 2;
	}
	a = calloc((size_t)n, sizeof *a);
	b = calloc((size_t)n, sizeof *b);
	if (!a || !b)
		return 2;
	for (long i = 0; i < n / 20 + 1; i++) { /* warm up */
		double d;
		one(argv[2], &d);
		one(argv[3], &d);
	}
	for (long i = 0; i < n; i++) {
		if (one(argv[2], &a[i]) < 0 || one(argv[3], &b[i]) < 0) {
			fprintf(stderr, "oracle: stat of %s or %s did not fail with ENOENT\n", argv[2], argv[3]);
			return 1;
		}
	}
	qsort(a, (size_t)n, sizeof *a, cmp);
	qsort(b, (size_t)n, sizeof *b, cmp);
	printf("a_p50_us=%.2f a_p90_us=%.2f b_p50_us=%.2f b_p90_us=%.2f diff_p50_us=%.2f\n", a[n / 2],
	       a[n * 9 / 10], b[n / 2], b[n * 9 / 10], a[n / 2] - b[n / 2]);
	free(a);
	free(b);
	return 0;
}
