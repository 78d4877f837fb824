/* floor.c - scopehold-floor, the benchmark's "floor": a bare FUSE filesystem
 * with the same kernel cache settings as scopeholdfs (timeouts 0, no negative
 * entries, no READDIRPLUS, direct_io on every open) that serves fixed bytes.
 * No identity, no crypto, no audit: what FUSE alone costs. Not installed.
 *
 *   /stripe/test_key      40 fixed bytes
 *   /p/k0 .. /p/kN-1      40 fixed bytes each (--keys N, default 10000)
 *
 * Usage: scopehold-floor [-f] [--keys N] [--threads N] MOUNTPOINT
 * (--threads: libfuse worker threads, default 32 as scopeholdfs)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#define FLOOR_KEYS_MAX 10000000L

/* Inodes: fixed ones first, then the keys of /p. */
enum {
	INO_ROOT = FUSE_ROOT_ID, /* 1 */
	INO_STRIPE,              /* 2: /stripe */
	INO_TEST_KEY,            /* 3: /stripe/test_key */
	INO_P,                   /* 4: /p */
	INO_KEY0,                /* 5: /p/k0, then k1, ... */
};

static const char value[] = "floor-0123456789abcdef0123456789abcdef01"; /* 40 bytes */
#define VALUE_LEN (sizeof(value) - 1)

static long nkeys = 10000;

/* inode of /p/kI, or 0 when name is not one of them */
static fuse_ino_t key_ino(const char *name)
{
	char *end;
	long i;

	if (name[0] != 'k' || name[1] < '0' || name[1] > '9' || (name[1] == '0' && name[2]))
		return 0;
	errno = 0;
	i = strtol(name + 1, &end, 10);
	if (errno || *end || i < 0 || i >= nkeys)
		return 0;
	return INO_KEY0 + (fuse_ino_t)i;
}

static int is_file(fuse_ino_t ino)
{
	return ino == INO_TEST_KEY || (ino >= INO_KEY0 && ino < INO_KEY0 + (fuse_ino_t)nkeys);
}

static int is_dir(fuse_ino_t ino)
{
	return ino == INO_ROOT || ino == INO_STRIPE || ino == INO_P;
}

/* Like scopeholdfs: files are 0400 and owned by the caller. */
static int fill_stat(fuse_req_t req, fuse_ino_t ino, struct stat *st)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = ctx->uid;
	st->st_gid = ctx->gid;
	if (is_dir(ino)) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else if (is_file(ino)) {
		st->st_mode = S_IFREG | 0400;
		st->st_nlink = 1;
		st->st_size = VALUE_LEN;
	} else {
		return -ENOENT;
	}
	return 0;
}

static void floor_init(void *userdata, struct fuse_conn_info *conn)
{
	conn->want &= ~(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
}

static void floor_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	fuse_ino_t ino = 0;

	if (parent == INO_ROOT && !strcmp(name, "stripe"))
		ino = INO_STRIPE;
	else if (parent == INO_ROOT && !strcmp(name, "p"))
		ino = INO_P;
	else if (parent == INO_STRIPE && !strcmp(name, "test_key"))
		ino = INO_TEST_KEY;
	else if (parent == INO_P)
		ino = key_ino(name);
	if (!ino) {
		fuse_reply_err(req, ENOENT); /* never a cached negative entry */
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = ino;
	e.attr_timeout = 0;
	e.entry_timeout = 0;
	fill_stat(req, ino, &e.attr);
	fuse_reply_entry(req, &e);
}

static void floor_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	int rc = fill_stat(req, ino, &st);

	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, 0);
}

static void floor_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (is_dir(ino)) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (!is_file(ino)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EACCES);
		return;
	}
	fi->direct_io = 1;
	fi->keep_cache = 0;
	fuse_reply_open(req, fi);
}

static void floor_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	if (off < 0 || (size_t)off >= VALUE_LEN) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > VALUE_LEN - (size_t)off)
		size = VALUE_LEN - (size_t)off;
	fuse_reply_buf(req, value + off, size);
}

static void floor_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static void floor_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (!is_dir(ino)) {
		fuse_reply_err(req, is_file(ino) ? ENOTDIR : ENOENT);
		return;
	}
	fuse_reply_open(req, fi);
}

/* Entry i of directory ino (0 ".", 1 "..", then children) into buf;
 * 0 when there is no entry i. */
