"""test_view.py - the mounted per-agent view (issue 2): who sees what, that
everything else is ENOENT, that changes apply at the next open without a
restart, that the filesystem is read-only, that interleaved readers never
get each other's bytes, that every successful open is audited once, and
what a dead daemon looks like."""
import json
import time
import types

import pytest

import scopehold_it as it
from scopehold_it import ENOENT_TEXT, ENOTCONN_TEXT, UID_A, UID_B, UID_C

pytestmark = pytest.mark.mounted


@pytest.fixture
def world(vault):
    """alpha (uid A, project pa): stripe/test_key, openai/api_key.
    beta (uid B, project pb): stripe/live_key, github/token.
    uid C has no agent."""
    vault.agent("alpha", "pa", UID_A)
    vault.agent("beta", "pb", UID_B)
    w = types.SimpleNamespace(vault=vault)
    w.a = {pk: vault.give("alpha", "pa", pk) for pk in ("stripe/test_key", "openai/api_key")}
    w.b = {pk: vault.give("beta", "pb", pk, it.new_value("sk_live_")) for pk in ("stripe/live_key", "github/token")}
    return w


def test_two_uids_see_their_own_listings_and_values(world, mount, ls_as, cat_as, read_as, stat_as):
    assert ls_as(UID_A, mount.path) == (0, ["openai", "stripe"], "")
    assert ls_as(UID_B, mount.path) == (0, ["github", "stripe"], "")
    assert ls_as(UID_A, mount.p("stripe")) == (0, ["test_key"], "")
    assert ls_as(UID_B, mount.p("stripe")) == (0, ["live_key"], "")
    assert ls_as(UID_A, mount.p("openai")) == (0, ["api_key"], "")
    assert ls_as(UID_B, mount.p("github")) == (0, ["token"], "")

    for uid, mine, theirs in ((UID_A, world.a, world.b), (UID_B, world.b, world.a)):
        for pk, value in mine.items():
            rc, out, err = read_as(uid, mount.p(pk))
            assert (rc, out, err) == (0, value, ""), f"uid {uid} reading its own {pk}"
            rc, st, err = stat_as(uid, mount.p(pk))
            assert rc == 0, err
            assert st == {"type": "regular file", "mode": 0o400, "uid": uid, "gid": uid, "size": len(value)}
        for pk, value in theirs.items():
            rc, out, err = cat_as(uid, mount.p(pk))
            assert rc != 0 and out == "" and ENOENT_TEXT in err, f"uid {uid} reading another agent's {pk}"
    for d in ("stripe", ""):
        rc, st, err = stat_as(UID_A, mount.p(d))
        assert (rc, st["type"], st["mode"], st["uid"], st["gid"]) == (0, "directory", 0o500, UID_A, UID_A)


def test_third_uid_sees_an_empty_root(world, mount, ls_as, cat_as):
    assert ls_as(UID_C, mount.path) == (0, [], "")
    for pk in list(world.a) + list(world.b):
        rc, out, err = cat_as(UID_C, mount.p(pk))
        assert rc != 0 and out == "" and ENOENT_TEXT in err
    for d in ("stripe", "github", "openai"):
        rc, names, err = ls_as(UID_C, mount.p(d))
        assert rc != 0 and ENOENT_TEXT in err


# Try stat, listdir and open on each path; report the errno name or "ok".
PROBE = r"""
import errno, json, os, sys
out = {}
for p in sys.argv[1:]:
    r = {}
    for name, fn in (("stat", os.stat), ("lstat", os.lstat), ("listdir", os.listdir),
                     ("open", lambda q: os.close(os.open(q, os.O_RDONLY)))):
        try:
            fn(p); r[name] = "ok"
        except OSError as e:
            r[name] = errno.errorcode.get(e.errno, str(e.errno))
    out[p] = r
print(json.dumps(out))
"""


