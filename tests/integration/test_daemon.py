"""test_daemon.py - scopeholdfs run as a daemon (issue 8; issue 16 item 14):
the unit's mount is the host's, the mountpoint checks (live, missing, not a
directory, not empty, dead after kill -9), signals (HUP reloads, USR1/USR2/
PIPE ignored, TERM/INT unmount and exit 0), logging (syslog without -f,
repeats collapsed, [fs] log_level), the open-file limit, and an agent's
`exec` where the default config is root-only."""
import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import types

import pytest

import scopehold_it as it
from scopehold_it import UID_A

pytestmark = pytest.mark.mounted

UNIT = os.path.join(it.REPO, "scripts", "scopeholdfs.service")

# Settings with which systemd runs a service in a mount namespace of its own
# (systemd.exec(5)); MountFlags=shared does not undo their slave propagation.
NAMESPACE_SETTINGS = (
    "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "PrivateMounts", "MountFlags",
    "ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths", "ExecPaths", "NoExecPaths",
    "TemporaryFileSystem", "BindPaths", "BindReadOnlyPaths", "ProtectKernelTunables",
    "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "ProtectProc", "ProcSubset",
    "ProtectClock", "ProtectHostname", "PrivateUsers", "DynamicUser", "RootDirectory", "RootImage",
    "MountAPIVFS", "LogNamespace", "NetworkNamespacePath", "PrivateNetwork", "PrivateIPC",
    "ReadOnlyDirectories", "ReadWriteDirectories", "InaccessibleDirectories", "JoinsNamespaceOf",
)


def unit_settings():
    """[(key, value)] of the unit file, comments left out."""
    out = []
    with open(UNIT) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", ";", "[")) and "=" in line:
                k, _, v = line.partition("=")
                out.append((k.strip(), v.strip()))
    return out


def namespace_settings():
    return [(k, v) for k, v in unit_settings() if k in NAMESPACE_SETTINGS and v.lower() not in ("", "no", "false")]


def wrapped(build, workdir, name, prefix):
    """A Build whose scopeholdfs is `prefix... REAL-scopeholdfs "$@"`, exec'd
    (same pid), for it.Mount."""
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec " + " ".join(prefix) + f" '{build.fs}' \"$@\"\n")
    os.chmod(path, 0o755)
    return types.SimpleNamespace(fs=path, ctl=build.ctl, dir=build.dir)


class Mounts:
    """Mounts a test starts at paths of its own choice; closed at teardown."""

    def __init__(self, build, vault):
        self.build, self.vault, self.made = build, vault, []

    def start(self, path, build=None, **kw):
        m = it.Mount(build or self.build, self.vault, path, **kw)
        self.made.append(m)
        return m

    def close(self):
        problems = []
        for m in reversed(self.made):
            problems += m.close()
        return problems


@pytest.fixture
def mounts(privileged, build, vault, procs):
    ms = Mounts(build, vault)
    yield ms
    procs.close()
    problems = ms.close()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def run_fs(build, vault, *args, prefix=(), timeout=it.MOUNT_TIMEOUT):
    """Run scopeholdfs -f ARGS that must refuse to start: (rc, stderr).
    Should it mount after all, it is unmounted and the test fails."""
    argv = list(prefix) + [build.fs, "-f", f"--db={vault.db}", f"--key-file={vault.key}", "--launch-socket=none"] + list(args)
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={**it.READER_ENV}, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        it.stop_pid(p.pid)
        p.communicate()
        if args and os.path.isabs(args[-1]):
            it.force_unmount(args[-1])
        pytest.fail(f"scopeholdfs {' '.join(args)} did not refuse to start: it kept running")
    return p.returncode, it._decode(err)


def lines(text):
    return [ln for ln in text.splitlines() if ln.strip()]