static int dir_entry(fuse_ino_t ino, off_t i, char *name, size_t len, fuse_ino_t *child)
{
	if (i == 0) {
		snprintf(name, len, ".");
		*child = ino;
		return 1;
	}
	if (i == 1) {
		snprintf(name, len, "..");
		*child = INO_ROOT;
		return 1;
	}
	i -= 2;
	switch (ino) {
	case INO_ROOT:
		if (i > 1)
			return 0;
		snprintf(name, len, "%s", i == 0 ? "p" : "stripe");
		*child = i == 0 ? INO_P : INO_STRIPE;
		return 1;
	case INO_STRIPE:
		if (i > 0)
			return 0;
		snprintf(name, len, "test_key");
		*child = INO_TEST_KEY;
		return 1;
	case INO_P:
		if (i >= nkeys)
			return 0;
		snprintf(name, len, "k%" PRId64, (int64_t)i);
		*child = INO_KEY0 + (fuse_ino_t)i;
		return 1;
	}
	return 0;
}

static void floor_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			  struct fuse_file_info *fi)
{
	char buf[64 * 1024], name[32];
	size_t used = 0;
	fuse_ino_t child;
	struct stat st;

	if (size > sizeof(buf))
		size = sizeof(buf);
	memset(&st, 0, sizeof(st));
	for (off_t i = off; dir_entry(ino, i, name, sizeof(name), &child); i++) {
		size_t need;

		st.st_ino = child;
		st.st_mode = is_dir(child) ? S_IFDIR : S_IFREG;
		need = fuse_add_direntry(req, buf + used, size - used, name, &st, i + 1);
		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
}

static void floor_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static const struct fuse_lowlevel_ops floor_ops = {
	.init = floor_init,
	.lookup = floor_lookup,
	.getattr = floor_getattr,
	.open = floor_open,
	.read = floor_read,
	.release = floor_release,
	.opendir = floor_opendir,
	.readdir = floor_readdir,
	.releasedir = floor_releasedir,
};

static void usage(FILE *f)
{
	fprintf(f, "usage: scopehold-floor [-f] [--keys N] [--threads N] MOUNTPOINT\n"
		   "  a bare FUSE filesystem for scripts/bench: /stripe/test_key and /p/k0..kN-1,\n"
		   "  40 fixed bytes each, with scopeholdfs's cache settings\n");
}

int main(int argc, char **argv)
{
	const char *mnt = NULL;
	char *mnt_abs;
	int foreground = 0, rc = 1;
	long threads = 32; /* as scopeholdfs: --max-threads default, all kept idle */
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se;
	struct fuse_loop_config *lc;

	for (int i = 1; i < argc; i++) {
		char *end;

		if (!strcmp(argv[i], "-f")) {
			foreground = 1;
		} else if (!strcmp(argv[i], "--keys") && i + 1 < argc) {
			nkeys = strtol(argv[++i], &end, 10);
			if (*end || nkeys < 0 || nkeys > FLOOR_KEYS_MAX) {
				fprintf(stderr, "scopehold-floor: --keys \"%s\": want 0..%ld\n",
					argv[i], FLOOR_KEYS_MAX);
				return 2;
			}
		} else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
			threads = strtol(argv[++i], &end, 10);
			if (*end || threads < 1 || threads > 1024) {
				fprintf(stderr, "scopehold-floor: --threads \"%s\": want 1..1024\n",
					argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (argv[i][0] != '-' && !mnt) {
			mnt = argv[i];
		} else {
			fprintf(stderr, "scopehold-floor: unexpected \"%s\"\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (!mnt) {
		usage(stderr);
		return 2;
	}
	/* fuse_daemonize() changes to "/": unmounting needs the absolute path */
	mnt_abs = realpath(mnt, NULL);
	if (!mnt_abs) {
		fprintf(stderr, "scopehold-floor: mount point \"%s\": %s\n", mnt, strerror(errno));
		return 1;
	}

	if (fuse_opt_add_arg(&args, argv[0]) ||
	    fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, "ro,nodev,nosuid,noexec,allow_other,fsname=floor,subtype=floor"))
		goto err_args;
	se = fuse_session_new(&args, &floor_ops, sizeof(floor_ops), NULL);
	if (!se)
		goto err_args;
	if (fuse_set_signal_handlers(se))
		goto err_session;
	if (fuse_session_mount(se, mnt_abs))
		goto err_signals;
	if (fuse_daemonize(foreground))
		goto err_mount;
	lc = fuse_loop_cfg_create();
	if (!lc)
		goto err_mount;
	fuse_loop_cfg_set_clone_fd(lc, 0);
	fuse_loop_cfg_set_max_threads(lc, (unsigned)threads);
	fuse_loop_cfg_set_idle_threads(lc, (unsigned)threads);
	rc = fuse_session_loop_mt(se, lc) < 0;
	fuse_loop_cfg_destroy(lc);
err_mount:
	fuse_session_unmount(se);
err_signals:
	fuse_remove_signal_handlers(se);
err_session:
	fuse_session_destroy(se);
err_args:
	fuse_opt_free_args(&args);
	free(mnt_abs);
	return rc;
}
