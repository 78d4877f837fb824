"""test_import.py - `scopeholdctl secret import --from-dir`: many secrets in
one transaction, all or nothing, each with its audit row, readable through
the mount; a bad file imports nothing."""
import os

import scopehold_it as it
from scopehold_it import UID_A


def make_tree(root, files):
    for pk, value in files.items():
        p, k = pk.split("/")
        os.makedirs(os.path.join(root, p), exist_ok=True)
        with open(os.path.join(root, p, k), "wb") as f:
            f.write(value)


def listed(vault):
    return sorted(s["secret"] for s in vault.ctl_json("secret", "list"))


def test_import_is_all_or_nothing_and_audited(vault, mount, read_as, workdir):
    values = {f"imp{p}/key{k}": it.new_value().encode() for p in range(3) for k in range(5)}
    vault.values.extend(values.values())
    src = it.make_dir(workdir, "import-", 0o700)
    make_tree(src, values)
    vault.project("shop")
    before = listed(vault)
    # providers missing and not asked to create them: nothing imported
    p = vault.ctl("secret", "import", "--from-dir", src, "--assign", "shop")
    assert p.returncode == 1 and "--create-providers" in p.stderr and len(p.stderr.splitlines()) == 1
    assert listed(vault) == before
    # one bad file (empty) among good ones: nothing imported, and it says which
    make_tree(src, {"imp9/empty": b""})
    p = vault.ctl("secret", "import", "--from-dir", src, "--assign", "shop", "--create-providers")
    assert p.returncode == 1 and "empty" in p.stderr and "imp9/empty" in p.stderr
    assert listed(vault) == before
    os.unlink(os.path.join(src, "imp9", "empty"))
    os.rmdir(os.path.join(src, "imp9"))
    # a link, a FIFO (which must not hang it) and a linked provider are refused too
    os.symlink("/etc/hostname", os.path.join(src, "imp0", "link"))
    p = vault.ctl("secret", "import", "--from-dir", src, "--create-providers")
    assert p.returncode == 1 and "symbolic link" in p.stderr
    os.unlink(os.path.join(src, "imp0", "link"))
    os.mkfifo(os.path.join(src, "imp0", "fifo"))
    p = vault.ctl("secret", "import", "--from-dir", src, "--create-providers", timeout=20)
    assert p.returncode == 1 and "not a regular file" in p.stderr
    os.unlink(os.path.join(src, "imp0", "fifo"))
    os.symlink(os.path.join(src, "imp0"), os.path.join(src, "implink"))
    p = vault.ctl("secret", "import", "--from-dir", src, "--create-providers")
    assert p.returncode == 1 and "symbolic link" in p.stderr
    os.unlink(os.path.join(src, "implink"))
    assert listed(vault) == before
    rows_before = len(vault.ctl_json("audit", "list"))
    out = vault.ctl_json("secret", "import", "--from-dir", src, "--assign", "shop", "--create-providers")
    assert out == {"imported": len(values)} or out == [{"imported": len(values)}]
    assert listed(vault) == sorted(before + list(values))
    rows = vault.ctl_json("audit", "list")
    new = rows[rows_before:]
    assert sorted(r["path"] for r in new if r["event"] == "secret.put") == sorted(values)
    # the providers it created and the assignments it made are changes too
    assert sorted(r["path"] for r in new if r["event"] == "provider.add") == ["imp0", "imp1", "imp2"]
    assert sorted(r["path"] for r in new if r["event"] == "secret.assign") == sorted(pk + " -> shop" for pk in values)
    vault.ctl_ok("audit", "verify")
    # readable through the mount once granted
    vault.agent("importer", "shop", UID_A)
    vault.ctl_ok("grant", "importer", "imp1/key3")
    rc, data, err = read_as(UID_A, os.path.join(mount.path, "imp1", "key3"))
    assert rc == 0 and data == values["imp1/key3"], err
