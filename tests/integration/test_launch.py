"""test_launch.py - per-server identity under one uid (issue 10): `scopeholdctl
run --agent NAME` asks the daemon's launch socket to move it into the agent's
root-owned launch cgroup, and a --launched binding matches that subtree. Two
servers of one uid launched as two agents read only their own keys; a plain
process of the uid reads neither; a launched process can neither leave its
cgroup nor launch as another agent; the wrong uid, malformed, oversized and
silent clients are refused or dropped without holding up others; empty
instance cgroups are removed; exec and run pass a clean environment."""
import os
import socket
import struct
import subprocess
import time

import pytest

import scopehold_it as it
from scopehold_it import ENOENT_TEXT, UID_A, UID_B

pytestmark = [pytest.mark.mounted]

REQ = struct.Struct("<IHH128s")       # struct sh_launch_req
REP = struct.Struct("<IHH256s")       # struct sh_launch_rep
MAGIC, VERSION = 0x53484C31, 1


class Launcher:
    def __init__(self, build, vault, mount, sock, cgroup, ini):
        self.build, self.vault, self.mount, self.sock, self.cgroup, self.ini = build, vault, mount, sock, cgroup, ini

    def agent(self, name, project, uid):
        self.vault.project(project)
        self.vault.ctl_ok("agent", "add", name, "--project", project, "--uid", uid, "--launched",
                          extra=("-c", self.ini))

    def run_argv(self, agent, *cmd, opts=()):
        return [self.build.ctl, "run", "--agent", agent, "--socket", self.sock, "--mount",
                self.mount.path, *opts, "--", *cmd]

    def instances(self, agent):
        d = os.path.join(self.cgroup.path, agent)
        return sorted(n for n in os.listdir(d) if n.startswith("i") and os.path.isdir(os.path.join(d, n))) \
            if os.path.isdir(d) else []

    def rows(self):
        return [r for r in self.vault.audit_rows() if r.get("event") == "launch"]


@pytest.fixture
def launcher(build, vault, mount_factory, cgroups, workdir):
    lcg = cgroups.make("launch")
    sock = os.path.join(workdir, "launch.sock")
    ini = it.write_ini(os.path.join(vault.dir, "launch.ini"), {"launch": {"cgroup": lcg.name}})
    m = mount_factory(args=[f"--launch-socket={sock}", f"--launch-cgroup={lcg.name}"])
    _wait(lambda: os.path.exists(sock))
    return Launcher(build, vault, m, sock, lcg, ini)


def _wait(pred, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_two_servers_of_one_uid_are_two_agents(launcher, as_uid):
    L, v = launcher, launcher.vault
    L.agent("srv-a", "pa", UID_A)
    L.agent("srv-b", "pb", UID_A)
    va = v.give("srv-a", "pa", "stripe/a_key")
    vb = v.give("srv-b", "pb", "github/b_key")
    a, b = L.mount.p("stripe/a_key"), L.mount.p("github/b_key")
    p = as_uid(UID_A, L.run_argv("srv-a", "cat", a), binary=True)
    assert (p.returncode, p.stdout) == (0, va), p.stderr
    p = as_uid(UID_A, L.run_argv("srv-b", "cat", b), binary=True)
    assert (p.returncode, p.stdout) == (0, vb), p.stderr
    for agent, other in (("srv-a", b), ("srv-b", a)):
        p = as_uid(UID_A, L.run_argv(agent, "cat", other))
        assert p.returncode != 0 and ENOENT_TEXT in p.stderr, (agent, p.stderr)
    for path in (a, b):   # a plain process of the uid is neither
        p = as_uid(UID_A, ["cat", path])
        assert p.returncode != 0 and ENOENT_TEXT in p.stderr
    # whoami of a launched process names its agent and its instance
    p = as_uid(UID_A, L.run_argv("srv-a", "cat", L.mount.p(".scopehold/whoami")))
    w = dict(l.split(": ", 1) for l in p.stdout.splitlines() if ": " in l)
    assert w["agent"] == "srv-a", p.stdout
    assert w["cgroup"].startswith(f"{L.cgroup.name}/srv-a/i"), p.stdout
    # the audit rows of the launches and of the read
    rows = L.rows()
    granted = [r for r in rows if r["result"] == "granted"]
    assert {r["agent"] for r in granted} == {"srv-a", "srv-b"}, rows
    assert all(r["uid"] == UID_A and r["cgroup"].startswith(L.cgroup.name) for r in granted), granted
    opens = it.granted_opens(v.audit_rows(), path="stripe/a_key")
    assert opens and opens[-1]["agent"] == "srv-a" and opens[-1]["exe"].endswith("/cat"), opens


def test_a_launched_process_cannot_leave_or_relaunch(launcher, cgroups, as_uid):
    L, v = launcher, launcher.vault
    L.agent("srv-a", "pa", UID_A)
    L.agent("srv-b", "pb", UID_A)
    va = v.give("srv-a", "pa", "stripe/a_key")
    v.give("srv-b", "pb", "github/b_key")
    other = cgroups.make("elsewhere")
    script = (f'echo $$ > {other.path}/cgroup.procs && echo MOVED; '
              f'echo $$ > {L.cgroup.path}/cgroup.procs && echo MOVED; '
              f'cat {L.mount.p("stripe/a_key")}')
    p = as_uid(UID_A, L.run_argv("srv-a", "sh", "-c", script))
    assert "MOVED" not in p.stdout and "Permission denied" in p.stderr, (p.stdout, p.stderr)
    assert p.stdout.strip() == va.decode(), p.stdout
    # a launched server asking to be another agent (or itself again)
    for target in ("srv-b", "srv-a"):
        inner = L.run_argv(target, "cat", L.mount.p("github/b_key"))
        p = as_uid(UID_A, L.run_argv("srv-a", *inner))
        assert p.returncode == 1 and "refused" in p.stderr and "launched process" in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert any("already inside the launch tree" in r["reason"] for r in L.rows())


def test_wrong_uid_disabled_and_unlaunched_agents_are_refused(launcher, as_uid):
    L, v = launcher, launcher.vault
    L.agent("srv-a", "pa", UID_A)
    v.agent("plain", "pa", UID_A)
    for uid, agent in ((UID_B, "srv-a"), (UID_A, "plain"), (UID_A, "nosuch")):
        p = as_uid(uid, L.run_argv(agent, "true"))
        assert p.returncode == 1, p.stderr
        # one answer for all three: no other uid's agent names are told
        assert f"no launched agent '{agent}' for uid {uid}" in p.stderr, p.stderr
    v.ctl_ok("agent", "disable", "srv-a")
    p = as_uid(UID_A, L.run_argv("srv-a", "true"))
    assert p.returncode == 1 and "disabled" in p.stderr, p.stderr
    p = as_uid(UID_A, [L.build.ctl, "run", "--agent", "srv-a", "--socket", L.sock + ".missing", "--", "true"])
    assert p.returncode == 1 and "cannot reach the launch socket" in p.stderr, p.stderr
    denied = [r for r in L.rows() if r["result"] == "denied"]
    assert len(denied) >= 4, denied


def _connect(sock):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock)
    return s


