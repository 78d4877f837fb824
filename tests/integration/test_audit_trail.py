"""test_audit_trail.py - the audit trail of a mounted filesystem (issue 4):
opens fail closed (EIO, no bytes) while the audit store cannot be written
and resume without a restart once it can; concurrent readers get exactly
one granted row per successful open, also across a SIGKILL of the daemon;
the export is a verifiable hash chain that holds no value; --follow streams
new rows; `audit verify` names an edited or deleted row; denied lookups
are coalesced with counts that add up; admin changes carry the admin's uid
and SUDO_UID."""
import base64
import collections
import contextlib
import errno
import hashlib
import json
import os
import re
import select
import shutil
import signal
import sqlite3
import subprocess
import time
import types

import pytest

import scopehold_it as it
from scopehold_it import UID_A, UID_B

pytestmark = pytest.mark.mounted

SECRET = "stripe/test_key"    # granted to alpha (uid A)
OTHER = "stripe/live_key"     # exists, granted to beta only; alpha sees stripe/ through SECRET
EIO_TEXT = "Input/output error"


@pytest.fixture
def world(vault):
    """alpha (uid A, project pa): stripe/test_key. beta (uid B, project
    pb): stripe/live_key."""
    vault.agent("alpha", "pa", UID_A)
    vault.agent("beta", "pb", UID_B)
    w = types.SimpleNamespace(vault=vault)
    w.value = vault.give("alpha", "pa", SECRET, it.new_value("sk_audit_"))
    w.other = vault.give("beta", "pb", OTHER, it.new_value("sk_live_"))
    return w


# ---- helpers ------------------------------------------------------------------

def audit_rows(vault, *filters, extra=()):
    """`audit list --json FILTERS` (extra: global options such as -c FILE)."""
    rows = vault.ctl_json("audit", "list", *filters, extra=extra)
    assert isinstance(rows, list), rows
    return rows


def granted_open_rows(vault, agent="alpha", path=SECRET, extra=()):
    """The granted open rows of agent for path, from
    `audit list --json --agent AGENT --result granted`."""
    rows = audit_rows(vault, "--agent", agent, "--result", "granted", extra=extra)
    return [r for r in rows if r.get("event") == "open" and r.get("path") == path]


def last_id(vault, extra=()):
    rows = audit_rows(vault, "--limit", "1", extra=extra)
    return rows[-1]["id"] if rows else 0


def verify(vault, extra=()):
    """(exit status, the --json document, stderr) of `audit verify`."""
    p = vault.ctl("--json", "audit", "verify", extra=extra)
    doc = json.loads(p.stdout) if p.stdout.strip() else None
    return p.returncode, doc, p.stderr


def assert_intact(vault, extra=()):
    rc, doc, err = verify(vault, extra)
    assert rc == 0 and doc["intact"] is True, f"audit verify exited {rc}: {err} {doc}"
    p = vault.ctl("audit", "verify", extra=extra)
    assert p.returncode == 0 and "intact" in p.stdout, (p.returncode, p.stdout, p.stderr)
    return doc


def broken_at(vault, extra=()):
    """The row id `audit verify` names (it must exit 1), checked to be the
    same in its one stderr line and in its --json output."""
    rc, doc, err = verify(vault, extra)
    assert rc == 1, f"audit verify exited {rc} on a tampered store: {err} {doc}"
    assert doc["intact"] is False, doc
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"one line on stderr, not: {err!r}"
    m = re.search(r"broken at row (\d+)", lines[0])
    assert m, lines[0]
    assert int(m.group(1)) == doc["bad_id"], (lines[0], doc)
    return doc["bad_id"], lines[0]


