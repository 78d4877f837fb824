"""test_containers.py - containers that bind the mount's parent (issue 10,
item 4): bubblewrap sandboxes in a user and pid namespace of their own and
podman containers, each known by the host uid it runs as or by its cgroup,
reading their own agent's key and no other; and a sandbox that keeps
running while the daemon is restarted (SIGTERM, SIGKILL): its reads fail
for the gap, then work again without restarting the sandbox.

The recipe (README "Use with containers"): PARENT is made a bind mount of
itself with a peer group of its own (`mount --bind P P; mount --make-private
P; mount --make-shared P`), scopeholdfs is mounted at PARENT/secrets, and the
container binds PARENT with slave propagation, so every later mount at
PARENT/secrets reaches it. A container that binds the mount point itself
keeps a snapshot of the first mount: ENOTCONN forever after a restart.

Every mount made here (the parent's bind mount too), every process and
every cgroup (cgroup v1 hierarchies included, where podman makes them) is
removed at teardown, also when a test fails."""
import os
import shutil
import signal
import struct
import subprocess
import tarfile
import time
import types
import warnings

import pytest

import scopehold_it as it
from scopehold_it import ENOENT_TEXT, UID_A, UID_B, UID_C
from test_identity import parse_whoami

pytestmark = [pytest.mark.identity, pytest.mark.mounted]

# Host uids of the podman containers: --user, and the target of --uidmap
# (outside every /etc/subuid range, as the README advises).
UID_CTR, UID_MAPPED = 64011, 64012

POLL_TIMEOUT = 10.0    # s for a condition polled for (a new mount, an emptied cgroup)


def sh(*argv, check=True):
    """Run a root command of the recipe; CompletedProcess (text)."""
    p = subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60, env=it.READER_ENV)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {p.returncode}: {p.stderr.strip()}")
    return p


def poll(fn, what, timeout=POLL_TIMEOUT):
    """fn() until it returns something true (bounded); that value."""
    end = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def propagation(path, pid="self"):
    """The optional fields (shared:N, master:N) of the top mount at path in
    pid's mount namespace, or None."""
    path = os.path.realpath(path)
    found = None
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            left = line.partition(" - ")[0].split()
            if it._unescape_mountinfo(left[4]) == path:
                found = left[6:]
    return found


