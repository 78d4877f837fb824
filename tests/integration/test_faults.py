"""test_faults.py - the fault table of issue 11 item 1 that test_cli.py and
test_stores.py do not already cover: a key file that is empty, 31 or 33
bytes, another vault's key or a symbolic link; a database that is missing
or a symbolic link; an audit store locked by another writer past the busy
timeout under a running daemon; both stores on a full disk; both stores on
a read-only filesystem. Each gives one line naming the file; scopeholdctl
exits 1, scopeholdfs refuses to start or its opens fail closed (EIO); no
file is changed (bytes compared before and after) and nothing is made
anew. Every mount made here (tmpfs, bind) is removed at teardown, also on
failure. And scopeholdctl SIGKILLed (tests/crash/killat.c) at every
rename, link, unlink and fsync of a put, a grant and an import: each store
is in its before or after state, passes integrity_check and `audit verify`,
every value reads back, and a change that happened has its audit row.

Covered elsewhere: a missing key file, one readable by others, a wrong key
for scopeholdfs, a database readable by others, random bytes or 0 bytes in
either store, a busy vault for scopeholdctl (test_cli.py, test_stores.py);
the audit store alone on a full disk under a running daemon
(test_audit_trail.py)."""
import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time

import pytest

import scopehold_it as it
from scopehold_it import UID_A
from test_audit_trail import EIO_TEXT, daemon_lines, fill, tmpfs
from test_cli import _refuses_to_start, one_line_error

SECRET = "fault/key"
# Verbs that read, and that write, each store.
READ_VERBS = (["secret", "list"], ["audit", "verify"])
WRITE_VERBS = (["provider", "add", "newprov"], ["secret", "put", "fault/new"], ["grant", "fa", "fault/other"])
# The verbs that load the master key (the others never read it).
KEY_VERBS = (["secret", "put", "fault/new"], ["rekey"], ["rekey", "--data-key"])


@pytest.fixture
def world(vault):
    """Agent fa (uid A, project fp) granted fault/key; fault/other assigned, not granted."""
    vault.agent("fa", "fp", UID_A)
    vault.value = vault.give("fa", "fp", SECRET, it.new_value("sk_fault_"))
    vault.put("fault/other", it.new_value())
    vault.assign("fault/other", "fp")
    vault.ctl_ok("audit", "verify")
    return vault


def files_of(d):
    """name -> bytes of every file in directory d (not the daemons' stderr)."""
    out = {}
    for n in sorted(os.listdir(d)):
        p = os.path.join(d, n)
        if os.path.islink(p):
            out[n] = ("link", os.readlink(p))
        elif os.path.isfile(p) and not n.endswith(".stderr"):
            with open(p, "rb") as f:
                out[n] = f.read()
    return out


def refused_everywhere(v, build, workdir, names, *, db=None, key=None, verbs=READ_VERBS + WRITE_VERBS):
    """Every verb and scopeholdfs refuse with one line naming the file (the
    first of names, or for a verb that does not open it, another); the files
    of the vault's directory are the same bytes after."""
    name = names[0]
    before = files_of(v.dir)
    for argv in verbs:
        value = it.new_value() if argv[:2] == ["secret", "put"] else None
        line = one_line_error(v.ctl(*argv, db=db, key=key, input=value), f"{name}: {argv}", rcs=(1,))
        assert any(n in line for n in names), f"{argv}: the line does not name {name}: {line}"
    line = _refuses_to_start(build, v, workdir, db=db, key=key)
    assert name in line, f"scopeholdfs: the line does not name {name}: {line}"
    assert files_of(v.dir) == before, "a refused command changed a file"


def write_new(path, data, mode=0o400):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    os.write(fd, data)
    os.close(fd)


# ---- key file -----------------------------------------------------------------

@pytest.mark.parametrize("kind", ["empty", "31 bytes", "33 bytes", "another vault's", "symlink"])
def test_a_bad_key_file_is_refused_and_left_as_it_was(kind, privileged, build, world, workdir):
    key = os.path.join(world.dir, "bad.key")
    if kind == "empty":
        write_new(key, b"")
    elif kind == "31 bytes":
        write_new(key, os.urandom(31))
    elif kind == "33 bytes":
        write_new(key, open(world.key, "rb").read() + b"\n")   # the right key, one byte too many
    elif kind == "another vault's":
        other = it.make_dir(workdir, "other-", 0o700)
        world.ctl_ok("init", db=os.path.join(other, "scopehold.db"), key=os.path.join(other, "master.key"))
        shutil.copy2(os.path.join(other, "master.key"), key)
    else:
        os.symlink(world.key, key)                              # even to the right key
    refused_everywhere(world, build, workdir, [key], key=key, verbs=KEY_VERBS)
    # the real key still opens everything
    world.ctl_ok("secret", "put", "fault/new", input=it.new_value())
    world.ctl_ok("audit", "verify")