def row_hash(prev, r):
    """BLAKE2b-256(prev || encode(id, row)) as acl/audit.h specifies it,
    computed from an exported row: the export must be checkable on its own."""
    h = hashlib.blake2b(digest_size=32)
    h.update(prev)
    h.update(b"scopehold-audit-v1\0")

    def num(v):
        h.update(b"\x01" + (v & (2 ** 64 - 1)).to_bytes(8, "big"))

    def text(v):
        if v is None:
            h.update(b"\x00")
        else:
            b = v.encode("utf-8", "surrogateescape")
            h.update(b"\x02" + len(b).to_bytes(4, "big") + b)

    num(r["id"])
    num(r["time_ns"])
    for k in ("event", "result", "reason", "agent"):
        text(r[k])
    for k in ("uid", "gid", "pid", "tgid", "sudo_uid"):
        num(r[k])
    for k in ("exe", "cgroup", "lsm", "path"):
        text(r[k])
    for k in ("secret_id", "version", "count"):
        num(0 if r[k] is None else r[k])  # null in JSON: 0 in the row
    return h.digest()


def forms(value):
    """How a value could leak: raw, hex, base64, and digests of it."""
    out = {"raw": value, "hex": value.hex().encode(), "HEX": value.hex().upper().encode(),
           "base64": base64.b64encode(value), "base64url": base64.urlsafe_b64encode(value).rstrip(b"=")}
    for name in ("sha256", "sha1", "md5", "blake2b"):
        out[name] = hashlib.new(name, value).hexdigest().encode()
    out["blake2b-256 hex"] = hashlib.blake2b(value, digest_size=32).hexdigest().encode()
    out["blake2b-256 raw"] = hashlib.blake2b(value, digest_size=32).digest()
    return out


def leaks(blob, values):
    if isinstance(blob, str):
        blob = blob.encode("utf-8", "surrogateescape")
    return [(name, v[:12]) for v in values for name, f in forms(v).items() if f in blob]


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


@contextlib.contextmanager
def tmpfs(parent, size):
    """A tmpfs of size bytes mounted on a fresh 0700 directory in parent;
    unmounted (lazily if it is still busy) and removed on exit."""
    d = it.make_dir(parent, "tmpfs-", 0o700)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "scopehold-test-tmpfs", d],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        os.rmdir(d)
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")
    try:
        yield d
    finally:
        for argv in (["umount", d], ["umount", "-l", d]):
            if not it.is_mounted(d, "tmpfs"):
                break
            subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        try:
            os.rmdir(d)
        except OSError:
            pass


def fill(directory):
    """Write a file in directory until its filesystem is full; its path."""
    path = os.path.join(directory, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1):
            block = b"\0" * chunk
            while True:
                try:
                    if os.write(fd, block) < chunk:
                        break
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return path


def read_line(f, deadline):
    """One line from the pipe f (bytes, without the newline) before the
    monotonic deadline, or None (timeout or EOF)."""
    buf = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        r, _, _ = select.select([f], [], [], left)
        if not r:
            return None
        c = os.read(f.fileno(), 1)
        if not c:
            return None
        if c == b"\n":
            return buf
        buf += c


# A reader as the agent's uid: says "ready", waits for a line on stdin, then
# opens path `opens` times, reading each time; prints what it counted.
# stop=1: stop at the first error (the daemon was killed).
READER = r"""
import errno, json, os, sys
path, opens, size, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
sys.stdout.write("ready\n")
sys.stdout.flush()
sys.stdin.readline()
ok = wrong = empty = 0
errors = {}
def failed(where, e):
    k = where + ":" + errno.errorcode.get(e.errno, str(e.errno))
    errors[k] = errors.get(k, 0) + 1
for _ in range(opens):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        failed("open", e)
        if stop:
            break
        continue
    try:
        data = os.read(fd, size + 1)
    except OSError as e:
        failed("read", e)
        data = None
    try:
        os.close(fd)
    except OSError:
        pass
    if data:
        ok += 1
        wrong += len(data) != size
    elif data is None and stop:
        break
    else:
        empty += data is not None
print(json.dumps({"pid": os.getpid(), "ok": ok, "wrong": wrong, "empty": empty, "errors": errors}))
"""