def wait_for(pred, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def wait_line(m, text, count=1):
    wait_for(lambda: m.stderr().count(text) >= count, f"{text!r} in the daemon's stderr:\n{m.stderr()}")


def stop_and_wait(m, sig=signal.SIGTERM):
    os.kill(m.pid, sig)
    return m.proc.wait(timeout=it.STOP_TIMEOUT * 2)


# ---- the unit ----------------------------------------------------------------

def test_unit_has_no_setting_that_gives_the_service_a_mount_namespace():
    assert namespace_settings() == [], (
        "the unit gives scopeholdfs a mount namespace of its own; its mount would be invisible on the host")
    keys = {k for k, _ in unit_settings()}
    for kept in ("NoNewPrivileges", "LimitCORE", "CapabilityBoundingSet"):
        assert kept in keys, f"hardening without a namespace stays: {kept}"


def test_unit_passes_systemd_analyze_verify(build, workdir):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (scripts/setup installs systemd)")
    d = os.path.join(workdir, "unit")
    os.mkdir(d)
    with open(UNIT) as f:
        text = f.read()
    # The built program instead of the installed one, which may be absent.
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={build.fs}", text, flags=re.M)
    path = os.path.join(d, "scopeholdfs.service")
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.run(["systemd-analyze", "verify", "--man=no", path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=120)
    own = [ln for ln in p.stdout.splitlines() if "scopeholdfs" in ln]
    assert p.returncode == 0 and own == [], p.stdout


def test_unit_mount_is_seen_by_host_processes(vault, workdir, mounts, read_as):
    """The daemon runs as the unit would: in `unshare -m --propagation slave`
    (what systemd builds for any namespace setting) when the unit has one,
    else in the host's namespace. A host process must read through it."""
    vault.agent("alpha", "pa", UID_A)
    value = vault.give("alpha", "pa", "stripe/test_key")
    prefix = ["unshare", "-m", "--propagation", "slave"] if namespace_settings() else []
    b = wrapped(vault.build, workdir, "as-the-unit", prefix) if prefix else None
    mp = it.make_dir(workdir, "mnt-", 0o755)
    m = mounts.start(mp, build=b)
    assert read_as(UID_A, m.p("stripe/test_key")) == (0, value, "")


# ---- mountpoints ---------------------------------------------------------------

def test_second_daemon_on_a_live_mount_is_refused_and_the_first_keeps_serving(vault, mount, build, read_as):
    vault.agent("alpha", "pa", UID_A)
    value = vault.give("alpha", "pa", "stripe/test_key")
    rc, err = run_fs(build, vault, mount.path)
    assert rc == 1 and len(lines(err)) == 1, (rc, err)
    assert mount.path in err and "already served" in err, err
    assert [mp for mp, _ in it.mounts() if mp == mount.path] == [mount.path], "nothing stacked"
    assert read_as(UID_A, mount.p("stripe/test_key")) == (0, value, "")


def test_missing_file_and_nonempty_mountpoints_are_refused_with_one_line(vault, build, workdir, mounts):
    missing = os.path.join(workdir, "no-such-dir")
    afile = os.path.join(workdir, "a-file")
    full = it.make_dir(workdir, "full-", 0o755)
    for p in (afile, os.path.join(full, "kept")):
        open(p, "w").close()
    for path, why in ((missing, "does not exist"), (os.path.join(missing, "sub"), "does not exist"),
                      (afile, "not a directory"), (full, "not empty")):
        rc, err = run_fs(build, vault, path)
        assert rc == 1 and len(lines(err)) == 1, (path, rc, err)
        assert path in err and why in err, (path, err)
        assert "bad mount point" not in err
    # The override: mounted over, the file hidden while mounted, back after.
    m = mounts.start(full, args=("-o", "nonempty"))
    assert os.listdir(full) == []
    assert it.force_unmount(full)
    assert m.proc.wait(timeout=it.STOP_TIMEOUT * 2) == 0
    assert os.listdir(full) == ["kept"]
    os.unlink(os.path.join(full, "kept"))


def test_restart_after_kill_9_unmounts_the_dead_mount_and_serves(vault, workdir, mounts, read_as):
    vault.agent("alpha", "pa", UID_A)
    value = vault.give("alpha", "pa", "stripe/test_key")
    mp = it.make_dir(workdir, "mnt-", 0o755)
    first = mounts.start(mp)
    assert read_as(UID_A, first.p("stripe/test_key")) == (0, value, "")
    first.kill(signal.SIGKILL)
    with pytest.raises(OSError) as e:
        os.stat(mp)
    assert e.value.errno == errno.ENOTCONN
    second = mounts.start(mp)
    wait_line(second, "serving")  # the dead mount is fuse.scopehold too: mountinfo cannot tell
    assert read_as(UID_A, second.p("stripe/test_key")) == (0, value, "")
    assert "dead ScopeHold mount" in second.stderr(), second.stderr()
    assert [p for p, _ in it.mounts() if p == mp] == [mp], "the dead mount is gone, not stacked under"


def test_the_systemd_credential_wins_over_key_file(vault, workdir, mounts, read_as):
    """LoadCredential=master.key: the credential is read even though the
    config file names a key_file (one that does not exist here)."""
    vault.agent("alpha", "pa", UID_A)
    value = vault.give("alpha", "pa", "stripe/test_key")
    cred = it.make_dir(workdir, "cred-", 0o700)
    shutil.copy2(vault.key, os.path.join(cred, "master.key"))
    os.chmod(os.path.join(cred, "master.key"), 0o400)
    ini = it.write_ini(os.path.join(vault.dir, "cred.ini"),
                       {"vault": {"key_file": os.path.join(workdir, "no-such-master.key")}})
    m = mounts.start(it.make_dir(workdir, "mnt-", 0o755), config=ini, key=False,
                     env={"CREDENTIALS_DIRECTORY": cred})
    assert read_as(UID_A, m.p("stripe/test_key")) == (0, value, "")


# ---- signals -------------------------------------------------------------------

def test_sighup_reloads_the_config_and_keeps_serving(vault, mount_factory, read_as):
    vault.agent("alpha", "pa", UID_A)
    value = vault.give("alpha", "pa", "stripe/test_key")
    cfg = it.write_ini(os.path.join(vault.dir, "hup.ini"), {"fs": {"log_level": "info"}})
    m = mount_factory(config=cfg)
    path = m.p("stripe/test_key")

    # A broken file is refused with file and line; the old settings stay.
    with open(cfg, "w") as f:
        f.write("[fs]\nlog_level = info\nno_such_key = 1\n")
    os.kill(m.pid, signal.SIGHUP)
    wait_line(m, "reload refused")
    refused = [ln for ln in m.stderr().splitlines() if "reload refused" in ln][0]
    assert cfg in refused and "line 3" in refused and "no_such_key" in refused, refused
    assert read_as(UID_A, path) == (0, value, "")

    # A good one applies: log_level = error silences the unmount line.
    it.write_ini(cfg, {"fs": {"log_level": "error"}})
    os.kill(m.pid, signal.SIGHUP)
    wait_line(m, "reloaded the configuration (log_level = error)")
    assert "changed" not in m.stderr(), "nothing that needs a restart changed"
    assert read_as(UID_A, path) == (0, value, "")
    assert it.is_mounted(m.path)
    assert stop_and_wait(m) == 0
    assert "unmounting" not in m.stderr(), m.stderr()
    assert not it.is_mounted(m.path, None)


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGUSR2, signal.SIGPIPE])
def test_usr1_usr2_pipe_neither_stop_nor_unmount(vault, mount, sig):
    os.kill(mount.pid, sig)
    # Lower-numbered pending signals are taken first: had sig killed it,
    # the exit status would say so.
    assert stop_and_wait(mount) == 0, mount.stderr()
    assert "unmounting" in mount.stderr()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_term_and_int_unmount_and_exit_0(mount, sig):
    assert stop_and_wait(mount, sig) == 0, mount.stderr()
    assert not it.is_mounted(mount.path, None)


