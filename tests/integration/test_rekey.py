"""test_rekey.py - `scopeholdctl rekey` killed at every step (issue 16 item
2): an LD_PRELOAD shim SIGKILLs rekey at its Nth rename, link, unlink, fsync
or fdatasync, for every N until rekey completes. After each kill the key file
at the configured path opens the vault and every secret reads back (after the
one command that a warning line names, when it names one); the audit trail
holds a rekey row whenever the key changed; retired keys are kept apart
(issue 9: a second rekey overwrote KEY.old)."""
import glob
import os
import shutil

import scopehold_it as it
from scopehold_it import UID_A


def tools(build):
    shim = os.path.join(build.dir, "tests", "libscopehold-killat.so")
    readall = os.path.join(build.dir, "tests", "scopehold-readall")
    assert os.path.exists(shim) and os.access(readall, os.X_OK), "the crash-test tools are not built"
    return shim, readall


def read_all(readall, db, key, values):
    """(ok, message) of reading every value back with the key file key."""
    lines = "".join(f"{pk} {v.hex()}\n" for pk, v in values.items())
    p = it.subprocess.run([readall, db, key], input=lines.encode(), stdout=it.subprocess.PIPE,
                          stderr=it.subprocess.PIPE, timeout=60)
    out = (p.stdout + p.stderr).decode(errors="replace").strip()
    return p.returncode == 0 and out == f"read {len(values)} secrets", out


def kill_env(shim, n):
    asan = os.environ.get("ASAN_OPTIONS", "")
    return {"LD_PRELOAD": shim, "SCOPEHOLD_KILL_AT": str(n),
            "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0:detect_leaks=0"}


def key_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def kill_every_step(vault, shim, start, work, check):
    """For N = 1, 2, ...: copy the directory start to work, run rekey there
    killed at its Nth step, call check(N, completed); until a rekey
    completes. Returns that N."""
    db, key = os.path.join(work, "scopehold.db"), os.path.join(work, "master.key")
    for n in range(1, 200):
        it.rm_tree(work)
        shutil.copytree(start, work)
        p = vault.ctl("rekey", db=db, key=key, env=kill_env(shim, n))
        assert p.returncode in (0, -9), f"step {n}: rekey was not killed but exited {p.returncode}: {p.stderr}"
        check(n, p.returncode == 0)
        if p.returncode == 0:
            return n
    raise AssertionError("rekey never completed")


def pending_line(vault, db, key):
    """The warning line that names the finishing command, or None (a verb
    that opens the vault must work either way)."""
    p = vault.ctl("secret", "list", db=db, key=key)
    assert p.returncode == 0, p.stderr
    if "run: scopeholdctl rekey" not in p.stderr:
        assert p.stderr == "", p.stderr
        return None
    assert len(p.stderr.splitlines()) == 1, p.stderr
    return p.stderr