def start_readers(procs, n, path, opens, size, stop):
    """n READER processes as uid A, each ready and waiting for go()."""
    ps = []
    for _ in range(n):
        ps.append(procs.add(subprocess.Popen(
            it.uid_argv(UID_A, [it.PYTHON, "-I", "-c", READER, path, str(opens), str(size), "1" if stop else "0"]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=it.READER_ENV, cwd="/")))
    deadline = time.monotonic() + 20
    for p in ps:
        line = read_line(p.stdout, deadline)
        assert line == b"ready", f"reader {p.pid} did not start: {line!r} {p.poll()}"
    return ps


def go(ps):
    for p in ps:
        p.stdin.write(b"go\n")
        p.stdin.flush()


def results(ps, timeout=60):
    out = []
    for p in ps:
        stdout, stderr = p.communicate(timeout=timeout)
        assert p.returncode == 0, f"reader {p.pid} exited {p.returncode}: {stderr.decode(errors='replace')}"
        r = json.loads(stdout)
        assert r["pid"] == p.pid, "the reader is the process setpriv exec'd"
        out.append(r)
    return out


def daemon_lines(m, text):
    return [line for line in m.stderr().splitlines() if text in line]


# ---- 1. fail closed, and recover without a restart -----------------------------

def test_full_audit_store_fails_opens_with_eio_and_recovers_without_restart(world, workdir, mount_factory,
                                                                           read_as, holder):
    vault = world.vault
    con = sqlite3.connect(vault.audit_db, timeout=10, isolation_level=None)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
    finally:
        con.close()
    assert not os.path.exists(vault.audit_db + "-wal")
    with tmpfs(workdir, 4 << 20) as small:
        # The store moves to the small filesystem; [audit] db points there.
        store = os.path.join(small, "audit.db")
        shutil.copyfile(vault.audit_db, store)
        os.chmod(store, 0o600)
        os.unlink(vault.audit_db)
        vault.audit_db = store
        cfg = it.write_ini(os.path.join(vault.dir, "audit-on-tmpfs.ini"), {"audit": {"db": store}})
        extra = ("-c", cfg)
        m = mount_factory(config=cfg)
        try:
            path = m.p(SECRET)
            ok = 0
            for _ in range(3):
                assert read_as(UID_A, path) == (0, world.value, "")
                ok += 1
            assert os.path.exists(store + "-wal"), "the daemon writes the store on the tmpfs"

            for episode in (1, 2):
                filler = fill(small)
                for _ in range(5):
                    rc, out, err = read_as(UID_A, path)
                    assert rc != 0 and out == b"" and EIO_TEXT in err, (rc, out, err)
                h = holder(UID_A, path)
                assert not h.opened and h.errname == "EIO", (h.opened, h.errname)
                h.close()
                assert m.proc.poll() is None, "the daemon keeps running"
                why = daemon_lines(m, "cannot write audit rows")
                assert len(why) == episode, f"one line per fault, not:\n{m.stderr()}"
                assert "full" in why[-1].lower(), f"the line says why: {why[-1]}"
                assert not leaks(m.stderr(), vault.values)

                os.unlink(filler)                                 # the fault is cleared
                for _ in range(3):
                    assert read_as(UID_A, path) == (0, world.value, "")
                    ok += 1
                assert len(daemon_lines(m, "audit store writable again")) == episode, m.stderr()

            # Failed opens left no granted row; every successful one has one.
            assert len(granted_open_rows(vault, extra=extra)) == ok
            assert_intact(vault, extra)
        finally:
            problems = m.close()
        assert not problems, problems


# ---- 2. concurrent readers: one row per successful open ------------------------

@pytest.mark.parametrize("sync", ["normal", "full"])
def test_concurrent_readers_get_exactly_one_granted_row_per_successful_open(world, mount_factory, procs, sync):
    vault = world.vault
    mount = mount_factory(config={"audit": {"sync": sync}})
    assert f"sync={sync}" in mount.stderr()
    assert granted_open_rows(vault) == []
    ps = start_readers(procs, 8, mount.p(SECRET), 500, len(world.value), stop=False)
    t0 = time.monotonic()
    go(ps)
    res = results(ps)
    elapsed = time.monotonic() - t0
    for r in res:
        assert r["errors"] == {} and r["wrong"] == 0 and r["empty"] == 0, r
        assert r["ok"] == 500, r
    rows = granted_open_rows(vault)
    per_reader = collections.Counter(r["tgid"] for r in rows)
    assert per_reader == {r["pid"]: r["ok"] for r in res}, "one granted row per successful open, per reader"
    assert len(rows) == sum(r["ok"] for r in res) == 4000
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert (r["agent"], r["uid"], r["gid"], r["version"], r["count"]) == ("alpha", UID_A, UID_A, 1, 1), r
    doc = assert_intact(vault)
    assert doc["rows"] >= 4000
    print(f"sync={sync}: 4000 audited opens by 8 readers in {elapsed:.2f} s")


# ---- 3. SIGKILL in the middle: no committed-then-replied open loses its row -----

def test_sigkill_in_the_middle_loses_no_row_of_a_successful_open(world, mount, mount_factory, procs, read_as):
    """Three rounds (a lost row shows only when the kill falls between a
    reply and its commit): each mounts, starts 8 readers, kills the daemon
    with SIGKILL while they run, and counts rows against their opens."""
    vault = world.vault
    m = mount
    expected = 0                                         # granted rows so far
    for rnd in range(3):
        if rnd:
            m = mount_factory()                           # a new daemon continues the same chain
        start = last_id(vault)
        ps = start_readers(procs, 8, m.p(SECRET), 10 ** 6, len(world.value), stop=True)
        go(ps)
        deadline = time.monotonic() + 20
        while last_id(vault) < start + 400 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert last_id(vault) >= start + 400, "the readers made no progress"
        assert all(p.poll() is None for p in ps), "the readers must still be running when the daemon dies"
        m.kill(signal.SIGKILL)
        res = results(ps)
        procs.close()
        for r in res:
            assert r["wrong"] == 0 and r["empty"] == 0, r
            # After the kill: ENOTCONN, or ECONNABORTED for a request in flight; never EIO.
            assert {k.split(":")[1] for k in r["errors"]} <= {"ENOTCONN", "ECONNABORTED"}, r
            assert r["errors"], f"reader {r['pid']} ended without seeing the daemon die: {r}"
        total = sum(r["ok"] for r in res)
        assert total >= 400 - 8

        rows = granted_open_rows(vault)                  # just the CLI, on the killed daemon's store
        per_reader = collections.Counter(r["tgid"] for r in rows)
        for r in res:
            got = per_reader.get(r["pid"], 0)
            # Every open that returned data has its row; at most one more
            # row per reader: committed, then the daemon died before the
            # reply to that open or before its read.
            assert r["ok"] <= got <= r["ok"] + 1, f"round {rnd}: reader {r} has {got} granted rows"
        this_round = sum(per_reader.get(r["pid"], 0) for r in res)
        assert len(rows) == expected + this_round, "no rows of other processes"
        expected = len(rows)
        assert_intact(vault)

    m = mount_factory()
    assert read_as(UID_A, m.p(SECRET)) == (0, world.value, "")
    assert len(granted_open_rows(vault)) == expected + 1
    assert_intact(vault)


# ---- 4. export: a checkable chain; no value anywhere ---------------------------

def test_export_is_a_verifiable_jsonl_chain_and_no_value_is_anywhere(world, mount, read_as, cat_as, holder):
    vault = world.vault
    canary = vault.give("alpha", "pa", "openai/api_key", it.new_value("sk_canary_" + os.urandom(4).hex()))
    for _ in range(3):
        assert read_as(UID_A, mount.p(SECRET)) == (0, world.value, "")
    assert read_as(UID_A, mount.p("openai/api_key")) == (0, canary, "")
    held = holder(UID_A, mount.p("openai/api_key"))
    assert held.opened and held.read() == canary
    assert cat_as(UID_B, mount.p(SECRET))[0] != 0          # denied lookup (B sees stripe/)
    assert cat_as(UID_A, mount.p(OTHER))[0] != 0           # denied lookup (A sees stripe/)
    assert cat_as(UID_A, mount.p("github/none"))[0] != 0
    values = vault.values
    assert canary in values and world.value in values

    # The stores while the daemon runs: the WAL of the audit store holds the new rows.
    files = vault.store_files()
    assert vault.audit_db + "-wal" in files and vault.db in files and vault.audit_db in files, files
    for f in files:
        assert not leaks(read_file(f), values), f"value in {f}"

    export = vault.ctl_ok("audit", "export", "--format", "jsonl").stdout
    listed = vault.ctl_ok("--json", "audit", "list").stdout
    assert not leaks(export, values), "value in the export"
    assert not leaks(listed, values), "value in audit list --json"

    lines = export.splitlines()
    assert lines and all(line.strip() for line in lines)
    rows = [json.loads(line) for line in lines]              # valid JSON, one object per line
    prev = bytes(32)
    for r in rows:
        assert isinstance(r, dict)
        assert re.fullmatch(r"[0-9a-f]{64}", r["prev_hash"]) and re.fullmatch(r"[0-9a-f]{64}", r["hash"]), r
        assert bytes.fromhex(r["prev_hash"]) == prev, f"row {r['id']} does not chain to the row before it"
        assert row_hash(prev, r) == bytes.fromhex(r["hash"]), f"row {r['id']}: the hash does not match its fields"
        prev = bytes.fromhex(r["hash"])
    assert [r["id"] for r in rows] == list(range(1, len(rows) + 1))
    assert [r["id"] for r in json.loads(listed)] == [r["id"] for r in rows]
    assert rows[0]["event"] == "init"
    assert len([r for r in rows if r["event"] == "open" and r["result"] == "granted"]) == 5
    denied = [r for r in rows if r["event"] == "lookup" and r["result"] == "denied"]
    assert {(r["agent"], r["path"]) for r in denied} >= {("beta", SECRET), ("alpha", OTHER)}, denied
    last = assert_intact(vault)
    assert last["last_hash"] == rows[-1]["hash"] and last["last_id"] == rows[-1]["id"]

    # The daemon's stderr, and the stores after it stopped.
    held.close()
    problems = mount.close()
    assert not problems, problems
    assert not leaks(mount.final_stderr, values), "value in the daemon's stderr"
    for f in vault.store_files():
        assert not leaks(read_file(f), values), f"value in {f} after unmount"


# ---- 5. audit list --follow -----------------------------------------------------

@pytest.mark.parametrize("fmt", ["json", "text"])
def test_follow_prints_a_row_for_an_open_made_after_it_started(world, mount, procs, fmt):
    vault = world.vault
    total = len(vault.audit_rows())
    initial = min(total, 10) + (1 if fmt == "text" else 0)   # the last 10 rows (and a header)
    argv = [vault.build.ctl, "--db", vault.db, "--key-file", vault.key] + \
        (["--json"] if fmt == "json" else []) + ["audit", "list", "--follow"]
    env = dict(os.environ, LC_ALL="C")
    env.pop("SCOPEHOLD_CONFIG", None)
    f = procs.add(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env=env, cwd=vault.dir))
    deadline = time.monotonic() + 10
    seen = []
    for _ in range(initial):
        line = read_line(f.stdout, deadline)
        assert line is not None, f"--follow printed {seen} and then nothing"
        seen.append(line.decode())
    if fmt == "json":
        ids = [json.loads(s)["id"] for s in seen]
        assert ids == list(range(total - len(ids) + 1, total + 1)), ids

    def open_once():
        c = procs.add(subprocess.Popen(it.uid_argv(UID_A, ["cat", mount.p(SECRET)]), stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=it.READER_ENV, cwd="/"))
        out, err = c.communicate(timeout=20)
        assert (c.returncode, out, err) == (0, world.value, b"")
        return c.pid

    def wait_for_row(pid):
        deadline = time.monotonic() + 10
        while True:
            line = read_line(f.stdout, deadline)
            assert line is not None, f"--follow printed no row for the open by pid {pid} (got {seen[initial:]})"
            s = line.decode()
            seen.append(s)
            if fmt == "json":
                r = json.loads(s)
                if r["event"] == "open" and r["tgid"] == pid:
                    assert (r["result"], r["agent"], r["path"], r["uid"]) == ("granted", "alpha", SECRET, UID_A), r
                    return
            else:
                fields = s.split()
                if "open" in fields and str(pid) in fields:
                    assert {"granted", "alpha", SECRET, str(UID_A)} <= set(fields), s
                    return

    for _ in range(2):                      # it keeps streaming
        wait_for_row(open_once())
    if fmt == "json":
        ids = [json.loads(s)["id"] for s in seen]
        assert ids == sorted(set(ids)), f"a row printed twice or out of order: {ids}"
    assert f.poll() is None
    os.kill(f.pid, signal.SIGTERM)
    try:
        f.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail("audit list --follow did not exit within 5 s of SIGTERM")
    err = f.stderr.read().decode(errors="replace")
    assert f.returncode == 0, f"audit list --follow exited {f.returncode} on SIGTERM: {err}"
    assert not it.bad_stderr_lines(err), err