def _reply(s):
    data = b""
    while len(data) < REP.size:
        chunk = s.recv(REP.size - len(data))
        if not chunk:
            break
        data += chunk
    return REP.unpack(data) if len(data) == REP.size else None


def test_malformed_oversized_and_silent_clients(launcher, as_uid):
    L, v = launcher, launcher.vault
    L.agent("srv-a", "pa", UID_A)
    va = v.give("srv-a", "pa", "stripe/a_key")
    silent = _connect(L.sock)                # says nothing
    s = _connect(L.sock)
    s.sendall(REQ.pack(0xDEADBEEF, VERSION, 5, b"srv-a"))
    rep = _reply(s)
    assert rep and rep[2] == 1 and b"malformed" in rep[3], rep
    s.close()
    s = _connect(L.sock)
    s.sendall(REQ.pack(MAGIC, VERSION, 5, b"srv-a") + b"x" * 64)
    rep = _reply(s)
    assert rep and rep[2] == 1 and b"oversized" in rep[3], rep
    s.close()
    s = _connect(L.sock)
    s.sendall(REQ.pack(MAGIC, VERSION, 3, b"../"))
    rep = _reply(s)
    assert rep and rep[2] == 1, rep
    s.close()
    # the silent client holds nothing up
    p = as_uid(UID_A, L.run_argv("srv-a", "cat", L.mount.p("stripe/a_key")), binary=True)
    assert (p.returncode, p.stdout) == (0, va), p.stderr
    # and is dropped after its deadline
    silent.settimeout(10)
    assert silent.recv(1) == b""
    silent.close()
    reasons = [r["reason"] for r in L.rows()]
    for what in ("malformed launch request", "oversized launch request", "malformed agent name",
                 "silent launch client dropped"):
        assert what in reasons, (what, reasons)


def test_many_launches_leave_no_cgroup_behind(launcher, procs):
    L = launcher
    L.agent("srv-a", "pa", UID_A)
    n, batch = 200, 50
    for start in range(0, n, batch):
        ps = [subprocess.Popen(it.uid_argv(UID_A, L.run_argv("srv-a", "true")), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=it.READER_ENV, cwd="/")
              for _ in range(batch)]
        for p in ps:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
    _wait(lambda: L.instances("srv-a") == [], timeout=15)
    rows = L.rows()
    assert sum(r["result"] == "granted" for r in rows) == n
    assert sum(r["result"] == "reaped" for r in rows) == n


