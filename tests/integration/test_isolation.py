"""test_isolation.py - what a caller must not get by unusual means: a
seek to an arbitrary directory offset, a private mmap that would share the
page cache with another agent, a reopen through /proc/self/fd after a
revoke; and the trail of such attempts."""
import os
import subprocess
import time

import scopehold_it as it
from scopehold_it import UID_A, UID_B, UID_C

# getdents64 after lseek to an offset dir_add never produced
SEEK_SRC = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
out = []
for off in (1, 7, 15, 23, 40, 120, 4000):
    os.lseek(fd, off, os.SEEK_SET)
    buf = ctypes.create_string_buffer(8192)
    n = libc.syscall(217, fd, buf, 8192)
    out.append("%d:%d:%s" % (off, n, buf.raw[:max(n, 0)].hex()))
print(" ".join(out))
"""


def test_seek_to_any_directory_offset_leaks_nothing(vault, mount, ls_as):
    vault.agent("alpha", "pa", UID_A)
    vault.give("alpha", "pa", "stripe/k")
    vault.agent("beta", "pb", UID_B)
    vault.give("beta", "pb", "secretprovider" + "x" * 30 + "/k")
    for uid in (UID_A, UID_C):  # an agent, and a caller that is none
        p = it.py_as(uid, SEEK_SRC, mount.path)
        assert p.returncode == 0, p.stderr
        dump = bytes.fromhex("".join(part.split(":", 2)[2] for part in p.stdout.split()))
        assert b"secretprovider" not in dump
        if uid == UID_C:
            assert b"stripe" not in dump
    # the daemon still answers
    rc, out, err = ls_as(UID_A, mount.path)
    assert rc == 0 and "stripe" in out, err


MMAP_SRC = r"""
import mmap, os, sys, time
path, ready, go = sys.argv[1:4]
fd = os.open(path, os.O_RDONLY)
m = mmap.mmap(fd, os.fstat(fd).st_size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
first = bytes(m[:])
open(ready, "w").close()
deadline = time.time() + 20
while not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.02)
m.seek(0)
print(first.hex(), bytes(m[:]).hex())
"""

MMAP_READ_SRC = r"""
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
m = mmap.mmap(fd, os.fstat(fd).st_size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
print(bytes(m[:]).hex())
"""


def test_private_mmap_never_shows_another_agents_pages(vault, mount, workdir, procs):
    vault.agent("alpha", "pa", UID_A)
    vault.agent("beta", "pb", UID_B)
    v1 = vault.give("alpha", "pa", "stripe/shared")
    path = mount.p("stripe", "shared")
    sig = it.make_dir(workdir, "sig-", 0o777)  # the reader (another uid) signals through it
    ready, go = os.path.join(sig, "ready"), os.path.join(sig, "go")
    a = subprocess.Popen(it.uid_argv(UID_A, [it.PYTHON, "-I", "-c", MMAP_SRC, path, ready, go]),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    procs.add(a)
    deadline = time.time() + 20
    while not os.path.exists(ready) and time.time() < deadline and a.poll() is None:
        time.sleep(0.02)
    assert os.path.exists(ready), a.communicate()[1]
    # alpha loses the secret; beta gets it, in a new version of the same length
    vault.assign("stripe/shared", "pb")
    vault.grant("beta", "stripe/shared")
    vault.ctl_ok("revoke", "alpha", "stripe/shared")
    v2 = vault.put("stripe/shared", b"R" * len(v1))
    p = it.py_as(UID_B, MMAP_READ_SRC, path)
    assert p.returncode == 0 and bytes.fromhex(p.stdout.strip()) == v2, p.stderr
    open(go, "w").close()
    out, err = a.communicate(timeout=20)
    first, later = (bytes.fromhex(x) for x in out.decode().split())
    assert first == v1
    assert later != v2, "a revoked agent's mapping showed the version only another agent may read"


REOPEN_SRC = r"""
import os, sys, time
path, ready, go = sys.argv[1:4]
fd = os.open(path, os.O_RDONLY)
open(ready, "w").close()
deadline = time.time() + 20
while not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.02)
try:
    os.open("/proc/self/fd/%d" % fd, os.O_RDONLY)
    print("opened")
