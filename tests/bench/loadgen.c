/* loadgen.c - scopehold-loadgen, the benchmark's load generator: T threads
 * each open+read+close (or opendir+readdir+closedir, or stat: lookups only)
 * the given paths round robin for S seconds, time every operation into a per-thread log-linear
 * histogram (no allocation in the loop), and print one line:
 *   ops=N secs=S ops_per_s=X p50_us=A p99_us=B errors=E
 * Run it as the agent's uid (setpriv --reuid=UID ...): the uid is the binding.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Log-linear buckets: values below SUB exactly, then SUB buckets per power
 * of two (about 3% wide). 64-bit ns values need (64 - SUB_BITS + 1) * SUB. */
#define SUB_BITS 5
#define SUB (1u << SUB_BITS)
#define NBUCKETS ((64 - SUB_BITS + 1) * SUB)
#define THREADS_MAX 1024

enum phase { WARMUP, MEASURE, STOP };

struct worker {
	pthread_t tid;
	unsigned first;        /* index of the first path, so threads spread out */
	uint64_t ops, errors, entries;
	int first_errno;
	uint64_t hist[NBUCKETS];
};

static char **paths;
static unsigned npaths;
static int readdir_mode, stat_mode;
static _Atomic int phase = WARMUP;

static unsigned bucket_of(uint64_t v)
{
	unsigned e;

	if (v < SUB)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);               /* >= SUB_BITS */
	return (e - SUB_BITS + 1) * SUB + (unsigned)((v >> (e - SUB_BITS)) - SUB);
}

