"""test_lifecycle.py - issue 9: exit codes and JSON of every verb, idempotent
grants, repeated options, bindings that would lock an agent out, agents
edited in place, secret versions (keep_versions, rollback, rm --yes),
expiring grants, backup and restore."""
import json
import os
import re
import sqlite3
import subprocess
import time

import pytest

import scopehold_it as it
from scopehold_it import UID_A, UID_B


def one_line_error(p, what, rcs=(1, 2)):
    assert p.returncode in rcs, f"{what}: exit {p.returncode}, stderr {p.stderr!r}, stdout {p.stdout!r}"
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("scopeholdctl:"), f"{what}: {p.stderr!r}"
    assert p.stdout == "", f"{what}: stdout {p.stdout!r}"
    return lines[0]


def vault_snapshot(vault):
    """The vault database's tables (not the audit store, which a running
    daemon may append rows to at any moment)."""
    return {k: v for k, v in vault.snapshot().items() if k.startswith(vault.db + ":")}


def admin_rows(vault):
    return [r for r in vault.audit_rows() if r["event"] != "open"]


@pytest.fixture
def shop(vault):
    """billing-mcp on UID_A in project shop, granted stripe/test_key."""
    vault.agent("billing-mcp", "shop", UID_A)
    vault.give("billing-mcp", "shop", "stripe/test_key")
    return vault


# ---- small defects ------------------------------------------------------------

def test_explain_exit_status_says_allowed_or_denied(shop):
    p = shop.ctl("explain", "billing-mcp", "stripe/test_key")
    assert p.returncode == 0 and p.stdout.startswith("ALLOWED"), p
    shop.put("stripe/other", it.new_value())
    for args in (["explain", "billing-mcp", "stripe/other"], ["--json", "explain", "billing-mcp", "stripe/other"]):
        p = shop.ctl(*args)
        assert p.returncode == 1, (args, p)
    assert json.loads(p.stdout)["allowed"] is False


def test_grant_and_revoke_are_idempotent_and_record_one_row(shop):
    before = len(admin_rows(shop))
    p = shop.ctl_ok("grant", "billing-mcp", "stripe/test_key")
    assert "already granted" in p.stdout and "agent 'billing-mcp' already has a grant of 'stripe/test_key'" in p.stdout, p
    assert len(admin_rows(shop)) == before, "a repeated grant left an audit row"
    shop.ctl_ok("revoke", "billing-mcp", "stripe/test_key")
    p = shop.ctl_ok("revoke", "billing-mcp", "stripe/test_key")
    assert "agent 'billing-mcp' has no grant of 'stripe/test_key'" in p.stdout, p
    assert len(admin_rows(shop)) == before + 1
    assert shop.ctl_json("revoke", "billing-mcp", "stripe/test_key")["changed"] is False
    # assign still refuses a repeat, quoting the words in their places
    line = one_line_error(shop.ctl("secret", "assign", "stripe/test_key", "shop"), "assign twice")
    assert "secret 'stripe/test_key' already has an assignment to project 'shop'" in line, line


def test_a_repeated_single_value_option_is_a_usage_error(shop):
    before = shop.snapshot()
    for argv in (["agent", "add", "dup", "--project", "shop", "--uid", "1234", "--uid", "99"],
                 ["agent", "add", "dup", "--project=shop", "--project", "x", "--uid", "5"],
                 ["grants", "--agent", "a", "--agent", "b"],
                 ["audit", "list", "--limit", "1", "--limit", "2"],
                 ["grant", "billing-mcp", "stripe/test_key", "--ttl", "1h", "--ttl", "2h"]):
        line = one_line_error(shop.ctl(*argv), " ".join(argv), rcs=(2,))
        assert "given twice" in line, line
    one_line_error(shop.ctl("provider", "list", extra=["--db", shop.db]), "--db twice", rcs=(2,))
    assert shop.snapshot() == before


def test_version_is_in_the_help(vault):
    p = vault.ctl_ok("--help")
    assert "--version" in p.stdout
    assert vault.ctl_ok("--version").stdout.startswith("scopeholdctl ")


