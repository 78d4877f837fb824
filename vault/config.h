/* config.h - the settings both programs share: the ini file (inih) fills a
 * struct vault_config, and each program's command line overrides it. */
#ifndef SCOPEHOLD_CONFIG_H
#define SCOPEHOLD_CONFIG_H

#include <limits.h>

#include "vault/vault.h"

#define VAULT_DEFAULT_AUDIT_RESERVE (64LL << 20) /* [audit] reserve */

enum vault_sync { VAULT_SYNC_NORMAL = 0, VAULT_SYNC_FULL = 1 };

struct vault_config {
	char db[PATH_MAX];
	char key_file[PATH_MAX];    /* empty: $CREDENTIALS_DIRECTORY or the default */
	char audit_db[PATH_MAX];    /* empty: derived from db, see vault_config_audit_db */
	char mountpoint[PATH_MAX];
	char proc_root[PATH_MAX];   /* "/proc" unless a test points elsewhere */
	char subuid_file[PATH_MAX]; /* [identity] subuid_file: /etc/subuid */
	char launch_socket[PATH_MAX]; /* [launch] socket; "" or "none": no launcher */
	char launch_cgroup[PATH_MAX]; /* [launch] cgroup, under the cgroup v2 mount */
	enum vault_sync audit_sync;
	int audit_queue;            /* rows that may wait for the writer */
	int keep_versions;          /* [vault] keep_versions: versions kept per secret */
	int log_level;              /* [fs] log_level as a syslog priority: LOG_ERR..LOG_DEBUG */
	int64_t audit_reserve;      /* bytes kept free for the rows of opens */
};

/* The audit store's path: [audit] db, or db with ".db" replaced by
 * "-audit.db" (or "-audit" appended). Written into buf (PATH_MAX). The
 * programs refuse a db path too long for that (vault_config_check). */
const char *vault_config_audit_db(const struct vault_config *c, char *buf);

/* After the command line has overridden the file: 0, or -1 when the db
 * path is empty or too long to derive the audit store's path from. */
int vault_config_check(const struct vault_config *c, struct vault_err *e);

/* Defaults, then path (or $SCOPEHOLD_CONFIG, or the default file when it
 * exists). An explicitly named file that is missing is an error; an unknown
 * section or key is an error naming its line. */
int vault_config_load(struct vault_config *c, const char *path, struct vault_err *e);

#endif