except OSError as e:
    print("errno", e.errno)
"""


def test_reopen_after_revoke_is_denied_and_recorded_with_its_path(vault, mount, workdir, procs):
    vault.agent("alpha", "pa", UID_A)
    vault.give("alpha", "pa", "stripe/k")
    sig = it.make_dir(workdir, "sig-", 0o777)
    ready, go = os.path.join(sig, "ready"), os.path.join(sig, "go")
    a = subprocess.Popen(it.uid_argv(UID_A, [it.PYTHON, "-I", "-c", REOPEN_SRC, mount.p("stripe", "k"), ready, go]),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    procs.add(a)
    deadline = time.time() + 20
    while not os.path.exists(ready) and time.time() < deadline and a.poll() is None:
        time.sleep(0.02)
    vault.ctl_ok("revoke", "alpha", "stripe/k")
    open(go, "w").close()
    out, _ = a.communicate(timeout=20)
    assert out.decode().split() == ["errno", "2"]
    rows = vault.ctl_json("audit", "list", "--secret", "stripe/k", "--result", "denied")
    assert any(r["event"] == "open" and r["path"] == "stripe/k" for r in rows), rows


def test_probe_by_a_caller_that_is_no_agent_is_recorded(vault, mount):
    vault.agent("alpha", "pa", UID_A)
    vault.give("alpha", "pa", "stripe/k")
    p = it.py_as(UID_C, "import os, sys\nfor _ in range(50):\n"
                 "    try: os.stat(sys.argv[1])\n    except OSError: pass\n", mount.p("stripe", "k"))
    assert p.returncode == 0, p.stderr
    time.sleep(1.2)  # the coalesced rows are written when their second ends
    rows = [r for r in vault.ctl_json("audit", "list", "--result", "unknown-caller")
            if r["event"] == "lookup" and r["path"] == "stripe" and r["uid"] == UID_C]
    # at most two rows per second the probes touched (the first row, and
    # one counting the repeats after it); 50 stats straddle a second's end
    # now and then, so count per second rather than two in all
    seconds = {r["time_ns"] // 10**9 for r in rows}
    assert len(seconds) <= 3 and 1 <= len(rows) <= 2 * len(seconds), rows
    assert sum(r["count"] for r in rows) == 50, rows


def test_prune_refuses_times_it_cannot_mean(vault):
    before = len(vault.ctl_json("audit", "list"))
    for t in ("-200000000d", "99999999999999", "2999-01-01"):
        p = vault.ctl("audit", "prune", "--before", t)
        assert p.returncode in (1, 2) and len(p.stderr.splitlines()) == 1, (t, p.stderr)
    assert len(vault.ctl_json("audit", "list")) == before
    vault.ctl_ok("audit", "verify")


def test_config_file_writable_by_others_is_refused(vault, workdir):
    ini = os.path.join(workdir, "loose.ini")
    with open(ini, "w") as f:
        f.write("[vault]\ndb = %s\n" % vault.db)
    os.chmod(ini, 0o666)
    p = vault.ctl("-c", ini, "agent", "list")
    assert p.returncode == 1 and "chmod" in p.stderr and ini in p.stderr


def test_audit_store_cannot_be_the_vault_database(vault, workdir):
    ini = os.path.join(workdir, "same.ini")
    with open(ini, "w") as f:
        f.write("[vault]\ndb = %s\n[audit]\ndb = %s\n" % (vault.db, vault.db))
    os.chmod(ini, 0o644)
    # vault.ctl passes --db itself (a second --db would be a usage error)
    p = vault.ctl("-c", ini, "provider", "add", "x")
    assert p.returncode == 1 and "file of its own" in p.stderr and len(p.stderr.splitlines()) == 1
