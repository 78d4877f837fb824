/* fs.h - the scopeholdfs daemon: options, the shared state of the FUSE
 * operations, and the operations table. */
#ifndef SCOPEHOLD_FS_H
#define SCOPEHOLD_FS_H

#include <pthread.h>
#include <stdatomic.h>

#include <fuse_lowlevel.h>

#include "acl/acl.h"
#include "acl/audit.h"
#include "vault/config.h"

/* Node ids: the kind in the top byte, below it the database ids passed
 * through a keyed permutation (fs/ino.c): opaque, yet stable per name and
 * agent, since ids are never reused (AUTOINCREMENT). */
#define FS_INO_MASK ((1ULL << 56) - 1)
/* The key of the permutation (crypto_shorthash_KEYBYTES = 16 bytes), set
 * once at start before the mount serves. */
void fs_ino_init(const unsigned char *key);
uint64_t fs_ino_hide(uint64_t id56);
uint64_t fs_ino_show(uint64_t ino56);
#define FS_INO_ROOT FUSE_ROOT_ID
#define FS_INO_META 2ULL   /* /.scopehold */
/* /.scopehold/whoami: a node id per caller (uid, thread), so that the page
 * cache of one caller's text is never another's. */
#define FS_INO_WHOAMI (3ULL << 56)
#define FS_INO_WHOAMI_OF(uid, pid) \
	(FS_INO_WHOAMI | ((fuse_ino_t)(uint32_t)(uid) << 24) | ((fuse_ino_t)(pid) & 0xffffffULL))
#define FS_INO_PROVIDER (1ULL << 56)
#define FS_INO_SECRET (2ULL << 56)
#define FS_INO_KIND(ino) ((ino) & (0xffULL << 56))
#define FS_INO_PROVIDER_OF(id) (FS_INO_PROVIDER | (fuse_ino_t)fs_ino_hide((uint64_t)(id) & FS_INO_MASK))
#define FS_INO_ID(ino) ((int64_t)fs_ino_show((ino) & FS_INO_MASK))
/* A secret's node id names the agent that looked it up as well: two agents
 * never share an inode, so the kernel's page cache (which a MAP_PRIVATE mmap
 * uses even with direct_io) never carries one agent's pages to another.
 * Agent ids below 2^24, secret ids below 2^32. */
#define FS_AGENT_MAX ((1LL << 24) - 1)
#define FS_SECRET_MAX ((1LL << 32) - 1)
#define FS_INO_SECRET_OF(agent, sid) \
	(FS_INO_SECRET | (fuse_ino_t)fs_ino_hide(((uint64_t)(agent) << 32) | (uint64_t)(sid)))
#define FS_INO_SECRET_ID(ino) ((int64_t)(fs_ino_show((ino) & FS_INO_MASK) & 0xffffffffULL))
#define FS_INO_AGENT(ino) ((int64_t)((fs_ino_show((ino) & FS_INO_MASK) >> 32) & 0xffffffULL))

struct fs_opts {
	char *config;
	char *db;
	char *key_file;
	char *launch_socket;
	char *launch_cgroup;
	int foreground;
	int debug;
	int show_help;
	int show_version;
	int max_threads;
	int nonempty;    /* -o nonempty: mount over a directory that is not empty */
	char *mountpoint; /* as given, checked before libfuse resolves it */
};

struct fs_state {
	struct vault_config cfg;
	struct fuse_session *se;    /* for cache invalidation after RELEASE */
	struct vault_key *key;
	struct audit_writer *audit;
	pthread_key_t tls;          /* per-thread connection and buffer */
	atomic_int audit_failing;   /* 1 after the first failed audit commit was logged */
	atomic_int audit_low;       /* the store's filesystem was below the reserve, logged */
	_Atomic int64_t audit_noted_ns; /* when audit_notes last looked */
	_Atomic int64_t audit_dropped; /* rows lost so far that the log has counted */
	struct fs_launch *launch;   /* the launch socket's thread, or NULL */
};

/* Start the launch socket ([launch] socket, cgroup) after the mount: a
 * thread that moves `scopeholdctl run --agent` callers into their agent's
 * launch cgroup. Off when the socket is "" or "none"; a launcher that cannot
 * start logs one warning and leaves the filesystem serving. Returns 0. */
int fs_launch_start(struct fs_state *fs);
/* Stop it and remove the socket file (a no-op when it is off). */
void fs_launch_stop(struct fs_state *fs);

/* Parse argv into opts (fuse_opt_parse), leaving FUSE's own in args. The
 * config file is then loaded into cfg and the command line overrides it.
 * Returns 0, 1 when help/version was printed, -1 after printing an error. */
int fs_conf(struct fuse_args *args, struct fs_opts *opts, struct vault_config *cfg);
/* Free the strings fuse_opt_parse duplicated into opts. */
void fs_opts_free(struct fs_opts *opts);

/* The low-level operations; userdata is a struct fs_state. */
extern const struct fuse_lowlevel_ops fs_ops;

/* Per-thread resources: release them (called at thread exit). */
void fs_tls_free(void *p);

#endif