def test_existing_but_not_granted_is_enoent_like_missing(world, mount, ls_as, cat_as, stat_as, py_as):
    hidden = [
        "stripe/live_key",   # exists; the provider is visible to A through another key
        "github/token",      # exists; the provider is invisible to A
        "github",            # a provider A has nothing in
    ]
    missing = ["stripe/no_such_key", "no_such_provider/key", "no_such_provider"]
    for path in hidden + missing:
        full = mount.p(path)
        for what, (rc, _, err) in (("stat", stat_as(UID_A, full)), ("ls", ls_as(UID_A, full)),
                                   ("cat", cat_as(UID_A, full))):
            assert rc != 0, f"{what} {path} succeeded for uid A"
            assert ENOENT_TEXT in err, f"{what} {path}: {err!r}"
    # The messages are the same for a hidden and a missing name.
    for what, fn in (("stat", stat_as), ("ls", ls_as), ("cat", cat_as)):
        e_hidden = fn(UID_A, mount.p("stripe/live_key"))[2].replace(mount.p("stripe/live_key"), "PATH")
        e_missing = fn(UID_A, mount.p("stripe/no_such_key"))[2].replace(mount.p("stripe/no_such_key"), "PATH")
        assert e_hidden == e_missing, what
    p = py_as(UID_A, PROBE, *[mount.p(x) for x in hidden + missing])
    assert p.returncode == 0, p.stderr
    for path, r in json.loads(p.stdout).items():
        assert set(r.values()) == {"ENOENT"}, (path, r)


def test_revoke_applies_at_next_open_without_restart(world, mount, read_as, cat_as, ls_as, holder):
    v = world.a["stripe/test_key"]
    path = mount.p("stripe/test_key")
    assert read_as(UID_A, path)[1] == v
    held = holder(UID_A, path)
    assert held.opened
    world.vault.revoke("alpha", "stripe/test_key")
    rc, out, err = cat_as(UID_A, path)
    assert rc != 0 and out == "" and ENOENT_TEXT in err
    assert ls_as(UID_A, mount.path)[1] == ["openai"]      # no key left under stripe
    assert not holder(UID_A, path).opened
    assert read_as(UID_A, mount.p("openai/api_key"))[1] == world.a["openai/api_key"]
    world.vault.grant("alpha", "stripe/test_key")
    assert read_as(UID_A, path) == (0, v, "")
    assert ls_as(UID_A, mount.path)[1] == ["openai", "stripe"]
    assert mount.proc.poll() is None, "the daemon must keep running"


def test_rotation_applies_at_next_open_and_open_fds_stay_pinned(world, mount, read_as, stat_as, holder):
    path = mount.p("stripe/test_key")
    v1 = world.a["stripe/test_key"]
    old = holder(UID_A, path)
    assert old.opened
    v2 = world.vault.put("stripe/test_key", it.new_value("sk_rotated_") + "_longer_than_before")
    assert read_as(UID_A, path) == (0, v2, "")
    assert stat_as(UID_A, path)[1]["size"] == len(v2)
    new = holder(UID_A, path)
    assert new.opened
    assert old.read() == v1, "an fd opened before the rotation must keep the old version"
    assert new.read() == v2
    assert old.read() == v1
    v3 = world.vault.put("stripe/test_key", it.new_value("sk_third_"))
    assert new.read() == v2 and old.read() == v1
    assert read_as(UID_A, path) == (0, v3, "")
    versions = world.vault.ctl_json("secret", "versions", "stripe/test_key")
    assert [x["version"] for x in versions] == [1, 2, 3]
    assert mount.proc.poll() is None


def test_grant_without_assignment_gives_nothing(vault, mount, ls_as, cat_as, read_as):
    vault.agent("alpha", "pa", UID_A)
    vault.project("pb")
    g = vault.put("stripe/granted_only", it.new_value())
    vault.grant("alpha", "stripe/granted_only")                  # no assignment
    vault.put("stripe/assigned_only", it.new_value())
    vault.assign("stripe/assigned_only", "pa")                   # no grant
    vault.put("github/other_project", it.new_value())
    vault.assign("github/other_project", "pb")                   # assigned elsewhere
    vault.grant("alpha", "github/other_project")
    assert ls_as(UID_A, mount.path) == (0, [], "")
    for pk in ("stripe/granted_only", "stripe/assigned_only", "github/other_project"):
        rc, out, err = cat_as(UID_A, mount.p(pk))
        assert rc != 0 and ENOENT_TEXT in err, pk
    grants = {x["secret"]: x for x in vault.ctl_json("grants", "--agent", "alpha")}
    assert grants["stripe/granted_only"]["effective"] is False
    # Assigning completes the rule at once; unassigning takes it away again.
    vault.assign("stripe/granted_only", "pa")
    assert ls_as(UID_A, mount.path) == (0, ["stripe"], "")
    assert ls_as(UID_A, mount.p("stripe")) == (0, ["granted_only"], "")
    assert read_as(UID_A, mount.p("stripe/granted_only")) == (0, g, "")
    vault.ctl_ok("secret", "unassign", "stripe/granted_only", "pa")
    assert ls_as(UID_A, mount.path) == (0, [], "")
    assert cat_as(UID_A, mount.p("stripe/granted_only"))[0] != 0


