"""conftest.py - fixtures of the mounted integration tests.

Run as root: `/usr/bin/python3 -m pytest tests/integration`, with
SCOPEHOLD_BUILD naming a build directory (default: build/ under the repo).
Tests that need root and /dev/fuse skip, visibly, without them.

Fixtures (each removes what it made, also when the test fails):
  build          the programs (fails when they are not built)
  workdir        a private 0755 directory for this test (under the session's)
  vault          an initialised vault: .ctl(...), .ctl_ok(...), .put(...), ...
  mount_factory  start(config=None, args=(), ...) -> Mount; several per test
  mount          one Mount of `vault`, started with no options
  procs          long-lived processes, ended by pid at teardown
  holder         holder(uid, path, cgroup=None, wrap=()) -> Holder (fd kept open)
  as_uid, cat_as, ls_as, stat_as, read_as, py_as   readers as other uids
  cgroups        .make(name) -> Cgroup under a fresh <cg2>/scopehold-test-*/
A session check fails the run when a scopehold mount, a test cgroup or a
child process is left behind.
"""
import os
import shutil

import pytest

import scopehold_it as it


def pytest_configure(config):
    config.addinivalue_line("markers", "identity: caller identity (cgroup, exe, namespaces; issue 3)")
    config.addinivalue_line("markers", "mounted: needs root, /dev/fuse and a scopeholdfs mount")
    config.addinivalue_line("markers", "slow: takes several seconds on purpose (busy timeout)")


def _why_not_privileged():
    if os.geteuid() != 0:
        return "needs root (setpriv to other uids, allow_other mounts)"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    for prog in ("fusermount3", "setpriv"):
        if not shutil.which(prog):
            return f"{prog} is not installed"
    return None


@pytest.fixture(scope="session")
def privileged():
    why = _why_not_privileged()
    if why:
        pytest.skip(f"cannot mount here: {why}")


@pytest.fixture(scope="session")
def build():
    b = it.Build()
    missing = b.missing()
    if missing:
        pytest.fail(f"not built: {', '.join(missing)} (set SCOPEHOLD_BUILD to a build directory, "
                    f"or: meson setup build && ninja -C build)", pytrace=False)
    return b


@pytest.fixture(scope="session")
def session_dir():
    """A 0755 directory for the whole run (other uids must reach mountpoints
    in it); the check for leftovers runs when the session ends."""
    # scripts/test names a parent of its own, so that it checks for mounts
    # left behind by this run only
    # (a short name there: Unix socket paths under it must stay below 108 bytes)
    parent = os.environ.get("SCOPEHOLD_IT_TMP")
    d = it.make_dir(parent, "it-", 0o755) if parent else it.make_dir("/tmp", "scopehold-it-", 0o755)
    # a daemon with the default [launch] settings would leave these on the
    # host: the tests give every daemon --launch-socket=none or their own
    root = it.cgroup2_root()
    host_paths = ["/run/scopehold", "/run/scopehold/launch.sock"] + \
        ([os.path.join(root, "scopehold.launch")] if root else [])
    there = {p for p in host_paths if os.path.lexists(p)}
    yield d
    problems = []
    left = it.scopehold_mounts_under(d)
    for mp in left:
        it.force_unmount(mp)
    if left:
        problems.append(f"scopehold mounts left behind: {left}")
    kids = it.descendants(os.getpid())
    for pid in kids:
        it.stop_pid(pid, timeout=1)
    if kids:
        problems.append(f"processes left behind: {kids}")
    root = it.cgroup2_root()
    if root:
        cgs = [n for n in os.listdir(root) if n.startswith(f"scopehold-test-{os.getpid()}-")]
        if cgs:
            problems.append(f"cgroups left behind: {cgs}")
    for p in reversed(host_paths):
        if os.path.lexists(p) and p not in there:
            problems.append(f"a daemon left {p} on the host (start it with --launch-socket=none)")
            try:
                os.unlink(p) if not os.path.isdir(p) else os.rmdir(p)
            except OSError:
                pass
    it.rm_tree(d)
    assert not problems, "; ".join(problems)


@pytest.fixture(autouse=True)
def _no_leftover_processes():
    """Fail a test that leaves a child process behind (and end it by pid)."""
    yield
    kids = [p for p in it.descendants(os.getpid()) if it.proc_alive(p)]
    for pid in kids:
        it.stop_pid(pid, timeout=1)
    assert not kids, f"the test left processes behind: {kids}"


@pytest.fixture
def workdir(session_dir, request):
    d = it.make_dir(session_dir, request.node.name[:40].replace("/", "_") + "-", 0o755)
    yield d
    it.rm_tree(d)


@pytest.fixture
def vault(build, workdir):
    """An initialised vault in a 0700 directory."""
    d = it.make_dir(workdir, "vault-", 0o700)
    v = it.Vault(build, d)
    v.init()
    yield v
    it.rm_tree(d)


@pytest.fixture
def mount_factory(privileged, build, vault, workdir, procs):
    """start(config=None, args=(), key=None, db=None, env=None) -> Mount of
    vault at a new 0755 mountpoint. config: a path, or {section: {key:
    value}} written to an ini file in the vault's directory (-c FILE).
    Every mount is unmounted at teardown and its daemon ended by pid; a
    sanitizer report or an ERROR line in its stderr, a value in it, or a
    non-zero exit after the unmount fails the test."""
    made = []

    def start(config=None, args=(), key=None, db=None, env=None):
        mp = it.make_dir(workdir, "mnt-", 0o755)
        if isinstance(config, dict):
            config = it.write_ini(os.path.join(vault.dir, f"{os.path.basename(mp)}.ini"), config)
        m = it.Mount(build, vault, mp, config=config, args=args, key=key, db=db, env=env)
        made.append(m)
        return m

    yield start
    procs.close()  # readers holding files open would keep the mount busy
    problems = []
    for m in made:
        problems += m.close()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def mount(mount_factory):
    return mount_factory()


@pytest.fixture
def procs():
    p = it.Procs()
    yield p
    p.close()


@pytest.fixture
def holder(privileged, procs):
    """holder(uid, path, cgroup=None, wrap=()) -> Holder: a process of uid
    that opened path and holds the descriptor."""
    def make(uid, path=None, cgroup=None, wrap=()):
        return it.Holder(procs, uid, path, cgroup=cgroup, wrap=wrap)
    return make


@pytest.fixture
def as_uid(privileged):
    """as_uid(uid, argv, input=None, cgroup=None, wrap=(), binary=False) -> CompletedProcess."""
    return it.run_as


@pytest.fixture
def cat_as(privileged):
    return it.cat_as


@pytest.fixture
def read_as(privileged):
    return it.read_as


@pytest.fixture
def ls_as(privileged):
    return it.ls_as


@pytest.fixture
def stat_as(privileged):
    return it.stat_as


@pytest.fixture
def py_as(privileged):
    return it.py_as


@pytest.fixture
def cgroups(privileged, procs):
    """Cgroups of this test under <cg2>/scopehold-test-PID-RANDOM/; removed
    at teardown after the test's processes are ended."""
    root = it.cgroup2_root()
    if not root:
        pytest.skip("no cgroup2 filesystem is mounted")
    if it.own_cgroup_path() is None:
        pytest.skip("this process has no cgroup v2 (0::) line")
    cgs = it.Cgroups(root, f"scopehold-test-{os.getpid()}")
    yield cgs
    procs.close()
    problems = cgs.close()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
