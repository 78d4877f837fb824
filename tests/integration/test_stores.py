"""test_stores.py - stores and files that are not what they should be (issue
16 items 3, 6 and 8; issue 9's empty database): a 0-byte, table-less,
foreign or random store is refused like a missing one by scopeholdctl and
scopeholdfs, with one line naming the file and whether it is the vault or the
audit store, and is left as it was; `audit verify` wants the trail to begin
with its init row or a prune anchor; an init that fails half-way leaves
nothing behind; a key file, config file or database that is a FIFO is
refused at once; a config line too long for inih is refused by its number."""
import os
import shutil
import sqlite3
import time

import pytest

import scopehold_it as it
from test_cli import _refuses_to_start, one_line_error

# Verbs that open each store.
VERBS = {
    "vault": (["provider", "list"], ["provider", "add", "newprov"], ["secret", "list"],
              ["agent", "list"], ["rekey"], ["init"]),
    "audit store": (["provider", "add", "newprov"], ["audit", "verify"], ["audit", "list"],
                    ["rekey"], ["init"]),
}


def bad_files(d):
    """name -> bytes of a file that is no ScopeHold store."""
    foreign = os.path.join(d, "foreign.sqlite")
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE notes (t TEXT)")
    con.execute("INSERT INTO notes VALUES ('not ours')")
    con.commit()
    con.close()
    empty_sqlite = os.path.join(d, "tableless.sqlite")
    con = sqlite3.connect(empty_sqlite)
    con.execute("CREATE TABLE x (a)")
    con.execute("DROP TABLE x")  # a valid SQLite file without any table
    con.commit()
    con.close()
    out = {"0-byte": b"", "random bytes": os.urandom(8192)}
    for name, path in (("foreign SQLite", foreign), ("table-less SQLite", empty_sqlite)):
        with open(path, "rb") as f:
            out[name] = f.read()
        os.unlink(path)
    return out


def put_in_place(path, data):
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, data)
    os.close(fd)


@pytest.mark.parametrize("which", ["vault", "audit store"])
def test_a_store_that_is_not_ours_is_refused_everywhere(which, privileged, build, vault, workdir):
    vault.put("st/k", it.new_value())
    vault.ctl_ok("audit", "verify")
    saved = it.make_dir(workdir, "saved-", 0o700)
    for f in vault.store_files():
        shutil.copy2(f, saved)
    target = vault.db if which == "vault" else vault.audit_db
    key = open(vault.key, "rb").read()
    for name, data in bad_files(workdir).items():
        put_in_place(target, data)
        for argv in VERBS[which]:
            line = one_line_error(vault.ctl(*argv), f"{name} {which}: {argv}", rcs=(1,))
            if argv == ["init"]:
                assert "already exists" in line, line  # the key file: nothing is made anew
                continue
            assert target in line and which in line, f"{name} {which}: {argv}: {line}"
            with open(target, "rb") as f:
                assert f.read() == data, f"{name} {which}: {argv} changed the file"
        line = _refuses_to_start(build, vault, workdir)
        assert target in line and which in line, f"{name} {which}: scopeholdfs: {line}"
        with open(target, "rb") as f:
            assert f.read() == data, f"{name} {which}: scopeholdfs changed the file"
        assert open(vault.key, "rb").read() == key
    # put back, and all is well again
    for f in vault.store_files():
        os.unlink(f)
    for f in os.listdir(saved):
        shutil.copy2(os.path.join(saved, f), vault.dir)
    vault.ctl_ok("audit", "verify")


def test_an_empty_vault_is_not_initialised_anew(vault, workdir):
    """issue 9: a 0-byte database was turned into a new empty vault."""
    d = it.make_dir(workdir, "zero-", 0o700)
    db, key = os.path.join(d, "scopehold.db"), os.path.join(d, "master.key")
    put_in_place(db, b"")
    for argv in VERBS["vault"]:
        line = one_line_error(vault.ctl(*argv, db=db, key=key), f"0-byte vault: {argv}", rcs=(1,))
        assert db in line and "empty" in line, line
    assert os.listdir(d) == ["scopehold.db"] and os.path.getsize(db) == 0