def test_admin_rows_show_null_for_secret_id_and_version(shop):
    rows = admin_rows(shop)
    assert rows and all(r["secret_id"] is None and r["version"] is None for r in rows), rows


# Every verb with --json: (argv, exit status). Success prints one JSON
# document on stdout; a failure prints {"error": ...} on stderr.
def json_cases(vault, workdir):
    bk = os.path.join(workdir, "bk-json")
    return {
        "init": [(["init"], 1)],
        "provider": [(["provider", "add", "gh"], 0), (["provider", "list"], 0), (["provider", "add", "gh"], 1),
                     (["provider", "rm", "gh"], 0), (["provider", "frob"], 2)],
        "project": [(["project", "add", "p2"], 0), (["project", "list"], 0), (["project", "rm", "p2"], 0),
                    (["project", "rm", "p2"], 1)],
        "secret": [(["secret", "put", "stripe/j"], 0), (["secret", "list"], 0), (["secret", "versions", "stripe/j"], 0),
                   (["secret", "assign", "stripe/j", "shop"], 0), (["secret", "unassign", "stripe/j", "shop"], 0),
                   (["secret", "rollback", "stripe/j", "1"], 0), (["secret", "rollback", "stripe/j", "7"], 1),
                   (["secret", "rm", "stripe/j"], 0), (["secret", "rm", "stripe/j"], 1)],
        "agent": [(["agent", "add", "a2", "--project", "shop", "--uid", "4242"], 0), (["agent", "list"], 0),
                  (["agent", "set", "a2", "--uid", "4343"], 0), (["agent", "disable", "a2"], 0),
                  (["agent", "enable", "a2"], 0), (["agent", "rm", "a2"], 0), (["agent", "rm", "a2"], 1),
                  (["agent", "add", "x", "--uid", "1"], 2)],
        "grant": [(["grant", "billing-mcp", "stripe/test_key"], 0), (["grant", "nobody", "stripe/test_key"], 1)],
        "revoke": [(["revoke", "billing-mcp", "stripe/test_key"], 0), (["revoke", "billing-mcp", "stripe/nope"], 1)],
        "grants": [(["grants"], 0), (["grants", "--agent", "nobody"], 1)],
        "explain": [(["explain", "billing-mcp", "stripe/test_key"], 1), (["explain", "nobody", "stripe/test_key"], 1)],
        "whoami": [(["whoami", str(os.getpid())], 0), (["whoami", "x"], 2)],
        "audit": [(["audit", "list", "--limit", "3"], 0), (["audit", "verify"], 0), (["audit", "list", "--since", "x"], 2)],
        "rekey": [(["rekey"], 0), (["rekey", "extra"], 2)],
        "exec": [(["exec", "--env", "bad"], 2)],
        "status": [(["status"], 0), (["status", "extra"], 2)],
        "run": [(["run", "--env", "bad"], 2), (["run", "--agent", "nosuch", "--socket", os.path.join(workdir, "no.sock"), "--", "true"], 1)],
        "backup": [(["backup", bk], 0), (["backup", bk], 1)],
        "restore": [(["restore", bk], 1), (["restore"], 2)],
    }


def verbs_in_help(vault):
    text = vault.ctl_ok("--help").stdout
    block = text.split("verbs:", 1)[1].split("options:", 1)[0]
    return [m.group(1) for m in re.finditer(r"^  ([a-z]+) ", block, re.M)]