def test_exec_and_run_pass_a_clean_environment(launcher, as_uid):
    L, v = launcher, launcher.vault
    L.agent("srv-a", "pa", UID_A)
    val = v.give("srv-a", "pa", "stripe/a_key")
    env_cmd = ["env"]
    base = ["env", "FOO=bar", "HOME=/tmp"]
    p = as_uid(UID_A, base + L.run_argv("srv-a", *env_cmd, opts=("--env", "KEY=stripe/a_key",
                                                               "--env-file", "KEY_FILE=stripe/a_key")))
    assert p.returncode == 0, p.stderr
    got = dict(l.split("=", 1) for l in p.stdout.splitlines())
    assert got["KEY"] == val.decode() and got["KEY_FILE"] == L.mount.p("stripe/a_key"), got
    assert "FOO" not in got and got["HOME"] == "/tmp" and "PATH" in got, got
    p = as_uid(UID_A, base + L.run_argv("srv-a", *env_cmd, opts=("--pass", "FOO")))
    assert "FOO=bar" in p.stdout.splitlines(), p.stdout
    p = as_uid(UID_A, base + L.run_argv("srv-a", *env_cmd, opts=("--inherit-env",)))
    assert "FOO=bar" in p.stdout.splitlines(), p.stdout
    # a revoked grant: CMD does not start, the error names the variable and the path
    v.revoke("srv-a", "stripe/a_key")
    for opt in ("--env", "--env-file"):
        p = as_uid(UID_A, L.run_argv("srv-a", "echo", "STARTED", opts=(opt, "KEY=stripe/a_key")))
        assert p.returncode == 1 and "STARTED" not in p.stdout, p.stdout
        assert "KEY" in p.stderr and "stripe/a_key" in p.stderr and val.decode() not in p.stderr, p.stderr


def test_a_container_cannot_launch(launcher, as_uid):
    """A sandbox with its own pid and user namespaces that reaches the
    socket (through a bind of /run/scopehold, say) is not moved out of its
    cgroup into an agent's."""
    L = launcher
    L.agent("srv-a", "pa", UID_A)
    bwrap = ["bwrap", "--unshare-user", "--unshare-pid", "--die-with-parent", "--dev-bind", "/", "/"]
    probe = as_uid(UID_A, bwrap + ["true"])
    if probe.returncode != 0:
        pytest.skip(f"bwrap cannot make a user namespace here as uid {UID_A}: {probe.stderr.strip()}")
    p = as_uid(UID_A, bwrap + L.run_argv("srv-a", "true"))
    assert p.returncode == 1 and "host's pid and user namespaces" in p.stderr, p.stderr
    assert L.instances("srv-a") == []
    assert any("namespace of its own" in r["reason"] for r in L.rows() if r["result"] == "denied")


def test_a_flood_of_bad_clients_adds_few_rows(launcher):
    """Refused launch clients take tokens of their uid's audit bucket like
    refused lookups: 300 malformed requests, a few dozen rows and one summary
    that counts the rest."""
    L = launcher
    for _ in range(300):
        s = _connect(L.sock)
        s.sendall(REQ.pack(0xDEADBEEF, VERSION, 1, b"x"))
        _reply(s)
        s.close()
    def counted():
        rows = L.vault.audit_rows()
        bad = [r for r in rows if r.get("event") == "launch" and r.get("reason") == "malformed launch request"]
        limited = [r for r in rows if r.get("event") == "audit.limited" and r.get("uid") == 0]
        return bad, sum(r["count"] for r in bad) + sum(r["count"] for r in limited)

    # the summary of the last second is written once that second is over
    deadline = time.monotonic() + 10
    while counted()[1] < 300 and time.monotonic() < deadline:
        time.sleep(0.2)
    bad, total = counted()
    assert 0 < len(bad) <= 100, len(bad)
    assert total >= 300, (len(bad), total)


def test_a_labelled_agent_cannot_launch_as_another(launcher, cgroups, as_uid):
    """A service in its unit's root-owned cgroup is agent svc by that label;
    the launcher would otherwise move it out into agent srv-a of its uid."""
    L, v = launcher, launcher.vault
    L.agent("srv-a", "pa", UID_A)
    v.give("srv-a", "pa", "stripe/a_key")
    cg = cgroups.make("svc")
    v.agent("svc", "ps", UID_A, cgroup=cg.name)
    p = as_uid(UID_A, L.run_argv("srv-a", "cat", L.mount.p("stripe/a_key")), cgroup=cg)
    assert p.returncode == 1 and "already an agent by its labels" in p.stderr, p.stderr
    assert L.instances("srv-a") == []
    assert any("caller is agent 'svc'" in r["reason"] for r in L.rows() if r["result"] == "denied")


def test_one_uid_holds_at_most_four_slots(launcher):
    L = launcher
    held = [_connect(L.sock) for _ in range(4)]   # silent, each holding a slot
    try:
        time.sleep(0.2)                           # accepted by now
        s = _connect(L.sock)
        rep = _reply(s)
        s.close()
        assert rep and rep[2] == 3 and b"too many" in rep[3], rep   # SH_LAUNCH_BUSY
    finally:
        for h in held:
            h.close()
