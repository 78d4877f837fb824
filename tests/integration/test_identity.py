"""test_identity.py - which agent is calling (issue 3): processes of one uid
told apart by cgroup v2 groups and by root-owned executables, most specific
binding wins, ties deny; callers inside pid namespaces (unshare, bwrap) are
still known by their host pid and uid; `scopeholdctl whoami` / `explain`
and /.scopehold/whoami agree with what the mount shows; a binding change
applies at the next request of a running process; killed readers never
leave a granted row with another process's labels."""
import os
import random
import shutil
import signal
import subprocess
import time
import types

import pytest

import scopehold_it as it
from scopehold_it import ENOENT_TEXT, UID_A, UID_B

pytestmark = [pytest.mark.identity, pytest.mark.mounted]


def parse_whoami(text):
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(": ")
        if sep:
            out[k.strip()] = v.strip()
    return out


def wait_for(pred, what, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def proc_uid_comm(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            d = dict(line.split(":", 1) for line in f if ":" in line)
        return int(d["Uid"].split()[3]), d["Name"].strip()
    except (OSError, KeyError, ValueError):
        return None, None


def start_as(procs, uid, argv, comm, cgroup=None, stdin=subprocess.DEVNULL):
    """A long-lived process of uid (e.g. sleep) once it has become argv."""
    p = procs.add(subprocess.Popen(it.uid_argv(uid, argv, cgroup), stdin=stdin, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=it.READER_ENV, cwd="/"))
    wait_for(lambda: proc_uid_comm(p.pid) == (uid, comm), f"pid {p.pid} to run {comm} as uid {uid}")
    return p


@pytest.fixture
def ident(vault, cgroups):
    """Three agents on uid A: cg-a (cgroup .../a), cg-b (cgroup .../b),
    uid-only (no label), each with its own secret."""
    w = types.SimpleNamespace(vault=vault, cga=cgroups.make("a"), cgb=cgroups.make("b"))
    vault.agent("cg-a", "pa", UID_A, cgroup=w.cga.name)
    vault.agent("cg-b", "pb", UID_A, cgroup=w.cgb.name)
    vault.agent("uid-only", "pu", UID_A)
    w.secret = {"cg-a": "stripe/a_key", "cg-b": "github/b_key", "uid-only": "openai/u_key"}
    w.value = {pk: vault.give(agent, proj, pk)
               for (agent, pk), proj in zip(w.secret.items(), ("pa", "pb", "pu"))}
    w.where = {"cg-a": w.cga, "cg-b": w.cgb, "uid-only": None}   # the cgroup each agent runs in
    w.own_cgroup = it.own_cgroup_path()
    return w


def test_same_uid_in_two_cgroups_sees_two_views(ident, mount, ls_as, read_as, cat_as):
    for agent, cg in ident.where.items():
        mine = ident.secret[agent]
        assert ls_as(UID_A, mount.path, cgroup=cg) == (0, [mine.split("/")[0]], ""), agent
        assert read_as(UID_A, mount.p(mine), cgroup=cg) == (0, ident.value[mine], ""), agent
        for other, pk in ident.secret.items():
            if other != agent:
                rc, out, err = cat_as(UID_A, mount.p(pk), cgroup=cg)
                assert rc != 0 and out == "" and ENOENT_TEXT in err, f"{agent} read {pk}"
        rc, text, err = cat_as(UID_A, mount.p(".scopehold/whoami"), cgroup=cg)
        assert rc == 0, err
        w = parse_whoami(text)
        assert w["agent"] == agent and w["uid"] == str(UID_A), text
        assert w["cgroup"] == (cg.name if cg else ident.own_cgroup), text
        for v in ident.value.values():
            assert v.decode() not in text
    # The audit rows carry the labels that decided them.
    for r in it.granted_opens(ident.vault.audit_rows()):
        cg = ident.where[r["agent"]]
        assert r["cgroup"] == (cg.name if cg else ident.own_cgroup), r
        assert r["path"] == ident.secret[r["agent"]], r
        assert r["uid"] == UID_A


def test_whoami_and_explain_agree_with_the_mount(ident, mount, procs, cat_as):
    vault = ident.vault
    for agent, cg in ident.where.items():
        sleeper = start_as(procs, UID_A, ["sleep", "30"], "sleep", cgroup=cg)
        j = vault.ctl_json("whoami", sleeper.pid)
        assert (j["result"], j["agent"], j["uid"]) == ("agent", agent, UID_A), j
        assert j["cgroup"] == (cg.name if cg else ident.own_cgroup), j
        assert j["binding"]["cgroup"] == (cg.name if cg else None), j
        text = vault.ctl_ok("whoami", sleeper.pid).stdout
        assert f"agent {agent}" in text, text
        procs.stop(sleeper)
        procs.popens.remove(sleeper)
    # explain and the mount give the same answer for every agent and secret.
    for agent, cg in ident.where.items():
        for pk in ident.secret.values():
            ex = vault.explain(agent, pk)
            rc, out, _ = cat_as(UID_A, mount.p(pk), cgroup=cg)
            assert ex["allowed"] == (rc == 0), (agent, pk, ex, rc)
            assert ex["rule"] == ("allowed" if rc == 0 else "no-grant"), ex
            if rc == 0:
                assert out.encode() == ident.value[pk]
    # A disabled agent: still resolved (no fall back to uid-only), sees nothing.
    vault.ctl_ok("agent", "disable", "cg-a")
    ex = vault.explain("cg-a", "stripe/a_key")
    assert (ex["allowed"], ex["rule"]) == (False, "agent-disabled"), ex
    assert cat_as(UID_A, mount.p("stripe/a_key"), cgroup=ident.cga)[0] != 0
    assert cat_as(UID_A, mount.p("openai/u_key"), cgroup=ident.cga)[0] != 0
    sleeper = start_as(procs, UID_A, ["sleep", "30"], "sleep", cgroup=ident.cga)
    j = vault.ctl_json("whoami", sleeper.pid)
    assert j["agent"] == "cg-a" and j["binding"]["enabled"] is False, j
    vault.ctl_ok("agent", "enable", "cg-a")
    assert cat_as(UID_A, mount.p("stripe/a_key"), cgroup=ident.cga)[0] == 0


def test_binding_changes_apply_to_a_running_process(ident, mount, holder):
    """One process in cgroup a, asked again after each change."""
    vault = ident.vault
    h = holder(UID_A, None, cgroup=ident.cga)

    def view():
        names, err = h.ls(mount.path)
        assert err is None, err
        return names

    def whoami():
        data, err = h.cat(mount.p(".scopehold/whoami"))
        assert err is None, err
        return parse_whoami(data.decode())

    assert view() == ["stripe"]
    # More labels win: cgroup + exe beats cgroup alone.
    vault.agent("cg-a-exe", "pe", UID_A, cgroup=ident.cga.name, exe=os.path.realpath(it.PYTHON))
    v = vault.give("cg-a-exe", "pe", "slack/e_key")
    assert view() == ["slack"]
    assert h.cat(mount.p("slack/e_key")) == (v, None)
    assert h.cat(mount.p("stripe/a_key")) == (None, "ENOENT")
    assert whoami()["agent"] == "cg-a-exe"
    vault.ctl_ok("agent", "rm", "cg-a-exe")
    assert view() == ["stripe"]
    # Two equally specific matches: ambiguous, nothing is shown.
    vault.agent("cg-a-twin", "pa", UID_A, cgroup=ident.cga.name, extra=["--allow-overlap"])
    assert view() == []
    assert h.cat(mount.p("stripe/a_key")) == (None, "ENOENT")
    w = whoami()
    assert w["agent"] == "-" and w["result"] == "ambiguous", w
    vault.ctl_ok("agent", "rm", "cg-a-twin")
    # No cgroup binding left: the uid-only binding applies.
    vault.ctl_ok("agent", "rm", "cg-a")
    assert view() == ["openai"]
    assert h.cat(mount.p("openai/u_key")) == (ident.value["openai/u_key"], None)
    vault.agent("cg-a", "pa", UID_A, cgroup=ident.cga.name)
    vault.grant("cg-a", "stripe/a_key")
    assert view() == ["stripe"]
    assert h.cat(mount.p("stripe/a_key")) == (ident.value["stripe/a_key"], None)


@pytest.fixture
def two_cats(workdir):
    """Two root-owned copies of /bin/cat in a root-owned 0755 directory."""
    d = it.make_dir(workdir, "bin-", 0o755)
    paths = []
    for n in ("cat-one", "cat-two"):
        p = os.path.join(d, n)
        shutil.copy2(shutil.which("cat"), p)
        os.chmod(p, 0o755)
        paths.append(p)
    return paths


def test_exe_bindings_tell_two_binaries_of_one_uid_apart(vault, mount, two_cats, as_uid, ls_as, procs):
    cat1, cat2 = two_cats
    vault.agent("exe-1", "pe1", UID_B, exe=cat1)
    vault.agent("exe-2", "pe2", UID_B, exe=cat2)
    v1 = vault.give("exe-1", "pe1", "stripe/e1")
    v2 = vault.give("exe-2", "pe2", "github/e2")
    e1, e2 = mount.p("stripe/e1"), mount.p("github/e2")

    def read(prog, path):
        p = as_uid(UID_B, [prog, path], binary=True)
        return p.returncode, p.stdout, p.stderr

    assert read(cat1, e1) == (0, v1, "")
    assert read(cat2, e2) == (0, v2, "")
    for prog, path in ((cat1, e2), (cat2, e1), ("cat", e1), ("cat", e2)):
        rc, out, err = read(prog, path)
        assert rc != 0 and out == b"" and ENOENT_TEXT in err, (prog, path)
    assert ls_as(UID_B, mount.path) == (0, [], "")          # /bin/ls is bound to no agent
    w = parse_whoami(read(cat1, mount.p(".scopehold/whoami"))[1].decode())
    assert (w["agent"], w["exe"]) == ("exe-1", cat1), w
    w = parse_whoami(read(cat2, mount.p(".scopehold/whoami"))[1].decode())
    assert (w["agent"], w["exe"]) == ("exe-2", cat2), w
    # whoami of a running cat-one (waiting on its stdin)
    p = start_as(procs, UID_B, [cat1], "cat-one", stdin=subprocess.PIPE)
    j = vault.ctl_json("whoami", p.pid)
    assert (j["agent"], j["exe"], j["binding"]["exe"]) == ("exe-1", cat1, cat1), j
    procs.stop(p)
    procs.popens.remove(p)
    assert vault.explain("exe-1", "stripe/e1")["allowed"] is True
    assert vault.explain("exe-1", "github/e2")["allowed"] is False
    # The binding is the file (device, inode), not the path: a new file at
    # the same path matches nothing, and agent list says so.
    # (copy first, then rename over it: unlinking first could let the new file
    # reuse the freed inode number)
    shutil.copy2(shutil.which("cat"), cat1 + ".new")
    os.replace(cat1 + ".new", cat1)
    rc, out, err = read(cat1, e1)
    assert rc != 0 and out == b"" and ENOENT_TEXT in err
    p = vault.ctl_ok("agent", "list")
    assert "exe-1" in p.stderr and "warning" in p.stderr, p.stderr
    assert read(cat2, e2) == (0, v2, "")


def _host_pid_of(holder_):
    """The host pid of a holder running inside a pid namespace."""
    for pid in it.descendants(holder_.pid):
        try:
            with open(f"/proc/{pid}/status") as f:
                ns = [line.split()[1:] for line in f if line.startswith("NSpid:")][0]
        except (OSError, IndexError):
            continue
        if len(ns) == 2 and int(ns[1]) == holder_.inner_pid and proc_uid_comm(pid)[0] == UID_A:
            return pid
    raise AssertionError("no process of the holder is in a pid namespace")


UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"]
BWRAP = ["bwrap", "--bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid", "--"]


@pytest.mark.parametrize("wrap", [UNSHARE, BWRAP], ids=["unshare", "bwrap"])
@pytest.mark.parametrize("agent", ["cg-a", "uid-only"])
def test_reader_in_a_pid_namespace_is_known_by_host_pid_and_uid(ident, mount, holder, wrap, agent):
    if not shutil.which(wrap[0]):
        pytest.skip(f"{wrap[0]} is not installed")
    cg = ident.where[agent]
    h = holder(UID_A, None, cgroup=cg, wrap=wrap)
    host = _host_pid_of(h)
    assert host != h.inner_pid
    mine = ident.secret[agent]
    assert h.ls(mount.path) == ([mine.split("/")[0]], None)
    assert h.cat(mount.p(mine)) == (ident.value[mine], None)
    for other in ident.secret.values():
        if other != mine:
            assert h.cat(mount.p(other)) == (None, "ENOENT")
    data, err = h.cat(mount.p(".scopehold/whoami"))
    w = parse_whoami(data.decode())
    assert (w["agent"], w["uid"], w["pid"], w["tgid"]) == (agent, str(UID_A), str(host), str(host)), w
    j = ident.vault.ctl_json("whoami", host)
    assert (j["agent"], j["uid"]) == (agent, UID_A), j
    rows = it.granted_opens(ident.vault.audit_rows(), path=mine)
    assert rows and rows[-1]["tgid"] == host and rows[-1]["agent"] == agent, rows[-1:]


def test_killed_readers_leave_no_row_with_another_process_labels(ident, mount, procs):
    """Readers in cgroups a and b, many killed while their open is in
    flight: every granted row names its own process, cgroup and secret."""
    rng = random.Random(4242)
    spawned = {"cg-a": set(), "cg-b": set()}
    for _ in range(3):
        batch = []
        for _ in range(12):
            for agent in ("cg-a", "cg-b"):
                path = mount.p(ident.secret[agent])
                p = procs.add(subprocess.Popen(it.uid_argv(UID_A, ["cat", path], cgroup=ident.where[agent]),
                                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL, env=it.READER_ENV, cwd="/"))
                spawned[agent].add(p.pid)
                batch.append(p)
        time.sleep(rng.uniform(0.0, 0.01))
        for p in batch:
            if rng.random() < 0.5:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in batch:
            p.wait(timeout=20)
        procs.close()
    rows = [r for r in ident.vault.audit_rows() if r.get("event") == "open"]
    granted = [r for r in rows if r["result"] == "granted"]
    assert granted, "no reader got through at all"
    for r in granted:
        agent = r["agent"]
        assert agent in spawned, r
        assert r["tgid"] in spawned[agent], f"row of {agent} names a process that was not its reader: {r}"
        assert r["cgroup"] == ident.where[agent].name, r
        assert r["path"] == ident.secret[agent], r
    assert len(granted) <= sum(len(s) for s in spawned.values())
    assert not [r for r in rows if r.get("agent") == "uid-only"]


def test_unreadable_proc_denies_everyone(ident, mount_factory, workdir, ls_as, cat_as):
    """[identity] proc_root where no process can be read: fail closed."""
    empty = it.make_dir(workdir, "fake-proc-", 0o755)
    m = mount_factory(config={"identity": {"proc_root": empty}})
    for agent, cg in ident.where.items():
        assert ls_as(UID_A, m.path, cgroup=cg) == (0, [], "")
        rc, out, err = cat_as(UID_A, m.p(ident.secret[agent]), cgroup=cg)
        assert rc != 0 and out == "" and ENOENT_TEXT in err
    rc, text, _ = cat_as(UID_A, m.p(".scopehold/whoami"))
    w = parse_whoami(text)
    assert (w["agent"], w["result"]) == ("-", "error"), w
    assert not it.granted_opens(ident.vault.audit_rows())