def test_disabled_agent_sees_nothing_and_enable_restores(world, mount, ls_as, cat_as, read_as):
    world.vault.ctl_ok("agent", "disable", "alpha")
    assert ls_as(UID_A, mount.path) == (0, [], "")
    for pk in world.a:
        rc, out, err = cat_as(UID_A, mount.p(pk))
        assert rc != 0 and out == "" and ENOENT_TEXT in err
    assert ls_as(UID_B, mount.path) == (0, ["github", "stripe"], "")   # others unaffected
    world.vault.ctl_ok("agent", "enable", "alpha")
    assert ls_as(UID_A, mount.path) == (0, ["openai", "stripe"], "")
    for pk, v in world.a.items():
        assert read_as(UID_A, mount.p(pk)) == (0, v, "")


def test_secret_rm_hides_it(world, mount, cat_as, ls_as):
    world.vault.ctl_ok("secret", "rm", "openai/api_key", "--yes")
    rc, out, err = cat_as(UID_A, mount.p("openai/api_key"))
    assert rc != 0 and ENOENT_TEXT in err
    assert ls_as(UID_A, mount.path)[1] == ["stripe"]


# Every way to change the tree, as the caller; prints {op: "ok" | errno name}.
MUTATE = r"""
import errno, json, os, sys
mnt, prov, f = sys.argv[1], sys.argv[2], sys.argv[3]
ops = {
    "open O_WRONLY": lambda: os.open(f, os.O_WRONLY),
    "open O_RDWR": lambda: os.open(f, os.O_RDWR),
    "open O_WRONLY|O_APPEND": lambda: os.open(f, os.O_WRONLY | os.O_APPEND),
    "open O_RDONLY|O_TRUNC": lambda: os.open(f, os.O_RDONLY | os.O_TRUNC),
    "open O_WRONLY|O_TRUNC": lambda: os.open(f, os.O_WRONLY | os.O_TRUNC),
    "create in provider": lambda: os.open(os.path.join(prov, "new"), os.O_WRONLY | os.O_CREAT, 0o600),
    "create in root": lambda: os.open(os.path.join(mnt, "new"), os.O_WRONLY | os.O_CREAT, 0o600),
    "create O_EXCL existing": lambda: os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600),
    "mkdir in root": lambda: os.mkdir(os.path.join(mnt, "newdir")),
    "mkdir in provider": lambda: os.mkdir(os.path.join(prov, "newdir")),
    "mknod fifo": lambda: os.mkfifo(os.path.join(prov, "fifo")),
    "unlink": lambda: os.unlink(f),
    "rmdir provider": lambda: os.rmdir(prov),
    "rename file": lambda: os.rename(f, os.path.join(prov, "renamed")),
    "rename provider": lambda: os.rename(prov, os.path.join(mnt, "renamed")),
    "chmod file": lambda: os.chmod(f, 0o644),
    "chmod dir": lambda: os.chmod(prov, 0o755),
    "chown file": lambda: os.chown(f, os.getuid(), os.getgid()),
    "truncate": lambda: os.truncate(f, 0),
    "utime": lambda: os.utime(f, (0, 0)),
    "symlink": lambda: os.symlink("x", os.path.join(prov, "link")),
    "link": lambda: os.link(f, os.path.join(prov, "hardlink")),
    "setxattr": lambda: os.setxattr(f, "user.x", b"1"),
    "removexattr": lambda: os.removexattr(f, "user.x"),
}
out = {}
for name, fn in ops.items():
    try:
        r = fn()
        if isinstance(r, int):
            os.close(r)
        out[name] = "ok"
    except OSError as e:
        out[name] = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps(out))
"""