# ---- the open-file limit (issue 16 item 14) ------------------------------------

def test_fd_limit_too_low_for_the_workers_is_refused_with_one_line(vault, build, workdir):
    mp = it.make_dir(workdir, "mnt-", 0o755)
    rc, err = run_fs(build, vault, mp, prefix=["prlimit", "--nofile=32:32", "--"])
    assert rc == 1 and len(lines(err)) == 1 and "open-file limit is 32" in err, (rc, err)
    assert not it.is_mounted(mp, None)


def test_soft_fd_limit_is_raised_to_the_hard_one(vault, workdir, mounts):
    b = wrapped(vault.build, workdir, "low-soft", ["prlimit", "--nofile=64:4096", "--"])
    m = mounts.start(it.make_dir(workdir, "mnt-", 0o755), build=b)
    with open(f"/proc/{m.pid}/limits") as f:
        row = [ln for ln in f if ln.startswith("Max open files")][0].split()
    assert row[3:5] == ["4096", "4096"], row


def test_unwinder_is_loaded_before_shutdown(mount):
    """libfuse cancels its workers at exit; glibc would dlopen libgcc_s
    then, and abort when no fd is left. (The ASan build links libgcc_s
    anyway: this fails before the fix only on a plain build.)"""
    with open(f"/proc/{mount.pid}/maps") as f:
        assert "libgcc_s" in f.read()


