/* main.c - scopeholdctl: global options, then one verb from the table.
 * Exit status: 0 done, 1 refused or failed (one line on stderr), 2 usage. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "admin/ctl.h"

static const struct ctl_verb verbs[] = {
	{ "init", ctl_init, NULL, "create the database and master key; refuses to overwrite" },
	{ "provider", ctl_provider, NULL, "add|rm NAME, list: namespaces of external systems" },
	{ "project", ctl_project, NULL, "add|rm NAME, list: groups of agents" },
	{ "secret", ctl_secret, NULL, "put|list|versions|rollback|rm|assign|unassign: versioned encrypted values" },
	{ "agent", ctl_agent, NULL, "add|set|list|rm|disable|enable: runtime identities and their bindings" },
	{ "grant", ctl_grant, NULL, "AGENT P/K [--ttl D|--until T]: let AGENT read P/K (until then)" },
	{ "revoke", ctl_grant, NULL, "AGENT P/K: take the grant back; effective at the next open" },
	{ "grants", ctl_grants, NULL, "[--agent A]: list direct grants and whether each is effective" },
	{ "explain", ctl_explain, NULL, "AGENT P/K: can AGENT read P/K, and which rule decides" },
	{ "whoami", ctl_whoami, NULL, "PID: which agent a running process resolves to, and why" },
	{ "audit", ctl_audit, NULL, "list|verify|prune|export: the audit trail" },
	{ "rekey", ctl_rekey, NULL, "new master key; rewrap the data key" },
	{ "backup", ctl_backup, NULL, "DIR: consistent copies of both stores, while scopeholdfs serves" },
	{ "restore", ctl_backup, NULL, "DIR [--yes]: put a backup back (scopeholdfs stopped)" },
	{ "status", ctl_status, NULL, "[--json]: stores, counts, audit head hash, which mounts are served" },
	{ "exec", ctl_exec, NULL, "[--mount DIR] --env NAME=P/K ... -- CMD: run CMD with granted values in its environment" },
	{ "run", ctl_run, NULL, "--agent NAME [...] -- CMD: be placed into agent NAME by the daemon, then run CMD" },
};

static void usage(FILE *f)
{
	fputs("usage: scopeholdctl [-c CONFIG] [--db PATH] [--key-file PATH] [--json] VERB ...\n\n"
	      "Manage ScopeHold: providers, projects, agents, secrets, grants and the audit trail.\n"
	      "Values are read from stdin or --from-file, never from the command line.\n\nverbs:\n", f);
	for (size_t i = 0; i < sizeof verbs / sizeof *verbs; i++)
		fprintf(f, "  %-9s %s\n", verbs[i].name, verbs[i].summary);
	fputs("\noptions:\n"
	      "  -c, --config FILE  config file (default $SCOPEHOLD_CONFIG or " VAULT_DEFAULT_CONFIG ")\n"
	      "  --db PATH          database (default [vault] db or " VAULT_DEFAULT_DB ")\n"
	      "  --key-file PATH    master key (default [vault] key_file or " VAULT_DEFAULT_KEY ")\n"
	      "  --json             print one JSON document on stdout (errors: {\"error\": ...} on stderr)\n"
	      "  -h, --help         this help\n"
	      "  --version          print the version and exit\n"
	      "\n`scopeholdctl VERB --help` describes each verb.\n", f);
}

int main(int argc, char **argv)
{
	struct ctl c;
	memset(&c, 0, sizeof c);
	struct rlimit no_core = { 0, 0 };
	setrlimit(RLIMIT_CORE, &no_core);
	prctl(PR_SET_DUMPABLE, 0);
	umask(077);
	if (sodium_init() < 0)
		return ctl_fail("libsodium failed to initialise");

	const char *config = NULL, *db = NULL, *key = NULL;
	for (int j = 1; j < argc && strcmp(argv[j], "--"); j++)
		if (!strcmp(argv[j], "--json"))
			ctl_json_errors = 1;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		int r;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--version")) {
			puts("scopeholdctl 0.1.0");
			return 0;
		} else if (!strcmp(argv[i], "--json")) {
			c.json = 1;
		} else if ((r = ctl_opt("scopeholdctl", argc, argv, &i, "--config", &config)) ||
			   (r = ctl_opt("scopeholdctl", argc, argv, &i, "-c", &config)) ||
			   (r = ctl_opt("scopeholdctl", argc, argv, &i, "--db", &db)) ||
			   (r = ctl_opt("scopeholdctl", argc, argv, &i, "--key-file", &key))) {
			if (r < 0)
				return 2;
		} else {
			ctl_fail("unknown option '%s' (see: scopeholdctl --help)", argv[i]);
			return 2;
		}
	}
	if (i == argc) {
		usage(stderr);
		return 2;
	}
	struct vault_err e = { 0 };
	if ((config && !*config) || (db && !*db) || (key && !*key))
		return ctl_usage("scopeholdctl", "-c, --db and --key-file need a non-empty value");
	if (vault_config_load(&c.cfg, config, &e) < 0) {
		/* An agent's exec or run needs nothing from a default config it may not
		 * read (init makes /etc/scopehold 0700): the defaults stand. */
		const char *env = getenv("SCOPEHOLD_CONFIG");
		if (config || (env && *env) || i >= argc || (strcmp(argv[i], "exec") && strcmp(argv[i], "run")) ||
		    access(VAULT_DEFAULT_CONFIG, R_OK) == 0 || errno != EACCES)
			return ctl_verr(&e);
		c.cfg_unreadable = 1; /* c.cfg holds the defaults: the load stopped at the open */
	}
	if (db && snprintf(c.cfg.db, sizeof c.cfg.db, "%s", db) >= (int)sizeof c.cfg.db)
		return ctl_fail("--db path is too long");
	if (key && snprintf(c.cfg.key_file, sizeof c.cfg.key_file, "%s", key) >= (int)sizeof c.cfg.key_file)
		return ctl_fail("--key-file path is too long");
	if (vault_config_check(&c.cfg, &e) < 0)
		return ctl_verr(&e);

	/* --json may also follow the verb (before any "--"). */
	int n = 0;
	char **av = argv + i;
	int ac = argc - i;
	for (int j = 0; j < ac; j++) {
		if (!strcmp(av[j], "--")) {
			while (j < ac)
				av[n++] = av[j++];
			break;
		}
		if (!strcmp(av[j], "--json"))
			c.json = 1;
		else
			av[n++] = av[j];
	}
	ac = n;
	av[ac] = NULL;

	int ret = -1;
	for (size_t k = 0; k < sizeof verbs / sizeof *verbs; k++)
		if (!strcmp(av[0], verbs[k].name))
			ret = verbs[k].fn(&c, ac, av);
	if (ret < 0) {
		ctl_fail("unknown verb '%s' (see: scopeholdctl --help)", av[0]);
		ret = 2;
	}
	vault_key_free(c.key);
	vault_db_close(c.db);
	vault_db_close(c.adb);
	return ret;
}