# ---- 6. tampering through the CLI ----------------------------------------------

def test_verify_names_an_edited_and_a_deleted_row(world, mount, read_as):
    vault = world.vault
    for _ in range(4):
        assert read_as(UID_A, mount.p(SECRET)) == (0, world.value, "")
    rows = granted_open_rows(vault)
    assert len(rows) == 4
    assert_intact(vault)
    last = last_id(vault)
    edited, deleted = rows[1]["id"], rows[2]["id"]
    assert 1 < edited < deleted < last

    def sql(statement, *args):
        con = sqlite3.connect(vault.audit_db, timeout=10, isolation_level=None)
        try:
            return con.execute(statement, args).fetchall()
        finally:
            con.close()

    # One field of one row edited: verify names it; put back: intact again.
    sql("UPDATE audit SET uid = 0 WHERE id = ?", edited)
    bad, line = broken_at(vault)
    assert bad == edited and "edited" in line, line
    sql("UPDATE audit SET uid = ? WHERE id = ?", UID_A, edited)
    assert_intact(vault)
    sql("UPDATE audit SET reason = 'looks harmless' WHERE id = ?", edited)
    assert broken_at(vault)[0] == edited
    sql("UPDATE audit SET reason = NULL WHERE id = ?", edited)
    assert_intact(vault)

    # A row deleted from the middle: verify names its id; put back: intact.
    saved = sql("SELECT * FROM audit WHERE id = ?", deleted)
    assert len(saved) == 1
    sql("DELETE FROM audit WHERE id = ?", deleted)
    bad, line = broken_at(vault)
    assert bad == deleted and "deleted" in line, line
    sql(f"INSERT INTO audit VALUES ({', '.join('?' * len(saved[0]))})", *saved[0])
    assert_intact(vault)

    # The last row deleted: the hole is still seen, also after the daemon
    # appended another row behind it (the line names the missing id).
    sql("DELETE FROM audit WHERE id = ?", last)
    bad, line = broken_at(vault)
    assert bad == last and "deleted" in line, line
    assert read_as(UID_A, mount.p(SECRET)) == (0, world.value, "")
    assert last_id(vault) == last + 1, "ids are never reused"
    bad, line = broken_at(vault)
    assert re.search(rf"\b{last}\b", line), line