/* The middle of bucket b, in ns. */
static double bucket_mid(unsigned b)
{
	unsigned g = b / SUB;
	uint64_t lo, width;

	if (g == 0)
		return b;
	lo = (uint64_t)(b % SUB + SUB) << (g - 1);
	width = (uint64_t)1 << (g - 1);
	return (double)lo + (double)(width - 1) / 2.0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One operation; 0 or an errno. */
static int op_file(const char *path, uint64_t *entries)
{
	char buf[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return errno;
	n = read(fd, buf, sizeof(buf));
	if (n < 0) {
		int err = errno;

		close(fd);
		return err;
	}
	if (close(fd))
		return errno;
	*entries += (uint64_t)n;
	return n == 0 ? ENODATA : 0; /* a granted secret is never empty here */
}

static int op_stat(const char *path, uint64_t *entries)
{
	struct stat st;

	if (stat(path, &st))
		return errno;
	*entries = (uint64_t)st.st_size;
	return 0;
}

static int op_dir(const char *path, uint64_t *entries)
{
	DIR *d = opendir(path);
	struct dirent *de;
	uint64_t n = 0;

	if (!d)
		return errno;
	errno = 0;
	while ((de = readdir(d)))
		n++;
	if (errno) {
		int err = errno;

		closedir(d);
		return err;
	}
	closedir(d);
	*entries = n;
	return 0;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	unsigned i = w->first;

	for (;;) {
		int p = atomic_load_explicit(&phase, memory_order_relaxed);
		uint64_t t0, t1, entries = 0;
		int err;

		if (p == STOP)
			break;
		t0 = now_ns();
		err = readdir_mode ? op_dir(paths[i], &entries)
		      : stat_mode  ? op_stat(paths[i], &entries)
				   : op_file(paths[i], &entries);
		t1 = now_ns();
		if (++i == npaths)
			i = 0;
		if (p != MEASURE)
			continue;
		if (err) {
			if (!w->errors++)
				w->first_errno = err;
			continue;
		}
		w->ops++;
		w->hist[bucket_of(t1 - t0)]++;
		if (readdir_mode)
			w->entries = entries;
	}
	return NULL;
}

static double quantile_us(const uint64_t *hist, uint64_t total, double q)
{
	uint64_t rank, seen = 0;

	if (!total)
		return 0;
	rank = (uint64_t)(q * (double)total);
	if (rank >= total)
		rank = total - 1;
	for (unsigned b = 0; b < NBUCKETS; b++) {
		seen += hist[b];
		if (seen > rank)
			return bucket_mid(b) / 1000.0;
	}
	return 0;
}

static void sleep_s(double s)
{
	struct timespec ts;

	if (s <= 0)
		return;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: scopehold-loadgen --threads T --seconds S [--warmup S] PATH...\n"
		"       scopehold-loadgen --readdir [--threads T] --seconds S [--warmup S] DIR...\n"
		"       scopehold-loadgen --stat [--threads T] --seconds S [--warmup S] PATH...\n"
		"  each thread: open(O_RDONLY)+read(4096)+close (or opendir+readdir all+closedir,\n"
		"  or stat: lookups and getattr only)\n"
		"  over the paths round robin; prints\n"
		"  ops=N secs=S ops_per_s=X p50_us=A p99_us=B errors=E [entries=N]\n");
}

static int parse_double(const char *opt, const char *s, double lo, double hi, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno || end == s || *end || *out < lo || *out > hi) {
		fprintf(stderr, "scopehold-loadgen: %s \"%s\": want %g..%g\n", opt, s, lo, hi);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	double threads_d = 1, seconds = 3, warmup = 0.5, secs;
	unsigned nthreads;
	struct worker *w;
	uint64_t *hist, ops = 0, errors = 0, entries = 0, t0, t1;
	int first_errno = 0, rc;
	int i;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--")) {
			i++;
			break;
		} else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
			if (parse_double("--threads", argv[++i], 1, THREADS_MAX, &threads_d))
				return 2;
		} else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
			if (parse_double("--seconds", argv[++i], 0.01, 86400, &seconds))
				return 2;
		} else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) {
			if (parse_double("--warmup", argv[++i], 0, 3600, &warmup))
				return 2;
		} else if (!strcmp(argv[i], "--readdir")) {
			readdir_mode = 1;
		} else if (!strcmp(argv[i], "--stat")) {
			stat_mode = 1;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "scopehold-loadgen: unexpected \"%s\"\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	paths = argv + i;
	npaths = (unsigned)(argc - i);
	nthreads = (unsigned)threads_d;

	w = calloc(nthreads, sizeof(*w));
	hist = calloc(NBUCKETS, sizeof(*hist));
	if (!w || !hist) {
		fprintf(stderr, "scopehold-loadgen: out of memory\n");
		return 1;
	}
	for (unsigned t = 0; t < nthreads; t++) {
		w[t].first = t % npaths;
		rc = pthread_create(&w[t].tid, NULL, run, &w[t]);
		if (rc) {
			fprintf(stderr, "scopehold-loadgen: pthread_create: %s\n", strerror(rc));
			atomic_store(&phase, STOP);
			for (unsigned u = 0; u < t; u++)
				pthread_join(w[u].tid, NULL);
			return 1;
		}
	}
	sleep_s(warmup);
	t0 = now_ns();
	atomic_store(&phase, MEASURE);
	sleep_s(seconds);
	atomic_store(&phase, STOP);
	t1 = now_ns();
	for (unsigned t = 0; t < nthreads; t++) {
		pthread_join(w[t].tid, NULL);
		ops += w[t].ops;
		errors += w[t].errors;
		if (w[t].entries > entries)
			entries = w[t].entries;
		if (w[t].errors && !first_errno)
			first_errno = w[t].first_errno;
		for (unsigned b = 0; b < NBUCKETS; b++)
			hist[b] += w[t].hist[b];
	}
	secs = (double)(t1 - t0) / 1e9;
	printf("ops=%" PRIu64 " secs=%.3f ops_per_s=%.0f p50_us=%.1f p99_us=%.1f errors=%" PRIu64,
	       ops, secs, (double)ops / secs, quantile_us(hist, ops, 0.50),
	       quantile_us(hist, ops, 0.99), errors);
	if (readdir_mode)
		printf(" entries=%" PRIu64, entries);
	printf("\n");
	if (errors)
		fprintf(stderr, "scopehold-loadgen: %" PRIu64 " errors, the first: %s\n", errors,
			strerror(first_errno));
	free(hist);
	free(w);
	return errors ? 1 : 0;
}
