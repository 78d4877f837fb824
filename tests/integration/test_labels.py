"""test_labels.py - labels that hold (issue 15): an exe or cgroup binding that
another process of the same uid cannot forge (PR_SET_MM_MAP in a user
namespace of its own), recycle (the inode number of a replaced binary), rewrite
(a binary the agent's uid can write) or borrow (ptrace); what a non-root
caller's whoami tells; the subuid warning. Each attack runs for real against a
mounted filesystem, next to the genuine case that must still read."""
import os
import shutil
import subprocess

import pytest

import scopehold_it as it
from scopehold_it import ENOENT_TEXT, UID_A, UID_B

pytestmark = [pytest.mark.identity, pytest.mark.mounted]

LD_SO = "/lib64/ld-linux-x86-64.so.2"


def parse_whoami(text):
    return {k.strip(): v.strip() for k, sep, v in (l.partition(": ") for l in text.splitlines()) if sep}


@pytest.fixture
def bindir(workdir):
    """A root-owned 0755 directory with a root-owned copy of cat."""
    d = it.make_dir(workdir, "bin-", 0o755)
    cat = os.path.join(d, "cat-bound")
    shutil.copy2(shutil.which("cat"), cat)
    os.chmod(cat, 0o755)
    return d, cat


def attack(build, name):
    p = os.path.join(build.attack, name)
    if not os.access(p, os.X_OK):
        pytest.fail(f"{p} is not built", pytrace=False)
    return p


def last_row_of(vault, uid):
    """The newest audit row of a request by uid (a lookup of a caller that
    is nobody's agent ends at its first path component)."""
    rows = [r for r in vault.audit_rows() if r.get("uid") == uid and r.get("event") in ("lookup", "open")]
    return rows[-1] if rows else None


def test_exe_forged_in_a_user_namespace_is_refused(build, vault, mount, bindir, as_uid):
    """PR_SET_MM_MAP repoints /proc/PID/exe at the bound binary from inside a
    user namespace of the caller's own; the bound binary never ran."""
    if not os.path.exists(LD_SO):
        pytest.skip(f"{LD_SO} is missing: this test runs the forger through the x86-64 loader")
    _, cat = bindir
    vault.agent("forged", "pf", UID_B, exe=cat)
    v = vault.give("forged", "pf", "stripe/forge_key")
    path = mount.p("stripe/forge_key")
    # the genuine binary reads
    p = as_uid(UID_B, [cat, path], binary=True)
    assert (p.returncode, p.stdout) == (0, v), p.stderr
    # the forgery: its exe is the bound file, its uid the agent's
    p = as_uid(UID_B, [LD_SO, attack(build, "forge-exe"), cat, path], binary=True)
    err = p.stderr
    if p.returncode == 77:
        pytest.skip(f"this kernel does not allow the forgery here: {err.strip()}")
    assert f"exe now {cat}" in err, err
    assert p.stdout == b"" and p.returncode == 1 and "ENOENT" in err, (p.returncode, err)
    row = last_row_of(vault, UID_B)
    assert row and row["result"] == "unknown-caller", row
    assert "exe-in-user-namespace" in row["reason"], row


def test_traced_process_is_nobodys_agent(build, vault, mount, cgroups, as_uid):
    """A process of the agent's uid attaches with ptrace and makes the agent
    read: refused and audited `traced`; untraced, the same program reads."""
    cg = cgroups.make("traced")
    vault.agent("cg-agent", "pt", UID_A, cgroup=cg.name)
    v = vault.give("cg-agent", "pt", "github/traced_key")
    path = mount.p("github/traced_key")
    prog = attack(build, "traced-read")
    p = as_uid(UID_A, [prog, "--no-trace", path], cgroup=cg, binary=True)
    assert (p.returncode, p.stdout) == (0, v), p.stderr
    p = as_uid(UID_A, [prog, path], cgroup=cg, binary=True)
    err = p.stderr
    if p.returncode == 77:
        pytest.skip(f"ptrace is not allowed here: {err.strip()}")
    assert (p.returncode, p.stdout) == (1, b""), (p.returncode, err)
    assert "ENOENT" in err, err
    row = last_row_of(vault, UID_A)
    assert row and row["result"] == "unknown-caller" and row["reason"].startswith("traced"), row


def test_writable_binaries_are_refused_at_agent_add(vault, bindir, workdir):
    d, cat = bindir
    vault.project("pw")
    mine = os.path.join(d, "cat-mine")
    shutil.copy2(cat, mine)
    os.chown(mine, UID_B, UID_B)
    p = vault.ctl("agent", "add", "w1", "--project", "pw", "--uid", UID_B, "--exe", mine)
    assert p.returncode == 1 and f"owned by uid {UID_B}" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    os.chown(mine, 0, 0)
    os.chmod(mine, 0o775)
    p = vault.ctl("agent", "add", "w1", "--project", "pw", "--uid", UID_B, "--exe", mine)
    assert p.returncode == 1 and "chmod go-w" in p.stderr, p.stderr
    os.chmod(mine, 0o755)
    open_dir = it.make_dir(workdir, "open-", 0o777)
    os.chmod(open_dir, 0o777)
    there = os.path.join(open_dir, "cat")
    shutil.copy2(cat, there)
    p = vault.ctl("agent", "add", "w1", "--project", "pw", "--uid", UID_B, "--exe", there)
    assert p.returncode == 1 and "writable by group or others" in p.stderr, p.stderr
    assert "w1" not in vault.ctl_ok("agent", "list").stdout
    vault.ctl_ok("agent", "add", "w1", "--project", "pw", "--uid", UID_B, "--exe", mine)
    j = [a for a in vault.ctl_json("agent", "list") if a["name"] == "w1"][0]
    assert j["exe_state"] == "ok" and len(j["exe_blake2b"]) == 64, j