def test_rekey_killed_at_every_step(build, vault, workdir, mount_factory, read_as):
    shim, readall = tools(build)
    values = {f"kp{i}/key{j}": vault.put(f"kp{i}/key{j}", it.new_value()) for i in range(2) for j in range(3)}
    vault.agent("rk", "rkproj", UID_A)
    vault.assign("kp1/key2", "rkproj")
    vault.grant("rk", "kp1/key2")
    vault.ctl_ok("audit", "verify")
    original_key = key_bytes(vault.key)
    pristine = os.path.join(workdir, "pristine")
    shutil.copytree(vault.dir, pristine)
    work, work2, pend = (os.path.join(workdir, d) for d in ("work", "work2", "pending"))
    db, key = os.path.join(work, "scopehold.db"), os.path.join(work, "master.key")
    seen = {"pending": 0, "mounted": False, "inner": []}

    def opens(where, n, d):
        ok, msg = read_all(readall, os.path.join(d, "scopehold.db"), os.path.join(d, "master.key"), values)
        assert ok, f"{where} killed at step {n}: the key file at the configured path does not open the vault: {msg}"

    def kept_and_recorded(n, d):
        # a key that changed has its audit row before or with it; the old key is kept
        k = os.path.join(d, "master.key")
        rows = vault.ctl_json("audit", "list", db=os.path.join(d, "scopehold.db"), key=k)
        vault.ctl_ok("audit", "verify", db=os.path.join(d, "scopehold.db"), key=k)
        if key_bytes(k) != original_key:
            assert any(r["event"] == "rekey" for r in rows), f"step {n}: the key changed without an audit row"
            retired = glob.glob(k + ".retired-*")
            assert [key_bytes(r) for r in retired] == [original_key], f"step {n}: old key not kept: {retired}"

    def finishing_killed(m, completed):
        # the finishing command, itself killed at its mth step
        opens("the finishing rekey", m, work2)
        if completed:
            assert pending_line(vault, os.path.join(work2, "scopehold.db"), os.path.join(work2, "master.key")) is None

    def check(n, completed):
        opens("rekey", n, work)
        if pending_line(vault, db, key):
            seen["pending"] += 1
            if not seen["mounted"] and key_bytes(key) != original_key:
                # the daemon starts on this half-done state, says how to
                # finish, and serves
                m = mount_factory(db=db, key=key)
                rc, data, err = read_as(UID_A, m.p("kp1", "key2"))
                assert rc == 0 and data == values["kp1/key2"], f"step {n}: {err}"
                assert m.close() == []
                assert "run: scopeholdctl rekey" in m.final_stderr
                seen["mounted"] = True
            it.rm_tree(pend)
            shutil.copytree(work, pend)
            seen["inner"].append(kill_every_step(vault, shim, pend, work2, finishing_killed))
            fin = vault.ctl("rekey", db=db, key=key)
            assert fin.returncode == 0 and "finished an interrupted rekey" in fin.stdout, \
                f"step {n}: the finishing command failed: {fin.stderr}"
            opens("rekey (then finished)", n, work)
            assert pending_line(vault, db, key) is None
            assert not os.path.exists(key + ".new"), f"step {n}: KEY.new left after finishing"
        kept_and_recorded(n, work)

    steps = kill_every_step(vault, shim, pristine, work, check)
    print(f"rekey completed at step {steps}; {seen['pending']} kills left it half-done; "
          f"their finishing rekeys took {seen['inner']} steps, each killed at every one")
    assert steps > 5, f"rekey completed after {steps} steps"
    assert seen["mounted"], "no kill left a half-done rekey with the new key in place"
    # the completed rekey serves through the mount
    m = mount_factory(db=db, key=key)
    rc, data, err = read_as(UID_A, m.p("kp1", "key2"))
    assert rc == 0 and data == values["kp1/key2"], err
    assert m.close() == []
    for d in (work, work2, pend):
        it.rm_tree(d)


def test_second_rekey_keeps_the_first_retired_key(build, vault, workdir):
    shim, readall = tools(build)
    values = {"rk/a": vault.put("rk/a", it.new_value())}
    before = os.path.join(workdir, "before")
    shutil.copytree(vault.dir, before)
    first = vault.ctl_ok("rekey").stdout
    second = vault.ctl_ok("rekey").stdout
    retired = sorted(glob.glob(vault.key + ".retired-*"))
    assert len(retired) == 2 and all(r in first + second for r in retired), (retired, first, second)
    assert "backups" in first
    for r in retired:
        assert it.file_mode(r) == 0o400
    # a backup taken before both rekeys opens with the first retired key
    old_key = [r for r in retired if r in first][0]
    ok, msg = read_all(readall, os.path.join(before, "scopehold.db"), old_key, values)
    assert ok, msg
    ok, msg = read_all(readall, vault.db, vault.key, values)
    assert ok, msg
    rows = [r for r in vault.ctl_json("audit", "list") if r["event"] == "rekey"]
    assert len(rows) == 2
    it.rm_tree(before)


def test_rekey_without_its_audit_store_changes_nothing(vault):
    key = key_bytes(vault.key)
    moved = vault.audit_db + ".away"
    os.rename(vault.audit_db, moved)
    try:
        p = vault.ctl("rekey")
        assert p.returncode == 1 and len(p.stderr.splitlines()) == 1 and "audit store" in p.stderr, p.stderr
        assert key_bytes(vault.key) == key
        assert not glob.glob(vault.key + ".*"), "rekey left files behind"
    finally:
        os.rename(moved, vault.audit_db)
    vault.ctl_ok("audit", "verify")