@pytest.mark.parametrize("uid", [UID_A, 0], ids=["agent", "root"])
def test_read_only(world, mount, as_uid, read_as, ls_as, uid):
    f = mount.p("stripe/test_key")
    p = as_uid(uid, [it.PYTHON, "-I", "-c", MUTATE, mount.path, mount.p("stripe"), f])
    assert p.returncode == 0, p.stderr
    results = json.loads(p.stdout)
    # root sees no agent's files: its attempts on them fail with ENOENT
    allowed = {"EROFS", "EACCES"} | ({"ENOENT"} if uid == 0 else set())
    wrong = {op: r for op, r in results.items() if r not in allowed}
    if wrong.get("create O_EXCL existing") == "EEXIST":   # refused before any change
        del wrong["create O_EXCL existing"]
    assert not wrong, f"operations that did not fail with EROFS/EACCES: {wrong}"
    if uid == 0:
        for op in ("create in root", "mkdir in root"):
            assert results[op] == "EROFS", (op, results[op])
    assert read_as(UID_A, f) == (0, world.a["stripe/test_key"], "")
    assert ls_as(UID_A, mount.p("stripe")) == (0, ["test_key"], "")
    assert ls_as(UID_A, mount.path) == (0, ["openai", "stripe"], "")


def test_interleaving_denied_reader_gets_nothing(world, mount, holder):
    """uid A opens; uid B (not granted) opens the same path; A reads; B reads."""
    path = mount.p("stripe/test_key")
    a = holder(UID_A, path)
    b = holder(UID_B, path)
    assert a.opened
    assert not b.opened and b.errname == "ENOENT"
    assert a.read() == world.a["stripe/test_key"]
    r = b.read_result()                                # B has no descriptor to read
    assert "data" not in r
    c = holder(UID_C, path)
    assert not c.opened and c.errname == "ENOENT"
    assert a.read() == world.a["stripe/test_key"]


def test_interleaving_shared_secret_rotated_between_opens(vault, mount, holder, read_as):
    """Both agents granted one secret: A opens, it is rotated, B opens, A
    reads (old), B reads (new), alternately."""
    vault.agent("alpha", "pa", UID_A)
    vault.agent("beta", "pb", UID_B)
    v1 = vault.put("stripe/shared", it.new_value())
    for project, agent in (("pa", "alpha"), ("pb", "beta")):
        vault.assign("stripe/shared", project)
        vault.grant(agent, "stripe/shared")
    path = mount.p("stripe/shared")
    a = holder(UID_A, path)
    assert a.opened
    v2 = vault.put("stripe/shared", it.new_value("sk_new_"))
    b = holder(UID_B, path)
    assert b.opened
    for _ in range(3):
        assert a.read() == v1
        assert b.read() == v2
    assert a.fstat_size() == len(v2)  # getattr is current; the fd's bytes are pinned
    assert read_as(UID_A, path) == (0, v2, "")
    assert read_as(UID_B, path) == (0, v2, "")


def test_every_successful_open_has_one_audit_row(world, mount, read_as, cat_as, holder):
    expected = {}  # (agent, path) -> successful opens

    def ok(uid, agent, pk, times):
        for _ in range(times):
            rc, out, err = read_as(uid, mount.p(pk))
            assert rc == 0, err
            expected[(agent, pk)] = expected.get((agent, pk), 0) + 1

    ok(UID_A, "alpha", "stripe/test_key", 3)
    ok(UID_A, "alpha", "openai/api_key", 2)
    ok(UID_B, "beta", "stripe/live_key", 4)
    h = holder(UID_B, mount.p("github/token"))
    assert h.opened
    expected[("beta", "github/token")] = 1
    h.read()
    h.read()                                   # reads are not opens
    # failures: not granted, no agent, missing
    for uid, pk in ((UID_A, "stripe/live_key"), (UID_C, "stripe/test_key"), (UID_B, "stripe/nope")):
        assert cat_as(uid, mount.p(pk))[0] != 0
    # The rows are committed before open replies: no waiting here.
    rows = world.vault.audit_rows()
    granted = it.granted_opens(rows)
    got = {}
    for r in granted:
        key = (r.get("agent"), it.audit_field(r, "path", "secret"))
        got[key] = got.get(key, 0) + 1
    assert got == expected, f"granted open rows {got} != successful opens {expected}"
    uid_of = {"alpha": UID_A, "beta": UID_B}
    for r in granted:
        assert r["uid"] == uid_of[r["agent"]]
        assert r["pid"] > 0 and r.get("version") == 1
    assert sum(expected.values()) == len(granted)
    assert not [r for r in granted if r["uid"] == UID_C]
    assert h.read() == world.b["github/token"]