# ---- 7. denied lookups are coalesced -------------------------------------------

# 200 stats of one path by one process, started just after a second begins
# so that the loop stays within that second.
PROBE = r"""
import json, os, sys, time
path, n = sys.argv[1], int(sys.argv[2])
t = time.time()
time.sleep(1.0 - (t - int(t)) + 0.01)
start = time.time()
enoent = 0
for _ in range(n):
    try:
        os.stat(path)
    except FileNotFoundError:
        enoent += 1
end = time.time()
print(json.dumps({"pid": os.getpid(), "enoent": enoent, "start": start, "end": end}))
"""


def test_denied_lookups_from_one_process_are_coalesced_with_counts(world, mount, as_uid):
    vault = world.vault
    for _ in range(3):
        p = as_uid(UID_A, [it.PYTHON, "-I", "-c", PROBE, mount.p(OTHER), "200"])
        assert p.returncode == 0, p.stderr
        r = json.loads(p.stdout)
        assert r["enoent"] == 200, r
        if int(r["start"]) == int(r["end"]):
            break
    else:
        pytest.fail(f"200 stats never fit in one second: {r}")

    def mine():
        rows = vault.audit_rows("--agent", "alpha", "--result", "denied")
        return [x for x in rows if x["tgid"] == r["pid"]]

    # The repeats counted after the first row was taken are written once
    # their second has passed.
    deadline = time.monotonic() + 5
    while True:
        rows = mine()
        if sum(x["count"] for x in rows) >= 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    time.sleep(1.2)                        # nothing more comes later
    rows = mine()
    assert all((x["event"], x["path"], x["reason"], x["uid"]) == ("lookup", OTHER, "not granted", UID_A)
               for x in rows), rows
    assert 1 <= len(rows) <= 2, f"{len(rows)} rows for one process and path within a second: {rows}"
    # Each stat is one LOOKUP that reaches the daemon (entry and negative
    # timeouts 0): the counts add up to the 200 lookups.
    assert sum(x["count"] for x in rows) == 200, [x["count"] for x in rows]
    assert all(int(x["time_ns"]) // 10 ** 9 == int(r["start"]) for x in rows), (rows, r)
    # The provider directory is visible to alpha: its lookups are not denied.
    assert not [x for x in vault.audit_rows("--agent", "alpha") if x["tgid"] == r["pid"] and x["path"] != OTHER]
    assert_intact(vault)


# ---- 8. admin rows ----------------------------------------------------------------

def test_admin_changes_leave_rows_with_the_admin_uid_and_sudo_uid(world):
    vault = world.vault
    start = last_id(vault)
    plain = {"SUDO_UID": ""}                            # not run through sudo
    value = it.new_value().encode()
    vault.values.append(value)
    vault.ctl_ok("secret", "put", "stripe/rotating", input=value, env=plain)
    vault.ctl_ok("grant", "alpha", "stripe/rotating", env=plain)
    vault.ctl_ok("revoke", "alpha", "stripe/rotating", env=plain)
    vault.ctl_ok("agent", "disable", "beta", env={"SUDO_UID": "1234"})
    rows = [r for r in vault.audit_rows() if r["id"] > start]
    got = [(r["event"], r["result"], r["path"], r["sudo_uid"]) for r in rows]
    assert got == [("secret.put", "ok", "stripe/rotating", -1),
                   ("grant", "ok", "stripe/rotating -> alpha", -1),
                   ("revoke", "ok", "stripe/rotating -> alpha", -1),
                   ("agent.disable", "ok", "beta", 1234)], got
    for r in rows:
        assert (r["uid"], r["gid"]) == (os.getuid(), os.getgid()), r
        assert r["pid"] > 0 and r["tgid"] == r["pid"], r
        assert r["agent"] is None and r["reason"] is None, r
    # --secret finds the changes of one secret, "P/K -> AGENT" included.
    events = [r["event"] for r in vault.audit_rows("--secret", "stripe/rotating")]
    assert events == ["secret.put", "grant", "revoke"], events
    assert_intact(vault)