def test_every_verb_prints_one_json_document(shop, workdir):
    cases = json_cases(shop, workdir)
    verbs = verbs_in_help(shop)
    assert verbs and set(verbs) <= set(cases), f"verbs without a JSON case: {set(verbs) - set(cases)}"
    for verb in verbs:
        for argv, rc in cases[verb]:
            value = it.new_value() if argv[:2] == ["secret", "put"] else None
            if value:
                shop.values.append(value.encode())
            p = shop.ctl("--json", *argv, input=value)
            what = " ".join(argv)
            assert p.returncode == rc, (what, p.returncode, p.stdout, p.stderr)
            denied = verb == "explain" and p.stdout != ""  # DENIED is a verdict, not an error
            if rc == 0 or denied:
                doc = json.loads(p.stdout)  # one document, or this raises
                assert isinstance(doc, (dict, list)), what
                if rc == 0 and isinstance(doc, dict) and verb not in ("whoami", "audit", "explain", "status"):
                    assert doc.get("ok") is True, (what, doc)
            if rc != 0 and not denied:
                assert p.stdout == "", (what, p.stdout)
                err = json.loads(p.stderr)
                assert set(err) == {"error"} and err["error"].startswith("scopeholdctl:"), (what, err)


# ---- bindings that cannot silently lock an agent out ---------------------------

def test_an_equally_specific_agent_is_refused_unless_allowed(shop, mount, cat_as):
    v = shop.values[-1]
    before = vault_snapshot(shop)
    line = one_line_error(shop.ctl("agent", "add", "dup", "--project", "shop", "--uid", str(UID_A)), "dup")
    assert "'billing-mcp'" in line and "--allow-overlap" in line, line
    assert vault_snapshot(shop) == before
    assert cat_as(UID_A, mount.p("stripe/test_key")) == (0, v.decode(), "")
    j = shop.explain("billing-mcp", "stripe/test_key")
    assert j["allowed"] is True and j["ambiguous_with"] is None, j
    # with --allow-overlap it is added; explain and agent list warn
    shop.ctl_ok("agent", "add", "dup", "--project", "shop", "--uid", str(UID_A), "--allow-overlap")
    assert cat_as(UID_A, mount.p("stripe/test_key"))[0] != 0  # ambiguous: denied
    assert shop.explain("billing-mcp", "stripe/test_key")["ambiguous_with"] == "dup"
    assert "warning: agent 'dup'" in shop.ctl_ok("explain", "billing-mcp", "stripe/test_key").stdout
    listed = {a["name"]: a["ambiguous_with"] for a in shop.ctl_json("agent", "list")}
    assert listed == {"billing-mcp": "dup", "dup": "billing-mcp"}, listed
    # a label that tells them apart is not an overlap: set refuses to undo it
    shop.ctl_ok("agent", "set", "dup", "--uid", str(UID_B))
    assert cat_as(UID_A, mount.p("stripe/test_key")) == (0, v.decode(), "")
    line = one_line_error(shop.ctl("agent", "set", "dup", "--uid", str(UID_A)), "set back")
    assert "'billing-mcp'" in line, line


# ---- agents edited in place ----------------------------------------------------

def test_agent_set_moves_a_binding_and_keeps_its_grants(shop, mount, cat_as):
    v = shop.values[-1].decode()
    assert cat_as(UID_A, mount.p("stripe/test_key")) == (0, v, "")
    p = shop.ctl_ok("agent", "set", "billing-mcp", "--uid", str(UID_B))
    assert "grants kept" in p.stdout, p
    assert cat_as(UID_B, mount.p("stripe/test_key")) == (0, v, "")
    assert cat_as(UID_A, mount.p("stripe/test_key"))[0] != 0
    assert [g["secret"] for g in shop.ctl_json("grants", "--agent", "billing-mcp")] == ["stripe/test_key"]
    row = [r for r in admin_rows(shop) if r["event"] == "agent.set"][-1]
    assert f"before: project=shop uid={UID_A}" in row["reason"] and f"after: project=shop uid={UID_B}" in row["reason"], row
    # the same validation as add; nothing changes on a refusal
    before = vault_snapshot(shop)
    one_line_error(shop.ctl("agent", "set", "billing-mcp", "--cgroup", "relative"), "relative cgroup")
    one_line_error(shop.ctl("agent", "set", "billing-mcp", "--exe", "/nonexistent/x"), "missing exe")
    one_line_error(shop.ctl("agent", "set", "billing-mcp", "--project", "nope"), "missing project")
    one_line_error(shop.ctl("agent", "set", "billing-mcp"), "nothing to change", rcs=(2,))
    one_line_error(shop.ctl("agent", "set", "billing-mcp", "--lsm", "x", "--no-lsm"), "contradiction", rcs=(2,))
    one_line_error(shop.ctl("agent", "set", "ghost", "--uid", "5"), "ghost")
    assert vault_snapshot(shop) == before
    # labels are added and removed
    shop.ctl_ok("agent", "set", "billing-mcp", "--exe", "/usr/bin/cat")
    a = shop.ctl_json("agent", "list")[0]
    assert (a["uid"], a["exe"]) == (UID_B, "/usr/bin/cat"), a
    assert cat_as(UID_B, mount.p("stripe/test_key")) == (0, v, "")  # cat is /usr/bin/cat
    shop.ctl_ok("agent", "set", "billing-mcp", "--no-exe")
    assert shop.ctl_json("agent", "list")[0]["exe"] is None