def fuse_mount_ids(path):
    """The mount ids of the scopehold mounts at path (a dead one included)."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return {line.split()[0] for line in f
                if line.partition(" - ")[2].startswith("fuse.scopehold ")
                and it._unescape_mountinfo(line.split()[4]) == path}


def fuse_mount_dev(path):
    """(mount id, major:minor) of the newest scopehold mount at path."""
    path = os.path.realpath(path)
    found = (None, None)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.startswith("fuse.scopehold ") and it._unescape_mountinfo(left.split()[4]) == path:
                found = (left.split()[0], left.split()[2])
    return found


def holders_of(mnt):
    """What keeps the scopehold mount mnt = (mount id, major:minor) alive
    (so that its daemon does not exit after our unmount): ([the mount
    namespaces with a copy of it, one pid and command line each], [the
    descriptors open on it, found by /proc/PID/fdinfo, never touching the
    files])."""
    mnt_id, dev = mnt
    seen, files = {}, []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f"pid {d}: {f.read().replace(bytes(1), b' ').decode(errors='replace')[:120]}"
            for n in os.listdir(f"/proc/{d}/fdinfo"):
                try:
                    with open(f"/proc/{d}/fdinfo/{n}") as f:
                        if f"mnt_id:\t{mnt_id}\n" in f.read():
                            files.append(f"{cmd} (fd {n})")
                except OSError:
                    pass
            ns = os.readlink(f"/proc/{d}/ns/mnt")
            if ns in seen:
                continue
            with open(f"/proc/{d}/mountinfo") as f:
                if any(line.split()[2] == dev and " - fuse.scopehold " in line for line in f):
                    seen[ns] = cmd
        except OSError:
            continue
    return list(seen.values()), files


def holders_text(mnt):
    spaces, files = holders_of(mnt)
    return (f"mount namespaces holding device {mnt[1]}: {spaces or 'none'}; "
            f"descriptors open on mount {mnt[0]}: {files or 'none'}")


# ---- the shared parent and the daemon serving PARENT/secrets ----------------

class SharedParent:
    """A 0755 directory made a bind mount of itself, in a shared peer group
    of its own; close() unmounts it (lazily only when it is busy, which is
    then a problem)."""

    def __init__(self, workdir):
        self.path = it.make_dir(workdir, "run-", 0o755)
        self.bound = False
        try:
            sh("mount", "--bind", self.path, self.path)
            self.bound = True
            sh("mount", "--make-private", self.path)
            sh("mount", "--make-shared", self.path)
        except BaseException:
            self.close()
            raise

    def close(self):
        problems = []
        if self.bound and it.is_mounted(self.path, None):
            if sh("umount", self.path, check=False).returncode != 0:
                problems.append(f"the bind mount {self.path} was busy at teardown")
                sh("umount", "-l", self.path, check=False)
        if it.is_mounted(self.path, None):
            problems.append(f"{self.path} is still mounted")
        self.bound = False
        return problems


class Served:
    """scopeholdfs serving vault at PARENT/secrets; start() again after the
    daemon was ended starts a new one at the same place. Every daemon is
    checked at close like mount_factory's (sanitizer lines, values in its
    stderr, an exit status after the unmount)."""

    def __init__(self, build, vault, parent):
        self.build, self.vault, self.parent = build, vault, parent
        self.path = os.path.join(parent.path, "secrets")
        os.mkdir(self.path, 0o755)
        self.mounts = []
        self.start()

    @property
    def daemon(self):
        return self.mounts[-1]

    def start(self):
        """A new daemon, once its own mount is at the path: a dead mount of an
        earlier one there must not count as the new one (scopehold_it.Mount
        waits for any scopehold mount at the path)."""
        old = fuse_mount_ids(self.path)
        m = it.Mount(self.build, self.vault, self.path)
        self.mounts.append(m)

        def live():
            try:
                os.stat(os.path.join(self.path, ".scopehold"))
                return True
            except OSError:
                return False

        def mounted():
            if m.proc.poll() is not None:
                raise AssertionError(f"scopeholdfs exited with {m.proc.returncode}:\n{m.stderr()}")
            # a new mount id, or (the new daemon cleared the dead mount, and
            # its id may be handed out again) a mount there that answers
            return (fuse_mount_ids(self.path) - old) or (fuse_mount_ids(self.path) and live())
        poll(mounted, f"a new mount at {self.path}", timeout=it.MOUNT_TIMEOUT)
        m.mnt = fuse_mount_dev(self.path)
        return m

    def p(self, *parts):
        return os.path.join(self.path, *parts)

    def restart(self, sig, in_gap):
        """End the daemon with sig, call in_gap(errno name a read in a
        container should now fail with) while it is down, start a new one."""
        self.daemon.kill(sig)
        if sig == signal.SIGTERM:
            # the daemon unmounted itself: PARENT/secrets is an empty directory
            assert not it.is_mounted(self.path, None)
            in_gap("ENOENT")
        else:
            # the mount stays, dead, until the next scopeholdfs clears it
            assert it.is_mounted(self.path)
            in_gap("ENOTCONN")
        self.start()

    @staticmethod
    def _pinned(m, diag):
        """The daemon m is still serving after our unmount. When only a
        mount namespace that a process outside this test made while the
        mount was there (`unshare -m --propagation private` elsewhere on
        the machine) still holds a copy, the mount is not gone and the
        daemon is right to serve it: end it by its pid with SIGTERM and
        warn. Anything else (a descriptor open on it, no holder at all)
        is a problem of the test or the daemon."""
        spaces, files = holders_of(m.mnt)
        if spaces and not files:
            warnings.warn(f"scopeholdfs {m.pid} kept serving after the unmount because another mount "
                          f"namespace holds a copy ({holders_text(m.mnt)}); ended with SIGTERM")
            os.kill(m.pid, signal.SIGTERM)
            m.proc.wait(timeout=it.STOP_TIMEOUT)
        else:
            diag.append("after the unmount: " + holders_text(m.mnt))

    def close(self):
        problems = []
        for m in reversed(self.mounts):   # the newest one removes the mountpoint
            diag = []
            if m.proc.poll() is None and it.is_mounted(self.path):
                r = sh("fusermount3", "-u", self.path, check=False)
                if r.returncode != 0:
                    diag.append(f"fusermount3 -u: {r.stderr.strip()}; " + holders_text(m.mnt))
                    sh("fusermount3", "-uz", self.path, check=False)
                try:
                    poll(lambda: m.proc.poll() is not None, "the daemon to exit", timeout=it.STOP_TIMEOUT)
                except AssertionError:
                    self._pinned(m, diag)
            found = m.close()
            problems += found + (diag if found else [])
        return problems


@pytest.fixture
def parent(privileged, workdir):
    if not shutil.which("mount") or not shutil.which("umount"):
        pytest.skip("mount(8) is not installed")
    sp = SharedParent(workdir)
    yield sp
    problems = sp.close()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def served(build, vault, parent, procs):
    s = Served(build, vault, parent)
    yield s
    procs.close()           # sandboxes first: they hold slave copies of the mount
    problems = s.close()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# ---- bubblewrap -------------------------------------------------------------

def bwrap_argv(bind):
    """bwrap with a new user and pid namespace, /usr read-only, and `bind`
    bound at the same path (bwrap's binds are slaves of the host's)."""
    argv = ["bwrap", "--unshare-user", "--unshare-pid", "--die-with-parent", "--ro-bind", "/usr", "/usr"]
    for d in ("/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        if os.path.islink(d):
            argv += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            argv += ["--ro-bind", d, d]
    return argv + ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--bind", bind, bind, "--"]


class Sandbox(it.Holder):
    """A holder (scopehold_it.HOLDER_SRC: cat, ls, one process) inside bwrap,
    bwrap itself started as uid (so the sandbox's uid is that host uid) and,
    with cgroup, moved into that cgroup first. .pid is bwrap's, ended by
    the procs fixture."""

    def __init__(self, procs, uid, bind, cgroup=None):
        inner = bwrap_argv(bind) + [it.PYTHON, "-I", "-c", it.HOLDER_SRC, "-"]
        self.procs = procs
        self.p = procs.add(subprocess.Popen(it.uid_argv(uid, inner, cgroup), stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            env=it.READER_ENV, cwd="/"))
        self.inner_pid = self._reply()["pid"]
        self.opened = False

    def host_pid(self):
        """The host pid of the holder (NSpid: HOST INNER), a descendant of bwrap."""
        for pid in it.descendants(self.pid):
            try:
                with open(f"/proc/{pid}/status") as f:
                    nspid = next(line.split()[1:] for line in f if line.startswith("NSpid:"))
            except (OSError, StopIteration):
                continue
            if nspid[-1] == str(self.inner_pid) and len(nspid) == 2:
                return pid
        raise AssertionError("the sandbox's holder is not in a pid namespace of its own")

    def whoami(self, served):
        data, err = self.cat(served.p(".scopehold/whoami"))
        assert err is None, err
        return parse_whoami(data.decode())


@pytest.fixture
def sandbox(privileged, served, procs):
    """sandbox(uid, bind, cgroup=None) -> Sandbox. At teardown, before the
    mount is closed, each is asked to exit (bwrap then exits once its pid
    namespace is empty; one that does not is ended by pid), and its host
    processes must be gone."""
    if not shutil.which("bwrap"):
        pytest.skip("bwrap is not installed (Debian: bubblewrap)")
    probe = it.run_as(UID_A, bwrap_argv("/tmp") + ["true"])
    if probe.returncode != 0:
        pytest.skip(f"bwrap cannot make a user namespace here as uid {UID_A}: {probe.stderr.strip()}")
    made = []

    def make(uid, bind, cgroup=None):
        made.append(Sandbox(procs, uid, bind, cgroup))
        return made[-1]
    yield make
    inside = [pid for box in made for pid in it.descendants(box.pid)]
    for box in made:
        box.close()
    poll(lambda: not [pid for pid in inside if it.proc_alive(pid)], "the sandboxes' processes to end")


@pytest.fixture
def boxes(vault, cgroups):
    """Agents: box-a (uid A), box-b (uid B), box-cg (uid C in cgroup .../box),
    uid-c (uid C, no label); each with a key of its own."""
    w = types.SimpleNamespace(vault=vault, cg=cgroups.make("box"))
    vault.agent("box-a", "pa", UID_A)
    vault.agent("box-b", "pb", UID_B)
    vault.agent("box-cg", "pcg", UID_C, cgroup=w.cg.name)
    vault.agent("uid-c", "pc", UID_C)
    w.key = {"box-a": "stripe/box_a", "box-b": "github/box_b", "box-cg": "openai/box_cg", "uid-c": "slack/uid_c"}
    w.value = {pk: vault.give(agent, proj, pk)
               for (agent, pk), proj in zip(w.key.items(), ("pa", "pb", "pcg", "pc"))}
    return w


def assert_reads_only(box, served, boxes, agent):
    """box reads agent's key (and lists only its provider), and no other key."""
    mine = boxes.key[agent]
    assert box.ls(served.path) == ([mine.split("/")[0]], None), agent
    assert box.cat(served.p(mine)) == (boxes.value[mine], None), agent
    for other, pk in boxes.key.items():
        if other != agent:
            assert box.cat(served.p(pk)) == (None, "ENOENT"), f"{agent}'s sandbox read {pk}"


def test_bwrap_sandbox_of_its_own_uid_reads_its_key(boxes, served, sandbox):
    vault = boxes.vault
    for agent, uid in (("box-a", UID_A), ("box-b", UID_B)):
        box = sandbox(uid, served.parent.path)
        host = box.host_pid()
        # really in a user and a pid namespace of its own
        for ns in ("user", "pid"):
            assert os.readlink(f"/proc/{host}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
        assert host != box.inner_pid
        assert_reads_only(box, served, boxes, agent)
        w = box.whoami(served)
        assert (w["agent"], w["uid"], w["tgid"]) == (agent, str(uid), str(host)), w
        j = vault.ctl_json("whoami", host)
        assert (j["agent"], j["uid"]) == (agent, uid), j
        rows = it.granted_opens(vault.audit_rows(), path=boxes.key[agent])
        assert rows and (rows[-1]["agent"], rows[-1]["uid"], rows[-1]["tgid"]) == (agent, uid, host), rows[-1:]
        box.close()


def test_bwrap_sandbox_identified_by_cgroup_reads_its_key(boxes, served, sandbox):
    """Two sandboxes of uid C: the one whose bwrap was put into the cgroup
    is box-cg, the other is uid-c."""
    in_cg = sandbox(UID_C, served.parent.path, cgroup=boxes.cg)
    plain = sandbox(UID_C, served.parent.path)
    assert it.own_cgroup_path(in_cg.host_pid()) == boxes.cg.name
    assert_reads_only(in_cg, served, boxes, "box-cg")
    assert_reads_only(plain, served, boxes, "uid-c")
    w = in_cg.whoami(served)
    assert (w["agent"], w["cgroup"]) == ("box-cg", boxes.cg.name), w
    rows = it.granted_opens(boxes.vault.audit_rows(), agent="box-cg")
    assert rows and rows[-1]["cgroup"] == boxes.cg.name and rows[-1]["tgid"] == in_cg.host_pid(), rows[-1:]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_bwrap_sandbox_survives_a_daemon_restart(boxes, served, sandbox, sig):
    """The daemon is ended and started again while two sandboxes run: one
    binds the parent (the recipe), one the mount point itself (a snapshot).
    Reads fail in both during the gap; afterwards the first reads again,
    the same processes, never restarted; the snapshot stays dead."""
    pk = boxes.key["box-a"]
    box = sandbox(UID_A, served.parent.path)
    snap = sandbox(UID_A, served.path)
    for b in (box, snap):
        assert b.cat(served.p(pk)) == (boxes.value[pk], None)
    before = (box.host_pid(), snap.host_pid())

    def in_gap(gap):
        assert box.cat(served.p(pk)) == (None, gap)
        assert snap.cat(served.p(pk))[1] in (gap, "ENOTCONN")
    served.restart(sig, in_gap)
    # the new mount reached the running sandbox through the shared parent;
    # the first read after the mount is there must already work
    assert box.cat(served.p(pk)) == (boxes.value[pk], None)
    assert_reads_only(box, served, boxes, "box-a")
    assert box.p.poll() is None and (box.host_pid(), snap.host_pid()) == before
    # the snapshot of the old mount never comes back
    assert snap.cat(served.p(pk)) == (None, "ENOTCONN")
    # and a rotation made now is what the sandbox reads next
    new = boxes.vault.put(pk, it.new_value("rotated_"))
    assert box.cat(served.p(pk)) == (new, None)
    rows = it.granted_opens(boxes.vault.audit_rows(), path=pk, agent="box-a")
    assert rows[-1]["tgid"] == before[0], rows[-1]
    # why: the host's PARENT is a peer group of its own, the sandbox's a slave of it
    peer = [f for f in propagation(served.parent.path) if f.startswith("shared:")]
    assert peer and f"master:{peer[0][7:]}" in propagation(served.parent.path, before[0]), peer


# ---- podman -----------------------------------------------------------------

BUSYBOX = "/bin/busybox"      # Debian's busybox-static
IMAGE = "localhost/scopehold-busybox:it"

# What a container runs: its uid and cgroup, then for each path either
# "ok PATH VALUE" or "err PATH MESSAGE", one line each.
CONTAINER_SCRIPT = ('echo "uid $(id -u)"; echo "cgroup $(grep ^0:: /proc/self/cgroup)"; '
                    'for f; do if v=$(cat "$f" 2>&1); then echo "ok $f $v"; else echo "err $f $v"; fi; done')


def static_elf(path):
    """True when path is an ELF executable without an interpreter (static)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:5] != b"\x7fELF\x02":
            return False
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))  # PT_INTERP


def subid_ranges(path):
    """[(start, count)] of an /etc/subuid-style file ([] when it is missing)."""
    try:
        with open(path) as f:
            rows = [line.strip().split(":") for line in f if line.count(":") == 2]
    except FileNotFoundError:
        return []
    return [(int(r[1]), int(r[2])) for r in rows if r[1].isdigit() and r[2].isdigit()]


class Podman:
    """podman with storage of its own in a private directory (vfs: no
    mounts on the host), runc, cgroupfs, and an image imported from a
    busybox rootfs. run() starts one container with --rm and waits."""

    def __init__(self, directory):
        self.dir = directory
        self.started = []
        self.run_dir = it.make_dir("/tmp", "scopehold-pm-", 0o700)   # podman: at most 50 characters
        self.base = ["podman", "--root", os.path.join(directory, "root"),
                     "--runroot", os.path.join(self.run_dir, "run"), "--tmpdir", os.path.join(self.run_dir, "tmp"),
                     "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                     "--runtime", "runc"]
        try:
            self._import()
        except BaseException:
            self.close()
            raise

    def _import(self):
        """IMAGE: a rootfs of busybox and a few of its applets, imported."""
        rootfs = os.path.join(self.dir, "rootfs")
        for d in ("bin", "proc", "sys", "dev", "etc", "tmp"):
            os.makedirs(os.path.join(rootfs, d))
        shutil.copy2(BUSYBOX, os.path.join(rootfs, "bin", "busybox"))
        for name in ("sh", "cat", "id", "grep", "ls", "sleep"):
            os.symlink("busybox", os.path.join(rootfs, "bin", name))
        tar = os.path.join(self.dir, "busybox.tar")
        with tarfile.open(tar, "w") as t:
            t.add(rootfs, arcname=".")
        self.podman("import", tar, IMAGE)

    def podman(self, *args, timeout=60):
        p = subprocess.run(self.base + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout, env=it.READER_ENV, cwd="/")
        assert p.returncode == 0, f"podman {' '.join(args[:1])} exited {p.returncode}: {p.stderr.strip()}"
        return p

    def _opts(self, parent, opts):
        return ["--pull", "never", "--network", "none",
                "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                "-v", f"{parent}:{parent}:ro,rslave", *opts, IMAGE]

    def run(self, parent, opts, paths):
        """Run CONTAINER_SCRIPT in a new container (--rm) with opts, PARENT
        bound ro,rslave: what it saw (see saw())."""
        return saw(self.podman("run", "--rm", *self._opts(parent, opts), "sh", "-c", CONTAINER_SCRIPT,
                               "sh", *paths).stdout)

    def start(self, parent, opts):
        """A detached container that sleeps; its id (removed at close)."""
        out = self.podman("run", "--detach", *self._opts(parent, opts), "sleep", "600").stdout
        cid = out.split()[-1]
        self.started.append(cid)
        return cid

    def exec(self, cid, paths):
        """CONTAINER_SCRIPT run in the running container cid: what it saw."""
        return saw(self.podman("exec", cid, "sh", "-c", CONTAINER_SCRIPT, "sh", *paths).stdout)

    def pid(self, cid):
        """The host pid of the container's first process."""
        return int(self.podman("inspect", "--format", "{{.State.Pid}}", cid).stdout)

    def close(self):
        """Remove the containers started (podman ends their processes) and
        the storage."""
        for cid in self.started:
            subprocess.run(self.base + ["rm", "--force", "--time", "0", cid], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, env=it.READER_ENV)
        it.rm_tree(self.run_dir)
        it.rm_tree(self.dir)


def saw(stdout):
    """What CONTAINER_SCRIPT printed: .uid, .cgroup, .read {path: (value
    bytes or None, error message)}, .lines."""
    w = types.SimpleNamespace(uid=None, cgroup=None, read={}, lines=stdout.splitlines())
    for line in w.lines:
        tag, _, rest = line.partition(" ")
        if tag == "uid":
            w.uid = int(rest)
        elif tag == "cgroup":
            w.cgroup = rest[3:]
        elif tag in ("ok", "err"):
            path, _, v = rest.partition(" ")
            w.read[path] = (v.encode(), "") if tag == "ok" else (None, v)
    return w


def v1_hierarchies():
    """Mount points of the cgroup v1 hierarchies (hybrid hosts)."""
    return [mp for mp, t in it.mounts() if t == "cgroup"]


@pytest.fixture
def podman(privileged, workdir, cgroups):
    """A Podman runner (ask for it after `served`: its containers are
    removed before the mount is); at teardown, besides the storage, the directories
    podman's cgroupfs manager made under the test's cgroup in the cgroup v1
    hierarchies (the conmon and container groups), once they are empty."""
    for prog in ("podman", "runc"):
        if not shutil.which(prog):
            pytest.skip(f"{prog} is not installed (Debian: podman runc busybox-static; scripts/setup)")
    if not os.path.exists(BUSYBOX) or not static_elf(BUSYBOX):
        pytest.skip(f"{BUSYBOX} is not a static busybox (Debian: busybox-static)")
    pm = Podman(it.make_dir(workdir, "pm-", 0o700))
    yield pm
    pm.close()
    problems = []
    for top in [os.path.join(h, cgroups.top.rel) for h in v1_hierarchies()]:
        for d, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            try:
                poll(lambda: rmdir_done(d), f"cgroup {d} to empty")
            except AssertionError as e:
                problems.append(str(e))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def rmdir_done(d):
    """rmdir d; True when it is gone, False while it is busy (conmon exiting)."""
    try:
        os.rmdir(d)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


@pytest.fixture
def ctrs(vault, cgroups):
    """Agents for containers: ctr-cg (uid CTR in the subtree of cgroup
    .../ctr, the --cgroup-parent), uid-ctr (uid CTR, no label), ctr-map
    (uid MAPPED, the host uid of the container's root under --uidmap)."""
    w = types.SimpleNamespace(vault=vault, cg=cgroups.make("ctr"), other=cgroups.make("other"))
    vault.agent("ctr-cg", "pcg", UID_CTR, cgroup=w.cg.name + "/**")
    vault.agent("uid-ctr", "pu", UID_CTR)
    vault.agent("ctr-map", "pm", UID_MAPPED)
    w.key = {"ctr-cg": "stripe/ctr_cg", "uid-ctr": "github/uid_ctr", "ctr-map": "openai/ctr_map"}
    w.value = {pk: vault.give(agent, proj, pk)
               for (agent, pk), proj in zip(w.key.items(), ("pcg", "pu", "pm"))}
    return w


def assert_container_read_only(saw, served, ctrs, agent):
    for other, pk in ctrs.key.items():
        value, msg = saw.read[served.p(pk)]
        if other == agent:
            assert (value, msg) == (ctrs.value[pk], ""), (agent, saw.lines)
        else:
            assert value is None and ENOENT_TEXT in msg, f"{agent}'s container read {pk}: {saw.lines}"


def test_podman_container_identified_by_cgroup_parent(ctrs, served, podman):
    """Two containers of one host uid (--user): the one under
    --cgroup-parent .../ctr is ctr-cg, the one under .../other is uid-ctr."""
    paths = [served.p(pk) for pk in ctrs.key.values()]
    user = ["--user", f"{UID_CTR}:{UID_CTR}"]
    saw = podman.run(served.parent.path, user + ["--cgroup-parent", ctrs.cg.name], paths)
    assert saw.uid == UID_CTR and saw.cgroup.startswith(ctrs.cg.name + "/libpod-"), saw.lines
    assert_container_read_only(saw, served, ctrs, "ctr-cg")
    rows = it.granted_opens(ctrs.vault.audit_rows(), agent="ctr-cg")
    assert rows and rows[-1]["cgroup"] == saw.cgroup and rows[-1]["uid"] == UID_CTR, rows[-1:]
    saw = podman.run(served.parent.path, user + ["--cgroup-parent", ctrs.other.name], paths)
    assert saw.cgroup.startswith(ctrs.other.name + "/libpod-"), saw.lines
    assert_container_read_only(saw, served, ctrs, "uid-ctr")


def test_podman_container_identified_by_uidmap(ctrs, served, podman):
    """The container's root is host uid MAPPED (--uidmap 0:MAPPED:1), a uid
    no /etc/subuid range delegates to a user."""
    for f in ("/etc/subuid", "/etc/subgid"):
        assert not [r for r in subid_ranges(f) if r[0] <= UID_MAPPED < r[0] + r[1]], f
    paths = [served.p(pk) for pk in ctrs.key.values()]
    idmap = ["--uidmap", f"0:{UID_MAPPED}:1", "--gidmap", f"0:{UID_MAPPED}:1"]
    saw = podman.run(served.parent.path, idmap + ["--cgroup-parent", ctrs.other.name], paths)
    assert saw.uid == 0, saw.lines         # root inside
    assert_container_read_only(saw, served, ctrs, "ctr-map")
    rows = it.granted_opens(ctrs.vault.audit_rows(), agent="ctr-map")
    assert rows and rows[-1]["uid"] == UID_MAPPED, rows[-1:]


def test_podman_container_survives_a_daemon_restart(ctrs, served, podman):
    """A running container (--cgroup-parent, --user): after SIGTERM and
    after SIGKILL of the daemon its reads fail, then work again in the same
    container once a new daemon has mounted."""
    pk = ctrs.key["ctr-cg"]
    cid = podman.start(served.parent.path, ["--user", f"{UID_CTR}:{UID_CTR}", "--cgroup-parent", ctrs.cg.name])
    first = podman.pid(cid)
    assert podman.exec(cid, [served.p(pk)]).read[served.p(pk)] == (ctrs.value[pk], "")
    texts = {"ENOENT": ENOENT_TEXT, "ENOTCONN": it.ENOTCONN_TEXT}

    def in_gap(gap):
        value, msg = podman.exec(cid, [served.p(pk)]).read[served.p(pk)]
        assert value is None and texts[gap] in msg, msg
    for sig in (signal.SIGTERM, signal.SIGKILL):
        served.restart(sig, in_gap)
        got = podman.exec(cid, [served.p(pk)])
        assert got.read[served.p(pk)] == (ctrs.value[pk], ""), (sig, got.lines)
        assert_container_read_only(podman.exec(cid, [served.p(k) for k in ctrs.key.values()]), served, ctrs, "ctr-cg")
        assert podman.pid(cid) == first
    # the submount is read-only inside too (its own ro, not the -v's)
    out = podman.podman("exec", cid, "sh", "-c", 'echo x 2>&1 > "$0" || echo "refused"', served.p(pk)).stdout
    assert "Read-only file system" in out and "refused" in out, out