# ---- logging ---------------------------------------------------------------------

def test_repeated_log_lines_are_collapsed(vault, mount, read_as):
    """With the database gone every request fails and logs the same line."""
    moved = vault.db + ".away"
    os.rename(vault.db, moved)
    try:
        for _ in range(40):
            subprocess.run(["ls", mount.path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    finally:
        os.rename(moved, vault.db)
    assert stop_and_wait(mount) == 0
    text = mount.stderr()
    counts = {}
    for ln in text.splitlines():
        counts[ln] = counts.get(ln, 0) + 1
    worst = max(counts.values())
    assert worst <= 3, f"a line logged {worst} times:\n{text}"
    assert "repeated" in text, text


SYSLOG_DEV = r'''
set -e
mount -t tmpfs -o mode=0755,size=1m scopehold-test-dev /dev
mknod -m 666 /dev/null c 1 3
mknod -m 666 /dev/zero c 1 5
mknod -m 666 /dev/random c 1 8
mknod -m 666 /dev/urandom c 1 9
mknod -m 666 /dev/fuse c 10 229
ln -s "$SOCK" /dev/log
exec "$@"
'''


def test_daemon_without_f_logs_to_syslog(vault, build, workdir, privileged):
    """Without -f the daemon's stderr is /dev/null: its start, a fault of a
    request and its stop must reach syslog. It runs in a mount namespace
    whose /dev/log is the test's socket (and whose mount the host does not
    see; readers enter that namespace)."""
    vault.agent("alpha", "pa", UID_A)
    value = vault.give("alpha", "pa", "stripe/test_key")
    sdir = it.make_dir(workdir, "syslog-", 0o755)
    sock_path = os.path.join(sdir, "log")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    os.chmod(sock_path, 0o666)
    sock.settimeout(20)
    mp = it.make_dir(workdir, "mnt-", 0o755)
    pid = None
    msgs = []

    def recv_until(text, prefix="<"):
        def found():
            return [m for m in msgs if text in m and m.startswith(prefix)]
        while not found():
            msgs.append(sock.recv(65536).decode("utf-8", "replace"))
        return found()[0]

    try:
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", SYSLOG_DEV, "sh",
                            build.fs, f"--db={vault.db}", f"--key-file={vault.key}", "--launch-socket=none", mp],
                           env={**it.READER_ENV, "SOCK": sock_path}, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert p.returncode == 0, it._decode(p.stderr)
        start = recv_until("serving")
        m = re.match(r"<(\d+)>.*?scopeholdfs\[(\d+)\]: serving '" + re.escape(mp) + "'", start)
        assert m, start
        assert int(m.group(1)) == (3 << 3) | 6, "daemon.info"
        pid = int(m.group(2))
        ns = ["nsenter", f"--mount=/proc/{pid}/ns/mnt", "--"]
        # A fault before any worker has its connection: the database is gone.
        moved = vault.db + ".away"
        os.rename(vault.db, moved)
        try:
            it.run_as(UID_A, ["ls", mp], wrap=ns)
        finally:
            os.rename(moved, vault.db)
        recv_until(vault.db, "<27>")  # daemon.err
        assert it.read_as(UID_A, os.path.join(mp, "stripe/test_key"), wrap=ns) == (0, value, "")
        os.kill(pid, signal.SIGTERM)
        recv_until("unmounting")
        wait_for(lambda: not it.proc_alive(pid), "the daemon to exit")
        pid = None
        for mm in msgs:
            assert value.decode() not in mm
    finally:
        if pid is not None and it.proc_alive(pid):
            it.stop_pid(pid)
        sock.close()


# ---- exec as an agent ----------------------------------------------------------------

# /etc/scopehold made root-only in a private mount namespace (an overlay on
# /etc), as `init` leaves it; then CMD as the agent.
ROOT_ONLY_ETC = r'''
set -e
mkdir -p "$W/upper" "$W/work"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$W/upper,workdir=$W/work" /etc
mkdir -p /etc/scopehold
printf '[fs]\nmountpoint = /nowhere\n' > /etc/scopehold/scopehold.ini
chmod 0600 /etc/scopehold/scopehold.ini
chmod 0700 /etc/scopehold
exec "$@"
'''


def test_exec_as_an_agent_needs_no_readable_config(vault, mount, workdir):
    vault.agent("alpha", "pa", UID_A)
    value = vault.give("alpha", "pa", "stripe/test_key")
    w = it.make_dir(workdir, "etc-", 0o700)
    wrap = ["env", f"W={w}", "unshare", "-m", "--propagation", "private", "sh", "-c", ROOT_ONLY_ETC, "sh"]
    ctl = vault.build.ctl
    p = it.run_as(UID_A, [ctl, "exec", "--mount", mount.path, "--env", "K=stripe/test_key", "--",
                          "printenv", "K"], wrap=wrap)
    assert (p.returncode, p.stdout, p.stderr) == (0, value.decode() + "\n", ""), p
    # Without --mount: the default mount point, said in one line.
    p = it.run_as(UID_A, [ctl, "exec", "--env", "K=stripe/test_key", "--", "printenv", "K"], wrap=wrap)
    assert p.returncode == 1, p
    first = lines(p.stderr)[0]
    assert "/etc/scopehold/scopehold.ini" in first and "/run/scopehold/secrets" in first, p.stderr
    # An explicit -c that cannot be read is still an error.
    p = it.run_as(UID_A, [ctl, "-c", "/etc/scopehold/scopehold.ini", "exec", "--mount", mount.path,
                          "--env", "K=stripe/test_key", "--", "printenv", "K"], wrap=wrap)
    assert p.returncode == 1 and "Permission denied" in p.stderr and value.decode() not in p.stdout, p


# ---- status ------------------------------------------------------------------------

def test_status_shows_stores_counts_head_and_mounts(vault, workdir, mounts):
    vault.agent("alpha", "pa", UID_A)
    vault.give("alpha", "pa", "stripe/test_key")
    mp = it.make_dir(workdir, "mnt-", 0o755)
    m = mounts.start(mp)
    cfg = it.write_ini(os.path.join(vault.dir, "status.ini"), {"fs": {"mountpoint": mp}})
    s = vault.ctl_json("status", extra=("-c", cfg))
    assert s["vault"]["path"] == vault.db and s["audit"]["path"] == vault.audit_db
    assert s["counts"] == {"providers": 1, "secrets": 1, "agents": 1, "grants": 1}
    v = vault.ctl_json("audit", "verify")
    assert s["audit"]["intact"] and s["audit"]["head_hash"] == v["last_hash"] and s["audit"]["head_id"] == v["last_id"]
    ours = [x for x in s["mounts"] if x["path"] == mp]
    assert ours == [{"path": mp, "configured": True, "state": "served"}], s["mounts"]
    text = vault.ctl_ok("status", extra=("-c", cfg)).stdout
    assert f"{mp} (configured): served" in text and v["last_hash"] in text, text
    m.kill(signal.SIGKILL)
    s = vault.ctl_json("status", extra=("-c", cfg))
    assert [x["state"] for x in s["mounts"] if x["path"] == mp] == ["dead"], s["mounts"]