def test_lookup_of_an_existing_ungranted_secret_is_audited_as_denied(world, mount, cat_as):
    assert cat_as(UID_A, mount.p("stripe/live_key"))[0] != 0      # beta's secret, under A's provider
    deadline = time.monotonic() + 5                               # written without waiting
    while True:
        rows = [r for r in world.vault.audit_rows()
                if r.get("result") == "denied" and r.get("path") == "stripe/live_key"]
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert rows, "no denied row for the lookup of stripe/live_key"
    assert rows[0]["agent"] == "alpha" and rows[0]["uid"] == UID_A, rows[0]
    assert not it.granted_opens(world.vault.audit_rows(), path="stripe/live_key")


def test_dead_daemon_gives_enotconn_and_teardown_cleans(world, mount, cat_as, ls_as):
    assert cat_as(UID_A, mount.p("stripe/test_key"))[0] == 0
    mount.kill()                                   # SIGKILL, by pid
    for rc, _, err in (cat_as(UID_A, mount.p("stripe/test_key")), ls_as(UID_A, mount.path)):
        assert rc != 0 and ENOTCONN_TEXT in err, err
    assert it.is_mounted(mount.path), "the dead mount stays until it is unmounted"
    problems = mount.close()
    assert not problems, problems
    assert not it.is_mounted(mount.path, None)


def test_config_file_settings_apply(world, mount_factory, read_as):
    m = mount_factory(config={"audit": {"sync": "full"}})
    assert read_as(UID_A, m.p("stripe/test_key")) == (0, world.a["stripe/test_key"], "")
    assert "sync=full" in m.stderr(), m.stderr()
    assert len(it.granted_opens(world.vault.audit_rows(), path="stripe/test_key")) == 1


def test_mtime_is_the_current_versions_time(world, mount, as_uid):
    """Tools that poll a key file's mtime see a rotation and a rollback."""
    path = mount.p("stripe/test_key")

    def mtime():
        p = as_uid(UID_A, ["stat", "-c", "%y|%z", "--", path])
        assert p.returncode == 0, p.stderr
        m, c = p.stdout.strip().split("|")
        assert m == c, (m, c)   # ctime moves with it
        return m

    first = mtime()
    world.vault.put("stripe/test_key", it.new_value("sk_rotated_"))
    second = mtime()
    assert second > first, (first, second)
    world.vault.ctl_ok("secret", "rollback", "stripe/test_key", "1")
    assert mtime() == first


def test_inode_numbers_show_no_database_ids(world, mount, as_uid):
    """A node id is kind << 56 | a keyed permutation of the ids: two keys
    made one after the other are not one apart, and no id shows."""
    p = as_uid(UID_A, ["stat", "-c", "%i", "--", mount.p("stripe/test_key"), mount.p("openai/api_key")])
    assert p.returncode == 0, p.stderr
    a, b = (int(x) for x in p.stdout.split())
    ids = [s["id"] for s in world.vault.ctl_json("secret", "list") if s.get("id") is not None] or [1, 2]
    for ino in (a, b):
        low = ino & ((1 << 56) - 1)
        assert ino >> 56 == 2, hex(ino)
        assert low & 0xffffffff not in ids and low >> 32 != 1, hex(ino)
    assert abs((a & 0xffffffff) - (b & 0xffffffff)) > 1000, (hex(a), hex(b))
    # stable: the same name and agent, the same number
    p2 = as_uid(UID_A, ["stat", "-c", "%i", "--", mount.p("stripe/test_key")])
    assert int(p2.stdout) == a