@pytest.fixture
def ext4(workdir):
    """A loop-mounted ext4 filesystem of 16 MiB (removed at teardown)."""
    for prog in ("mkfs.ext4", "mount", "umount"):
        if not shutil.which(prog):
            pytest.skip(f"{prog} is not installed")
    img = os.path.join(workdir, "ext4.img")
    mnt = it.make_dir(workdir, "ext4-", 0o755)
    with open(img, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", img], check=True, capture_output=True)
    p = subprocess.run(["mount", "-o", "loop", img, mnt], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot loop-mount an ext4 image here: {p.stderr.strip()}")
    try:
        os.chmod(mnt, 0o755)
        yield mnt
    finally:
        subprocess.run(["umount", mnt], check=True)


def test_recycled_inode_is_not_the_bound_binary(vault, mount, ext4, as_uid):
    """After an upgrade renames a new binary over the bound one, the freed
    inode number goes to the next file created: another program of the
    agent's uid at that inode is not the agent."""
    bind = os.path.join(ext4, "bin")
    os.mkdir(bind, 0o755)
    home = os.path.join(ext4, "home-b")
    os.mkdir(home, 0o755)
    os.chown(home, UID_B, UID_B)
    tool = os.path.join(bind, "tool")
    shutil.copy2(shutil.which("cat"), tool)
    os.chmod(tool, 0o755)
    vault.agent("ext-agent", "pe", UID_B, exe=tool)
    v = vault.give("ext-agent", "pe", "openai/ext_key")
    path = mount.p("openai/ext_key")
    p = as_uid(UID_B, [tool, path], binary=True)
    assert (p.returncode, p.stdout) == (0, v), p.stderr
    old_ino = os.stat(tool).st_ino
    # the upgrade: a new file renamed over the old one frees its inode
    shutil.copy2(shutil.which("cat"), tool + ".new")
    os.replace(tool + ".new", tool)
    # the agent's uid creates files until one gets the freed inode number
    code = ("import os,shutil,sys\n"
            "for i in range(200):\n"
            "    p=os.path.join(sys.argv[1],'f%d'%i)\n"
            "    shutil.copyfile(sys.argv[2],p); os.chmod(p,0o755)\n"
            "    if os.stat(p).st_ino==int(sys.argv[3]): print(p); break\n")
    p = as_uid(UID_B, [it.PYTHON, "-I", "-c", code, home, shutil.which("cat"), str(old_ino)])
    recycled = p.stdout.strip()
    if not recycled:
        pytest.skip(f"ext4 did not hand inode {old_ino} to a new file within 200 files")
    p = as_uid(UID_B, [recycled, path], binary=True)
    assert p.returncode != 0 and p.stdout == b"", "a file at a recycled inode read the agent's secret"
    row = last_row_of(vault, UID_B)
    assert row and "exe-changed" in row["reason"], row
    p = vault.ctl_ok("agent", "list")
    assert "ext-agent" in p.stderr and "agent set ext-agent --exe" in p.stderr, p.stderr
    # the admin binds the upgraded file again: it reads
    vault.ctl_ok("agent", "rm", "ext-agent")
    vault.agent("ext-agent", "pe", UID_B, exe=tool)
    vault.grant("ext-agent", "openai/ext_key")
    p = as_uid(UID_B, [tool, path], binary=True)
    assert (p.returncode, p.stdout) == (0, v), p.stderr


def test_whoami_of_a_non_root_caller_names_no_other_agent(vault, mount, cgroups, cat_as):
    cg = cgroups.make("pair")
    vault.agent("twin-one", "p1", UID_A, cgroup=cg.name)
    vault.project("p2")
    vault.ctl_ok("agent", "add", "twin-two", "--project", "p2", "--uid", UID_A, "--cgroup", cg.name + "*",
                 "--allow-overlap")
    rc, text, err = cat_as(UID_A, mount.p(".scopehold/whoami"), cgroup=cg)
    assert rc == 0, err
    w = parse_whoami(text)
    assert (w["result"], w["reason"]) == ("ambiguous", "ambiguous: 2 bindings match equally"), text
    assert "twin" not in text, text
    rc, text, err = cat_as(UID_B, mount.p(".scopehold/whoami"))
    assert rc == 0, err
    w = parse_whoami(text)
    assert (w["result"], w["reason"]) == ("unknown-caller", "no agent"), text
    # the names are in the audit trail, for the admin
    vault.put("stripe/pair_key", it.new_value())
    rc, _, err = cat_as(UID_A, mount.p("stripe/pair_key"), cgroup=cg)
    assert rc != 0 and ENOENT_TEXT in err
    row = last_row_of(vault, UID_A)
    assert row and row["result"] == "ambiguous", row
    assert "twin-one" in row["reason"] or "twin-two" in row["reason"], row


def test_subuid_range_warning(vault, workdir):
    sub = os.path.join(workdir, "subuid")
    with open(sub, "w") as f:
        f.write("# test\nalice:300000:65536\n")
    ini = it.write_ini(os.path.join(vault.dir, "sub.ini"), {
        "vault": {"db": vault.db, "key_file": vault.key},
        "identity": {"subuid_file": sub}})
    vault.project("ps")
    p = vault.ctl_ok("agent", "add", "in-range", "--project", "ps", "--uid", "300005", extra=("-c", ini))
    assert "warning" in p.stderr and "alice" in p.stderr and sub in p.stderr, p.stderr
    p = vault.ctl_ok("agent", "add", "outside", "--project", "ps", "--uid", "299999", extra=("-c", ini))
    assert p.stderr == "", p.stderr
