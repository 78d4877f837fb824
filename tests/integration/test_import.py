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


# Another uid that can write the import tree swaps the provider directory
# with a link to a root-only directory, in a renameat2(RENAME_EXCHANGE) loop
# (issue 16 item 1). It prints how many swaps it made when stdin closes.
SWAPPER = r"""
import ctypes, os, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
a, b = os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2])
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
n = 0
print("ready", flush=True)
while not done.is_set():
    if libc.renameat2(-100, a, -100, b, 2) == 0:  # AT_FDCWD, RENAME_EXCHANGE
        n += 1
print(n, flush=True)
"""


def test_import_never_follows_a_swapped_directory(vault, workdir, procs, privileged):
    inside_len, outside_len = 20, 50
    keys = [f"k{i}" for i in range(5)]
    # the root-only directory whose values must never be imported
    secret = it.make_dir(workdir, "rootonly-", 0o700)
    os.mkdir(os.path.join(secret, "swp"), 0o700)
    for k in keys:
        with open(os.path.join(secret, "swp", k), "wb") as f:
            f.write(os.urandom(outside_len // 2).hex().encode())
    # the import tree, writable by UID_A
    src = it.make_dir(workdir, "tree-", 0o755)
    os.chown(src, UID_A, UID_A)
    prov = os.path.join(src, "swp")
    os.mkdir(prov, 0o755)
    for k in keys:
        with open(os.path.join(prov, k), "wb") as f:
            f.write(os.urandom(inside_len // 2).hex().encode())
    link = os.path.join(src, ".swap")  # a dot name: the import skips it
    os.symlink(os.path.join(secret, "swp"), link)
    os.lchown(link, UID_A, UID_A)
    os.chown(prov, UID_A, UID_A)
    vault.provider("swp")
    # every imported version kept, so that every one can be checked
    keep = it.write_ini(os.path.join(vault.dir, "keep.ini"), {"vault": {"keep_versions": 1000}})
    sw = procs.add(it.subprocess.Popen(it.uid_argv(UID_A, [it.PYTHON, "-I", "-c", SWAPPER, prov, link]),
                                       stdin=it.subprocess.PIPE, stdout=it.subprocess.PIPE,
                                       stderr=it.subprocess.PIPE, env=it.READER_ENV, cwd="/"))
    assert sw.stdout.readline().strip() == b"ready"
    imported = attempts = 0
    try:
        while imported < 40 and attempts < 2000:
            attempts += 1
            p = vault.ctl("secret", "import", "--from-dir", src, extra=("-c", keep))
            if p.returncode == 0:
                imported += 1
            else:
                # refused whole when it met the link: never half-read
                assert p.returncode == 1 and len(p.stderr.splitlines()) == 1, p.stderr
    finally:
        sw.stdin.close()
        swaps = int(sw.stdout.readline() or b"0")
        procs.stop(sw)
    assert swaps > attempts, f"the swapper made only {swaps} swaps in {attempts} imports"
    assert imported >= 40, f"{imported} of {attempts} imports succeeded"
    lens = [v["bytes"] for k in keys for v in vault.ctl_json("secret", "versions", f"swp/{k}")]
    outside = sum(1 for n in lens if n == outside_len)
    assert len(lens) == 5 * imported
    print(f"{imported} imports of {attempts} attempts, {swaps} swaps, {outside} of {len(lens)} values from outside")
    assert outside == 0, f"{outside} of {len(lens)} imported values came from outside the import directory"