def test_audit_verify_wants_the_init_row_or_a_prune_anchor(vault):
    vault.put("av/k", it.new_value())
    vault.ctl_ok("audit", "verify")
    # the rows and the id sequence removed: the next change starts a new
    # trail that chains from nothing
    con = sqlite3.connect(vault.audit_db, isolation_level=None)
    con.execute("DELETE FROM audit")
    con.execute("DELETE FROM sqlite_sequence")
    con.close()
    vault.ctl_ok("provider", "add", "after")
    p = vault.ctl("audit", "verify")
    line = one_line_error(p, "a trail started anew", rcs=(1,))
    assert "init row" in line, line


def test_a_pruned_trail_still_verifies(vault):
    vault.put("pr/k", it.new_value())
    vault.ctl_ok("audit", "prune", "--before", str(int(time.time())))
    vault.ctl_ok("audit", "verify")


def test_init_that_fails_half_way_leaves_nothing(vault, workdir):
    d = it.make_dir(workdir, "half-", 0o700)
    sub = os.path.join(d, "new", "deeper")
    # a directory where the audit store goes
    os.makedirs(os.path.join(sub, "scopehold-audit.db"))
    os.chmod(os.path.join(d, "new"), 0o700)
    p = vault.ctl("init", db=os.path.join(sub, "scopehold.db"), key=os.path.join(d, "keys", "master.key"))
    line = one_line_error(p, "audit store is a directory", rcs=(1,))
    assert "audit store" in line, line
    assert sorted(os.listdir(sub)) == ["scopehold-audit.db"], os.listdir(sub)
    assert sorted(os.listdir(d)) == ["new"], "init left a key directory behind"
    # and once the path is free, init works there
    os.rmdir(os.path.join(sub, "scopehold-audit.db"))
    vault.ctl_ok("init", db=os.path.join(sub, "scopehold.db"), key=os.path.join(d, "keys", "master.key"))
    vault.ctl_ok("audit", "verify", db=os.path.join(sub, "scopehold.db"), key=os.path.join(d, "keys", "master.key"))


@pytest.mark.parametrize("which", ["key file", "config file", "vault"])
def test_a_fifo_is_refused_at_once(which, privileged, build, vault, workdir):
    fifo = os.path.join(vault.dir, "fifo")
    os.mkfifo(fifo, 0o600)
    try:
        kw, args = {}, []
        if which == "key file":
            kw = {"key": fifo}
        elif which == "vault":
            kw = {"db": fifo}
        else:
            args = ["-c", fifo]
        # a blocking open would hang here until the timeout
        p = vault.ctl(*args, "secret", "put", "ff/k", input=b"x", timeout=20, **kw)
        line = one_line_error(p, f"{which} FIFO", rcs=(1,))
        assert fifo in line and "not a regular file" in line and which in line, line
        if which != "config file":
            line = _refuses_to_start(build, vault, workdir, **kw)
            assert fifo in line and "not a regular file" in line, line
    finally:
        os.unlink(fifo)


def test_a_config_line_too_long_for_inih_is_refused_by_its_number(vault):
    path = os.path.join(vault.dir, "long.ini")
    long_key = os.path.join(vault.dir, "k" * 240)
    with open(path, "w") as f:
        f.write(f"# a comment\n[vault]\nkey_file = {long_key}\n")
    os.chmod(path, 0o600)
    line = one_line_error(vault.ctl("-c", path, "provider", "list"), "long config line", rcs=(1,))
    assert "line 3" in line and "longer than" in line, line


def test_init_over_an_initialised_vault_is_refused_and_recorded(vault):
    """The init row commits before its change; an init that then fails is
    recorded again as failed, and leaves no key file."""
    other_key = os.path.join(vault.dir, "other.key")
    line = one_line_error(vault.ctl("init", key=other_key), "init twice", rcs=(1,))
    assert "already initialised" in line, line
    assert not os.path.exists(other_key)
    rows = [(r["event"], r["result"]) for r in vault.ctl_json("audit", "list") if r["event"] == "init"]
    assert rows == [("init", "ok"), ("init", "ok"), ("init", "failed")], rows
    vault.ctl_ok("audit", "verify")
