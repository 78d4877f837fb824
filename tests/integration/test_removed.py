"""test_removed.py - removed values leave the disk (issue 16 item 5): after
`secret rm` the ciphertexts are in neither the database nor its -wal, also
while another connection (the daemon's) keeps the -wal alive; `rekey
--data-key` re-encrypts every kept version under a new data key, so that a
leaked copy of the database plus its old master key opens none of them."""
import os
import shutil
import sqlite3

import scopehold_it as it
from scopehold_it import UID_A
from test_rekey import read_all, tools


def ciphertexts(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {(r[0], r[1]): bytes(r[2]) for r in con.execute("SELECT secret_id, version, ct FROM secret_versions")}
    finally:
        con.close()


def on_disk(vault):
    data = b""
    for suffix in ("", "-wal"):
        if os.path.exists(vault.db + suffix):
            with open(vault.db + suffix, "rb") as f:
                data += f.read()
    return data


def reader(db):
    """An idle connection, as the daemon keeps: the -wal is not removed when
    scopeholdctl closes."""
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("SELECT count(*) FROM secrets").fetchall()
    return con


def test_secret_rm_leaves_no_ciphertext_behind(vault):
    vault.put("gone/k", it.new_value())
    vault.put("gone/k", it.new_value())
    vault.put("gone/stays", it.new_value())
    con = reader(vault.db)
    try:
        before = ciphertexts(vault.db)
        removed = [ct for (sid, ver), ct in before.items() if ct != before[max(before)]]
        assert len(removed) == 2
        vault.ctl_ok("secret", "rm", "gone/k", "--yes")
        disk = on_disk(vault)
        left = sum(1 for ct in removed if ct in disk)
        assert left == 0, f"{left} of {len(removed)} removed ciphertexts are still in the database or its -wal"
        assert before[max(before)] in disk  # the kept one is where it was
    finally:
        con.close()


def test_rekey_data_key_reencrypts_every_kept_version(build, vault, workdir, mount_factory, read_as):
    shim, readall = tools(build)
    values = {}
    for pk in ("dk/a", "dk/b", "dk/c"):
        vault.put(pk, it.new_value())
        values[pk] = vault.put(pk, it.new_value())
    vault.agent("dka", "dkp", UID_A)
    vault.assign("dk/b", "dkp")
    vault.grant("dka", "dk/b")
    leaked = it.make_dir(workdir, "leaked-", 0o700)
    con = sqlite3.connect(vault.db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    for f in (vault.db, vault.key):
        shutil.copy2(f, leaked)
    before = ciphertexts(vault.db)
    assert len(before) == 6
    running = mount_factory()  # keeps the -wal alive, and the old data key
    rc, data, err = read_as(UID_A, running.p("dk", "b"))
    assert rc == 0 and data == values["dk/b"], err
    out = vault.ctl_ok("rekey", "--data-key").stdout
    assert "re-encrypted 6 versions" in out, out
    after = ciphertexts(vault.db)
    assert sorted(after) == sorted(before)
    assert all(after[k] != before[k] for k in before), "a kept version was not re-encrypted"
    disk = on_disk(vault)
    assert not any(ct in disk for ct in before.values()), "an old ciphertext is still on disk"
    # the vault reads with its (new) key file
    ok, msg = read_all(readall, vault.db, vault.key, values)
    assert ok, msg
    # the leaked copy's data key wrapping, with the old master key, opens none
    mixed = os.path.join(leaked, "mixed.db")
    shutil.copy2(vault.db, mixed)
    con = sqlite3.connect(mixed)
    con.execute("ATTACH ? AS old", (os.path.join(leaked, "scopehold.db"),))
    con.execute("UPDATE main.datakey SET nonce = (SELECT nonce FROM old.datakey), wrapped = (SELECT wrapped FROM old.datakey)")
    con.commit()
    con.close()
    for pk in values:
        ok, msg = read_all(readall, mixed, os.path.join(leaked, "master.key"), {pk: values[pk]})
        assert not ok and "failed authentication" in msg, f"{pk}: the old data key still opens it: {msg}"
    rows = [r["event"] for r in vault.ctl_json("audit", "list")]
    assert "rekey.data-key" in rows and "rekey" in rows
    vault.ctl_ok("audit", "verify")
    # the daemon that was running fails closed until restarted; a new one reads
    rc, data, err = read_as(UID_A, running.p("dk", "b"))
    assert rc != 0 and data == b"" and "Input/output error" in err, (rc, err)
    assert running.close() == []
    m = mount_factory()
    rc, data, err = read_as(UID_A, m.p("dk", "b"))
    assert rc == 0 and data == values["dk/b"], err
    it.rm_tree(leaked)


def test_a_pruned_version_leaves_no_ciphertext_behind(vault):
    """[vault] keep_versions: the put that destroys the oldest version also
    scrubs it from the database and its -wal."""
    ini = it.write_ini(os.path.join(vault.dir, "keep2.ini"), {"vault": {"keep_versions": 2}})
    vault.ctl_ok("provider", "add", "pr")
    for _ in range(2):
        vault.values.append(it.new_value().encode())
        vault.ctl_ok("secret", "put", "pr/k", input=vault.values[-1], extra=("-c", ini))
    con = reader(vault.db)
    try:
        before = ciphertexts(vault.db)
        oldest = before[min(before)]
        vault.values.append(it.new_value().encode())
        vault.ctl_ok("secret", "put", "pr/k", input=vault.values[-1], extra=("-c", ini))
        assert len(ciphertexts(vault.db)) == 2
        assert oldest not in on_disk(vault), "the pruned version's ciphertext is still on disk"
    finally:
        con.close()