# ---- database -----------------------------------------------------------------

def test_a_missing_database_is_refused_by_every_verb_and_not_created(privileged, build, world, workdir):
    missing = os.path.join(world.dir, "no-such.db")
    # audit verify opens only the audit store beside it, missing as well
    refused_everywhere(world, build, workdir, [missing, os.path.join(world.dir, "no-such-audit.db")], db=missing)
    assert not os.path.exists(missing) and not os.path.exists(missing + "-wal")
    assert not os.path.exists(os.path.join(world.dir, "no-such-audit.db"))


def test_a_database_that_is_a_symlink_is_refused(privileged, build, world, workdir):
    link = os.path.join(world.dir, "link.db")
    os.symlink(world.db, link)
    shutil.copy2(world.audit_db, os.path.join(world.dir, "link-audit.db"))  # its audit store is there
    # audit verify opens only the audit store, a regular file: not in the list
    refused_everywhere(world, build, workdir, [link], db=link, verbs=(["secret", "list"],) + WRITE_VERBS)


# ---- locked audit store under a running daemon ----------------------------------

@pytest.mark.slow
def test_audit_store_locked_past_the_busy_timeout_fails_opens_closed_then_recovers(world, mount_factory,
                                                                                    read_as):
    m = mount_factory()
    path = m.p(SECRET)
    assert read_as(UID_A, path) == (0, world.value, "")
    rows = len(it.granted_opens(world.audit_rows(), agent="fa"))
    con = sqlite3.connect(world.audit_db, isolation_level=None, timeout=1)
    try:
        con.execute("BEGIN EXCLUSIVE")
        t0 = time.monotonic()
        rc, out, err = read_as(UID_A, path, timeout=60)
        took = time.monotonic() - t0
    finally:
        con.execute("ROLLBACK")
        con.close()
    assert rc != 0 and out == b"" and EIO_TEXT in err, (rc, out, err)
    assert took >= 4, f"the open gave up after {took:.1f} s, before the busy timeout"
    assert m.proc.poll() is None, "the daemon keeps running"
    why = daemon_lines(m, "cannot write audit rows")
    assert len(why) == 1 and "locked" in why[0], m.stderr()
    # the lock is gone: the next open reads, and the trail is whole
    assert read_as(UID_A, path) == (0, world.value, "")
    assert len(it.granted_opens(world.audit_rows(), agent="fa")) == rows + 1
    world.ctl_ok("audit", "verify")


# ---- full disk -------------------------------------------------------------------

def moved_to(v, d):
    """Move the vault's files into directory d and point v there."""
    for f in v.store_files() + [v.key]:
        shutil.copy2(f, d)
        os.unlink(f)
    v.dir = d
    v.db, v.audit_db, v.key = (os.path.join(d, n) for n in ("scopehold.db", "scopehold-audit.db", "master.key"))


def integrity_ok(path):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        con.close()


def test_full_disk_refuses_admin_writes_keeps_the_stores_and_recovers(world, workdir, mount_factory, read_as):
    with tmpfs(workdir, 2 << 20) as small:
        moved_to(world, small)
        world.ctl_ok("audit", "verify")
        before = world.snapshot()
        filler = fill(small)
        try:
            for argv in WRITE_VERBS:
                value = it.new_value() if argv[:2] == ["secret", "put"] else None
                p = world.ctl(*argv, input=value)
                line = one_line_error(p, f"full disk: {argv}", rcs=(1,))
                assert "full" in line.lower() and small in line, f"{argv}: the line says why and where: {line}"
            # nothing committed, nothing broken; reading still works
            assert world.snapshot() == before
            assert integrity_ok(world.db) and integrity_ok(world.audit_db)
            world.ctl_ok("secret", "list")
            # a daemon on the full disk: refuses to start, or starts and
            # fails its requests closed with one line naming the store
            m = None
            try:
                m = mount_factory()
            except AssertionError as e:
                assert small in str(e), e
            if m:
                rc, out, err = read_as(UID_A, m.p(SECRET))
                # EIO where the audit row fails; a lookup whose vault
                # connection cannot open answers ENOENT (fs/ops.c)
                assert rc != 0 and out == b"" and (EIO_TEXT in err or it.ENOENT_TEXT in err), (rc, out, err)
                why = [line for line in m.stderr().splitlines() if small in line and "serving" not in line]
                assert len(why) == 1 and "No space left" in why[0], m.stderr()
        finally:
            os.unlink(filler)
        if m:
            # freeing space: the same daemon serves again
            assert read_as(UID_A, m.p(SECRET)) == (0, world.value, "")
            assert m.close() == []
        for argv in WRITE_VERBS:
            value = it.new_value() if argv[:2] == ["secret", "put"] else None
            world.ctl_ok(*argv, input=value)
        world.ctl_ok("audit", "verify")
        m = mount_factory()
        assert read_as(UID_A, m.p(SECRET)) == (0, world.value, "")
        assert m.close() == []
        assert integrity_ok(world.db) and integrity_ok(world.audit_db)