# ---- versions ------------------------------------------------------------------

def ciphertexts(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {v: ct for v, ct in con.execute(
            "SELECT v.version, v.ct FROM secret_versions v JOIN secrets s ON s.id = v.secret_id WHERE s.key = 'rot'")}
    finally:
        con.close()


def test_keep_versions_rollback_and_rm(vault, mount_factory, cat_as, workdir):
    ini = it.write_ini(os.path.join(vault.dir, "keep3.ini"), {"vault": {"keep_versions": "3"}})
    keep3 = ["-c", ini]
    vault.agent("alpha", "pa", UID_A)
    values, seen = [], {}
    for i in range(5):
        v = it.new_value().encode()
        vault.values.append(v)
        values.append(v)
        vault.provider("stripe")
        vault.ctl_ok("secret", "put", "stripe/rot", input=v, extra=keep3)
        seen.update(ciphertexts(vault.db))
    vault.assign("stripe/rot", "pa")
    vault.grant("alpha", "stripe/rot")
    vs = vault.ctl_json("secret", "versions", "stripe/rot")
    assert [x["version"] for x in vs] == [3, 4, 5] and [x["current"] for x in vs] == [False, False, True], vs
    assert all(x["uid"] == os.getuid() for x in vs), vs
    data = b""
    for f in vault.store_files():
        if f.startswith(vault.db):
            with open(f, "rb") as fh:
                data += fh.read()
    for ver in (1, 2):
        assert seen[ver] not in data, f"ciphertext of destroyed version {ver} is still in the database file"
    m = mount_factory()
    assert cat_as(UID_A, m.p("stripe/rot")) == (0, values[4].decode(), "")
    # rollback: the next open reads it; audited
    p = vault.ctl_ok("secret", "rollback", "stripe/rot", "3")
    assert "version 3 is current again" in p.stdout, p
    assert cat_as(UID_A, m.p("stripe/rot")) == (0, values[2].decode(), "")
    row = admin_rows(vault)[-1]
    assert (row["event"], row["path"], row["reason"]) == ("secret.rollback", "stripe/rot", "version 5 -> 3"), row
    line = one_line_error(vault.ctl("secret", "rollback", "stripe/rot", "2"), "destroyed version")
    assert "not kept" in line and "3 to 5" in line, line
    # rm: refuses without --yes and says what it would destroy
    before = vault_snapshot(vault)
    line = one_line_error(vault.ctl("secret", "rm", "stripe/rot"), "rm without --yes")
    assert "3 versions, 1 grant, 1 assignment" in line and "--yes" in line, line
    assert vault_snapshot(vault) == before
    p = vault.ctl_ok("secret", "rm", "stripe/rot", "--yes")
    assert "destroyed 3 versions, 1 grant, 1 assignment" in p.stdout, p
    assert cat_as(UID_A, m.p("stripe/rot"))[0] != 0


# ---- expiring grants -----------------------------------------------------------

def test_a_ttl_grant_expires_with_nothing_running(vault, mount, cat_as):
    vault.agent("alpha", "pa", UID_A)
    v = vault.put("stripe/short", it.new_value())
    vault.assign("stripe/short", "pa")
    vault.ctl_ok("grant", "alpha", "stripe/short", "--ttl", "2s")
    g = vault.ctl_json("grants")[0]
    assert g["effective"] is True and g["expires"] and g["expired"] is False, g
    assert cat_as(UID_A, mount.p("stripe/short")) == (0, v.decode(), "")
    time.sleep(3)
    rc, out, err = cat_as(UID_A, mount.p("stripe/short"))
    assert rc != 0 and out == "" and it.ENOENT_TEXT in err, (rc, out, err)
    g = vault.ctl_json("grants")[0]
    assert g["effective"] is False and g["expired"] is True, g
    j = vault.explain("alpha", "stripe/short")
    assert j["rule"] == "grant-expired" and j["reason"].startswith("grant expired at "), j
    # granting again without an expiry renews it
    vault.ctl_ok("grant", "alpha", "stripe/short")
    assert cat_as(UID_A, mount.p("stripe/short")) == (0, v.decode(), "")


def test_bad_expiries_are_refused(shop):
    before = shop.snapshot()
    line = one_line_error(shop.ctl("grant", "billing-mcp", "stripe/test_key", "--until", "2001-01-01"), "past")
    assert "in the past" in line
    for argv in (["--ttl", "soon"], ["--ttl", "0s"], ["--ttl", "5y"], ["--until", "yesterday"],
                 ["--ttl", "1h", "--until", "2999-01-01"]):
        one_line_error(shop.ctl("grant", "billing-mcp", "stripe/test_key", *argv), " ".join(argv), rcs=(2,))
    assert shop.snapshot() == before


# ---- backup and restore --------------------------------------------------------

READ_LOOP = r"""
import sys
path, n = sys.argv[1], int(sys.argv[2])
want = open(path, "rb").read()
for _ in range(n):
    with open(path, "rb") as f:
        if f.read() != want:
            sys.exit("changed")
print("ok")
"""


def test_backup_while_serving_and_restore(shop, mount_factory, cat_as, procs, workdir):
    v = shop.values[-1].decode()
    m = mount_factory()
    readers = [procs.add(subprocess.Popen(it.uid_argv(UID_A, [it.PYTHON, "-I", "-c", READ_LOOP,
                                                              m.p("stripe/test_key"), "300"]),
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=it.READER_ENV,
                                          cwd="/")) for _ in range(4)]
    bk = os.path.join(workdir, "backup")
    p = shop.ctl_ok("backup", bk)
    assert "master key" in p.stdout
    for r in readers:
        out, err = r.communicate(timeout=120)
        assert r.returncode == 0 and out == b"ok\n", (out, err)
    files = sorted(os.listdir(bk))
    assert files == ["scopehold-audit.db", "scopehold.db"], files
    for f in files:
        assert it.file_mode(os.path.join(bk, f)) == 0o600
    bdb = os.path.join(bk, "scopehold.db")
    assert "intact" in shop.ctl_ok("audit", "verify", db=bdb).stdout
    assert any(r["event"] == "backup" for r in shop.ctl_json("audit", "list", db=bdb))
    # the backup opens with the same key: a mount of it serves the value
    mb = mount_factory(db=bdb)
    assert cat_as(UID_A, mb.p("stripe/test_key")) == (0, v, "")
    mb.close()
    # change the live store, then restore
    shop.revoke("billing-mcp", "stripe/test_key")
    shop.put("stripe/test_key", it.new_value())
    before = vault_snapshot(shop)
    line = one_line_error(shop.ctl("restore", bk), "restore without --yes")
    assert "--yes" in line
    assert vault_snapshot(shop) == before
    m.close()  # scopeholdfs stopped
    shop.ctl_ok("restore", bk, "--yes")
    assert "intact" in shop.ctl_ok("audit", "verify").stdout
    assert shop.ctl_json("audit", "list")[-1]["event"] == "restore"
    m2 = mount_factory()
    assert cat_as(UID_A, m2.p("stripe/test_key")) == (0, v, "")