# ---- read-only filesystem -----------------------------------------------------------

@contextlib.contextmanager
def read_only_view(parent, source):
    """source bind-mounted read-only on a fresh directory in parent;
    unmounted and removed on exit."""
    d = it.make_dir(parent, "ro-", 0o700)
    p = subprocess.run(["mount", "--bind", source, d], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        os.rmdir(d)
        pytest.skip(f"cannot bind-mount here: {p.stderr.strip()}")
    try:
        p = subprocess.run(["mount", "-o", "remount,ro,bind", d], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, f"remount,ro: {p.stderr}"
        yield d
    finally:
        for argv in (["umount", d], ["umount", "-l", d]):
            if d not in [mp for mp, _ in it.mounts()]:
                break
            subprocess.run(argv, capture_output=True, timeout=30)
        os.rmdir(d)


def test_read_only_filesystem_refuses_writes_and_changes_nothing(world, workdir, build, mount_factory, read_as):
    # the stores as a daemon and scopeholdctl left them: closed, WAL checkpointed
    before = files_of(world.dir)
    with read_only_view(workdir, world.dir) as ro:
        db, key = os.path.join(ro, "scopehold.db"), os.path.join(ro, "master.key")
        for argv in WRITE_VERBS:
            value = it.new_value() if argv[:2] == ["secret", "put"] else None
            line = one_line_error(world.ctl(*argv, db=db, key=key, input=value), f"read-only: {argv}", rcs=(1,))
            assert ro in line and "Read-only file system" in line, f"{argv}: the line says where and why: {line}"
        m = None
        try:
            m = mount_factory(db=db, key=key)
        except AssertionError as e:
            assert ro in str(e) and len([x for x in str(e).splitlines() if "scopeholdfs" in x]) >= 1, e
        if m:
            rc, out, err = read_as(UID_A, m.p(SECRET))
            assert rc != 0 and out == b"" and EIO_TEXT in err, (rc, out, err)
            assert m.close() == []
    assert files_of(world.dir) == before, "a file changed under the read-only view"
    world.ctl_ok("audit", "verify")


# ---- scopeholdctl killed mid-put, mid-grant, mid-import -------------------------

def store_state(v, d):
    """What the admin commands change, as the stores show it: versions of
    fault/key, the grants, the secrets (name, version), the audit rows
    (event, path, result) and whether each store passes integrity_check."""
    db, key = os.path.join(d, "scopehold.db"), os.path.join(d, "master.key")
    versions = [(r["version"], r["bytes"], r["current"]) for r in v.ctl_json("secret", "versions", SECRET, db=db, key=key)]
    grants = sorted((g["agent"], g["secret"], g["effective"]) for g in v.ctl_json("grants", db=db, key=key))
    listed = sorted((s["secret"], s["version"]) for s in v.ctl_json("secret", "list", db=db, key=key))
    rows = [(r["event"], r["path"], r["result"]) for r in v.ctl_json("audit", "list", db=db, key=key)]
    return {"versions": versions, "grants": grants, "secrets": listed, "audit": rows}


KILLED_OPS = {
    # name: (argv, stdin or None); fault/key and fault/other exist, fa has fault/key
    "put": (["secret", "put", SECRET], "new-value"),
    "grant": (["grant", "fa", "fault/other"], None),
    "import": (["secret", "import", "--from-dir", "IMPORT", "--assign", "fp", "--create-providers"], None),
}


@pytest.mark.parametrize("op", list(KILLED_OPS))
def test_scopeholdctl_killed_at_every_step_leaves_before_or_after(op, build, world, workdir, mount_factory, read_as):
    from test_rekey import kill_env, read_all, tools
    shim, readall = tools(build)
    argv, stdin = KILLED_OPS[op]
    src = it.make_dir(workdir, "import-", 0o700)
    imported = {f"fimp{p}/k{k}": it.new_value("sk_imp_").encode() for p in range(2) for k in range(3)}
    world.values.extend(imported.values())
    for pk, val in imported.items():
        os.makedirs(os.path.join(src, pk.split("/")[0]), exist_ok=True)
        write_new(os.path.join(src, pk), val, 0o600)
    argv = [src if a == "IMPORT" else a for a in argv]
    new_value = it.new_value("sk_new_").encode()
    world.values.append(new_value)
    pristine = os.path.join(workdir, "pristine")
    shutil.copytree(world.dir, pristine)
    before_values = {SECRET: world.value}
    after_values = dict(before_values)
    if op == "put":
        after_values[SECRET] = new_value
    if op == "import":
        after_values.update(imported)

    work = os.path.join(workdir, "work")

    def run(n):
        it.rm_tree(work)
        shutil.copytree(pristine, work)
        return world.ctl(*argv, db=os.path.join(work, "scopehold.db"), key=os.path.join(work, "master.key"),
                         input=new_value if stdin else None, env=kill_env(shim, n) if n else None)

    assert run(0).returncode == 0
    after = store_state(world, work)
    before = store_state(world, pristine)
    assert after != before
    counts = {"before": 0, "after": 0, "audited, not done": 0}
    values_at = {}
    for n in range(1, 200):
        p = run(n)
        assert p.returncode in (0, -9), f"step {n}: {op} exited {p.returncode}: {p.stderr}"
        db, key = os.path.join(work, "scopehold.db"), os.path.join(work, "master.key")
        world.ctl_ok("audit", "verify", db=db, key=key)
        for store in (db, os.path.join(work, "scopehold-audit.db")):
            assert integrity_ok(store), f"step {n}: integrity_check of {store} fails"
        got = store_state(world, work)
        vault_part = {k: got[k] for k in ("versions", "grants", "secrets")}
        if vault_part == {k: after[k] for k in vault_part}:
            # a change that happened has its audit row
            assert got["audit"] == after["audit"], f"step {n}: {op} done without its audit row"
            counts["after"] += 1
            values = after_values
        else:
            assert vault_part == {k: before[k] for k in vault_part}, f"step {n}: {op} left a half state: {got}"
            # the audit store: before, or with the row of the change that the kill stopped
            assert got["audit"] in (before["audit"], after["audit"]), f"step {n}: audit {got['audit']}"
            counts["before" if got["audit"] == before["audit"] else "audited, not done"] += 1
            values = before_values
        ok, msg = read_all(readall, db, key, values)
        assert ok, f"step {n}: {msg}"
        values_at[n] = values
        if p.returncode == 0:
            break
    else:
        raise AssertionError(f"{op} never completed")
    print(f"{op}: completed at step {n}; killed states: {counts}")
    assert n > 3, f"{op} completed after {n} steps: the shim did not see its syncs"
    # the last killed state serves through the mount
    run(n - 1)
    m = mount_factory(db=os.path.join(work, "scopehold.db"), key=os.path.join(work, "master.key"))
    assert read_as(UID_A, m.p(SECRET))[:2] == (0, values_at[n - 1][SECRET])
    assert m.close() == []


# ---- the daemon SIGKILLed in a loop (quick mode of tests/stress/kill_loop.py) --------

def test_kill_loop_quick(privileged, build, vault, workdir, procs):
    """10 SIGKILLs of the daemon under 8 readers and an admin writer; each
    restart finds both stores intact, the trail verifying, every successful
    open's row and every committed value (scripts/stress runs 50 and more)."""
    sys.path.insert(0, os.path.join(it.REPO, "tests", "stress"))
    import kill_loop
    mp = it.make_dir(workdir, "mnt-", 0o755)
    kills, lost, extra = kill_loop.kill_loop(build, vault, mp, procs, 10)
    print(f"kill-loop: {kills} kills, {lost} lost rows, {extra} rows of opens cut by the kill, integrity ok")
    assert (kills, lost) == (10, 0)
