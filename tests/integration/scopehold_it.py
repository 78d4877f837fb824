"""scopehold_it.py - what the mounted integration tests share: the built
programs, a vault driven through scopeholdctl, a running scopeholdfs mount,
readers run as other uids (setpriv), long-lived reader processes, cgroup v2
groups, and the checks every test applies (no sanitizer report, no value in
the daemon's output).

Standard library only. conftest.py turns these into fixtures; test files
import the helpers they need directly (`from scopehold_it import ...`).
"""
import errno
import json
import os
import re
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import types

import pytest

# Uids of the readers: no passwd entries needed.
UID_A, UID_B, UID_C = 64001, 64002, 64003

ENOENT_TEXT = "No such file or directory"
ENOTCONN_TEXT = "Transport endpoint is not connected"

# Lines of a program's stderr that fail a test.
BAD_STDERR = ("AddressSanitizer", "runtime error:", "LeakSanitizer", "ERROR")

# The environment of every reader: C messages ("No such file or directory"),
# nothing inherited from the test runner.
READER_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C", "LANG": "C"}

# The Python that runs pytest also runs the reader scripts as other uids
# (pytest runs under Debian's /usr/bin/python3, readable by everyone).
PYTHON = sys.executable if sys.executable.startswith("/usr/") else "/usr/bin/python3"

MOUNT_TIMEOUT = 10.0  # s until the mount must show in mountinfo
# s for the daemon to exit after unmount, and after SIGTERM. It takes ~15 ms;
# the bound is for LeakSanitizer's scan at exit on a loaded machine (it took
# over 5 s there), and a wait ends as soon as the daemon is gone.
STOP_TIMEOUT = 20.0

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def new_value(prefix="sk_test_"):
    """A distinctive random value: prefix + 32 random hex digits."""
    return prefix + secrets.token_hex(16)


def bad_stderr_lines(text):
    """The lines of text that show a sanitizer report or an ERROR."""
    return [line for line in text.splitlines() if any(p in line for p in BAD_STDERR)]


def _decode(b):
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else (b or "")


# ---- the programs -----------------------------------------------------------

class Build:
    """The build directory: $SCOPEHOLD_BUILD, or build/ under the repo."""

    def __init__(self):
        d = os.environ.get("SCOPEHOLD_BUILD") or os.path.join(REPO, "build")
        self.dir = os.path.abspath(d)
        self.ctl = os.path.join(self.dir, "admin", "scopeholdctl")
        self.fs = os.path.join(self.dir, "fs", "scopeholdfs")
        self.attack = os.path.join(self.dir, "tests", "attack")   # forge-exe, traced-read

    def missing(self):
        return [p for p in (self.ctl, self.fs) if not os.access(p, os.X_OK)]


# ---- mounts -----------------------------------------------------------------

def _unescape_mountinfo(s):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mounts():
    """(mount point, fstype) of every mount in this mount namespace."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            out.append((_unescape_mountinfo(fields[4]), right.split()[0]))
    return out


def is_mounted(path, fstype="fuse.scopehold"):
    path = os.path.realpath(path)
    return any(mp == path and (fstype is None or t == fstype) for mp, t in mounts())


def scopehold_mounts_under(prefix):
    prefix = os.path.realpath(prefix).rstrip("/") + "/"
    return [mp for mp, t in mounts() if t == "fuse.scopehold" and (mp + "/").startswith(prefix)]


def force_unmount(path):
    """Unmount path however possible; True when it is no longer mounted."""
    for argv in (["fusermount3", "-u", path], ["fusermount3", "-u", "-z", path], ["umount", "-l", path]):
        if not is_mounted(path, None):
            return True
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=30)
    return not is_mounted(path, None)


# ---- processes --------------------------------------------------------------

def _ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
        return int(s[s.rindex(")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def descendants(pid):
    """Pids of every live descendant of pid (walks /proc)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            pp = _ppid(int(d))
            if pp is not None:
                children.setdefault(pp, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def proc_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
        return s[s.rindex(")") + 2] != "Z"
    except (OSError, ValueError, IndexError):
        return False


def stop_pid(pid, timeout=STOP_TIMEOUT):
    """SIGTERM pid, then SIGKILL after timeout. True when it had to be killed."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return sig == signal.SIGKILL
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and proc_alive(pid):
            time.sleep(0.02)
        if not proc_alive(pid):
            return sig == signal.SIGKILL
    return True


class Procs:
    """The long-lived processes a test starts; each is ended by its pid at
    teardown (SIGTERM, then SIGKILL) and reaped."""

    def __init__(self):
        self.popens = []

    def add(self, p):
        self.popens.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            stop_pid(p.pid, timeout=2.0)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for s in (p.stdin, p.stdout, p.stderr):
            if s:
                try:
                    s.close()
                except OSError:
                    pass

    def close(self):
        while self.popens:
            self.stop(self.popens.pop())


# ---- running as another uid -------------------------------------------------

def uid_argv(uid, argv, cgroup=None, wrap=(), gid=None):
    """argv run as uid (setpriv, no supplementary groups), optionally inside
    `wrap` (unshare, bwrap: run as root, setpriv inside), after moving the
    process into the cgroup v2 directory `cgroup` (a Cgroup or a path)."""
    gid = uid if gid is None else gid
    cmd = list(wrap) + ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"] + list(argv)
    if cgroup is not None:
        cg = getattr(cgroup, "path", cgroup)
        cmd = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cg] + cmd
    return cmd


def run_as(uid, argv, *, input=None, cgroup=None, wrap=(), timeout=30, binary=False):
    """Run argv as uid and wait. CompletedProcess; stdout/stderr are text
    unless binary (stdout bytes, stderr text)."""
    if isinstance(input, str):
        input = input.encode()
    p = subprocess.run(uid_argv(uid, argv, cgroup, wrap), input=input,
                       stdin=None if input is not None else subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=READER_ENV, cwd="/",
                       timeout=timeout)
    if not binary:
        p.stdout = _decode(p.stdout)
    p.stderr = _decode(p.stderr)
    return p


def cat_as(uid, path, **kw):
    """(rc, stdout, stderr) of `cat path` as uid."""
    p = run_as(uid, ["cat", "--", path], **kw)
    return p.returncode, p.stdout, p.stderr


def read_as(uid, path, **kw):
    """(rc, stdout bytes, stderr) of `cat path` as uid."""
    p = run_as(uid, ["cat", "--", path], binary=True, **kw)
    return p.returncode, p.stdout, p.stderr


def ls_as(uid, path, **kw):
    """(rc, names, stderr) of `ls -1A path` as uid; names is a sorted list."""
    p = run_as(uid, ["ls", "-1A", "--", path], **kw)
    return p.returncode, sorted(p.stdout.split()), p.stderr


def stat_as(uid, path, **kw):
    """(rc, fields, stderr) of stat as uid; fields is a dict with type, mode
    (int), uid, gid, size (ints), or None on failure."""
    p = run_as(uid, ["stat", "-c", "%F|%a|%u|%g|%s", "--", path], **kw)
    if p.returncode != 0:
        return p.returncode, None, p.stderr
    t, mode, u, g, size = p.stdout.strip().split("|")
    return 0, {"type": t, "mode": int(mode, 8), "uid": int(u), "gid": int(g), "size": int(size)}, p.stderr


def py_as(uid, code, *args, **kw):
    """Run Python code (isolated mode) as uid with args; CompletedProcess."""
    return run_as(uid, [PYTHON, "-I", "-c", code] + [str(a) for a in args], **kw)


# A reader process that may open a file and hold the descriptor, for
# interleavings and for several requests from one process: it prints one
# JSON line per command. argv[1] is the path to open at start, or "-".
# Commands on stdin: "read" (pread the held fd from 0 to EOF), "fstat",
# "cat PATH" (open, read, close), "ls PATH", "exit".
HOLDER_SRC = r"""
import errno, json, os, sys
def say(**d):
    sys.stdout.write(json.dumps(d) + "\n"); sys.stdout.flush()
def err(e, **d):
    say(errno=e.errno, name=errno.errorcode.get(e.errno, "?"), msg=e.strerror, **d)
def slurp(fd):
    chunks, off = [], 0
    while True:
        b = os.pread(fd, 65536, off)
        if not b:
            return b"".join(chunks)
        chunks.append(b); off += len(b)
fd = None
if sys.argv[1] == "-":
    say(open="none", pid=os.getpid())
else:
    try:
        fd = os.open(sys.argv[1], os.O_RDONLY)
        say(open="ok", pid=os.getpid())
    except OSError as e:
        err(e, open="err", pid=os.getpid())
for line in sys.stdin:
    cmd, _, arg = line.rstrip("\n").partition(" ")
    try:
        if cmd in ("read", "fstat") and fd is None:
            say(error="no descriptor")
        elif cmd == "read":
            say(data=slurp(fd).hex())
        elif cmd == "fstat":
            say(size=os.fstat(fd).st_size)
        elif cmd == "cat":
            f = os.open(arg, os.O_RDONLY)
            try:
                say(data=slurp(f).hex())
            finally:
                os.close(f)
        elif cmd == "ls":
            say(names=sorted(os.listdir(arg)))
        elif cmd == "exit":
            break
        else:
            say(error="unknown command " + cmd)
    except OSError as e:
        err(e)
"""


class Holder:
    """A process of uid that opened path (unless path is None) and keeps
    the descriptor until close(). .opened is True or False; .errno and
    .errname when not. It also runs cat and ls on request, as one process."""

    def __init__(self, procs, uid, path=None, cgroup=None, wrap=()):
        self.p = procs.add(subprocess.Popen(
            uid_argv(uid, [PYTHON, "-I", "-c", HOLDER_SRC, path or "-"], cgroup, wrap),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=READER_ENV, cwd="/"))
        self.procs = procs
        first = self._reply()
        self.opened = first.get("open") == "ok"
        self.errno = first.get("errno")
        self.errname = first.get("name")
        self.inner_pid = first.get("pid")  # as seen inside its pid namespace

    @property
    def pid(self):
        return self.p.pid

    def _reply(self, timeout=20):
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        line = self.p.stdout.readline() if r else b""
        if not line:
            err = b""
            if self.p.poll() is not None:
                err = self.p.stderr.read()
            raise AssertionError(f"holder gave no answer (rc {self.p.poll()}): {_decode(err)}")
        return json.loads(line)

    def _cmd(self, cmd):
        self.p.stdin.write(cmd.encode() + b"\n")
        self.p.stdin.flush()
        return self._reply()

    def read(self):
        """The whole content read through the held descriptor (bytes)."""
        r = self._cmd("read")
        if "data" not in r:
            raise AssertionError(f"read through the held fd failed: {r}")
        return bytes.fromhex(r["data"])

    def read_result(self):
        return self._cmd("read")

    def cat(self, path):
        """(bytes, None) or (None, errno name) of reading path in this process."""
        r = self._cmd("cat " + path)
        return (bytes.fromhex(r["data"]), None) if "data" in r else (None, r.get("name"))

    def ls(self, path):
        """(names, None) or (None, errno name) of listing path in this process."""
        r = self._cmd("ls " + path)
        return (r["names"], None) if "names" in r else (None, r.get("name"))

    def fstat_size(self):
        return self._cmd("fstat")["size"]

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write(b"exit\n")
                self.p.stdin.flush()
                self.p.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.procs.stop(self.p)
        if self.p in self.procs.popens:
            self.procs.popens.remove(self.p)


# ---- the vault: scopeholdctl ------------------------------------------------

class Vault:
    """A database and master key in a private 0700 directory, driven through
    scopeholdctl. Values go through stdin only; every value put is kept in
    .values so tests can look for it where it must never be."""

    def __init__(self, build, directory):
        self.build = build
        self.dir = directory
        self.db = os.path.join(directory, "scopehold.db")
        # The audit store: a database of its own beside the vault's
        # ([audit] db; by default the name with "-audit" before ".db").
        self.audit_db = os.path.join(directory, "scopehold-audit.db")
        self.key = os.path.join(directory, "master.key")
        self.values = []       # every value put (bytes)
        self.argvs = []        # every scopeholdctl command line run
        self._providers, self._projects = set(), set()

    # -- running
    def ctl(self, *args, input=None, db=None, key=None, extra=(), timeout=60, env=None):
        """Run `scopeholdctl --db D --key-file K ARGS` (value, if any, on
        stdin). CompletedProcess with text stdout/stderr. Fails the test on
        a sanitizer report or when a value put so far is on the command line."""
        argv = [self.build.ctl, "--db", db or self.db, "--key-file", key or self.key] + list(extra) + [str(a) for a in args]
        for v in self.values:
            assert not any(v in a.encode() for a in argv), "a secret value on scopeholdctl's command line"
        self.argvs.append(argv)
        if isinstance(input, str):
            input = input.encode()
        e = dict(os.environ)
        e.update({"LC_ALL": "C"})
        e.pop("SCOPEHOLD_CONFIG", None)
        if env:
            e.update(env)
        p = subprocess.run(argv, input=input, stdin=None if input is not None else subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e, cwd=self.dir, timeout=timeout)
        p.stdout, p.stderr = _decode(p.stdout), _decode(p.stderr)
        bad = bad_stderr_lines(p.stderr)
        if bad:
            pytest.fail(f"scopeholdctl {' '.join(map(str, args))}: sanitizer or ERROR on stderr:\n{p.stderr}")
        return p

    def ctl_ok(self, *args, **kw):
        """ctl() that must exit 0; shows stderr when it does not."""
        p = self.ctl(*args, **kw)
        assert p.returncode == 0, (f"scopeholdctl {' '.join(map(str, args))} exited {p.returncode}:\n"
                                   f"stderr: {p.stderr}\nstdout: {p.stdout}")
        return p

    def ctl_json(self, *args, **kw):
        """Parse the --json output of a verb: one JSON document, or JSON lines."""
        out = self.ctl_ok("--json", *args, **kw).stdout
        return parse_json_output(out)

    def explain(self, agent, pk):
        """`explain --json AGENT P/K` as a dict; its exit status must say
        the same (0 ALLOWED, 1 DENIED)."""
        p = self.ctl("--json", "explain", agent, pk)
        j = json.loads(p.stdout)
        assert p.returncode == (0 if j["allowed"] else 1), (p.returncode, j, p.stderr)
        return j

    def init(self):
        return self.ctl_ok("init")

    # -- building a state (idempotent where it can be)
    def provider(self, name):
        if name not in self._providers:
            self.ctl_ok("provider", "add", name)
            self._providers.add(name)

    def project(self, name):
        if name not in self._projects:
            self.ctl_ok("project", "add", name)
            self._projects.add(name)

    def put(self, pk, value):
        """secret put pk, value on stdin (str or bytes). Returns the value (bytes)."""
        if isinstance(value, str):
            value = value.encode()
        self.values.append(value)
        self.provider(pk.split("/", 1)[0])
        self.ctl_ok("secret", "put", pk, input=value)
        return value

    def assign(self, pk, project):
        self.project(project)
        self.ctl_ok("secret", "assign", pk, project)

    def agent(self, name, project, uid, cgroup=None, exe=None, lsm=None, extra=()):
        self.project(project)
        args = ["agent", "add", name, "--project", project, "--uid", str(uid)] + list(extra)
        for opt, v in (("--cgroup", cgroup), ("--exe", exe), ("--lsm", lsm)):
            if v is not None:
                args += [opt, v]
        self.ctl_ok(*args)

    def grant(self, agent, pk):
        self.ctl_ok("grant", agent, pk)

    def revoke(self, agent, pk):
        self.ctl_ok("revoke", agent, pk)

    def give(self, agent, project, pk, value=None):
        """Put pk (a fresh value unless given), assign it to project and grant
        it to agent (which must exist). Returns the value (bytes)."""
        v = self.put(pk, value if value is not None else new_value())
        self.assign(pk, project)
        self.grant(agent, pk)
        return v

    # -- reading the audit trail
    def audit_rows(self, *filters):
        """Every audit row (dicts) from `audit list --json` with filters."""
        rows = self.ctl_json("audit", "list", *filters)
        if isinstance(rows, dict):
            rows = rows.get("rows", [rows])
        return rows

    def store_files(self):
        """The files of the vault database and the audit store that exist
        (with their -wal, -shm, -journal)."""
        out = []
        for base in (self.db, self.audit_db):
            for suffix in ("", "-wal", "-shm", "-journal"):
                if os.path.exists(base + suffix):
                    out.append(base + suffix)
        return out

    def snapshot(self):
        """Every table of the vault database and the audit store, row by row,
        except the audit trail itself, of which only the admin changes that
        succeeded are counted: to show that a refused command changed
        nothing. Reads with read-only connections."""
        import sqlite3
        snap = {}
        for path in (self.db, self.audit_db):
            if not os.path.exists(path):
                continue
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
            try:
                tables = [r[0] for r in con.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
                for t in tables:
                    if t == "audit":
                        snap[f"{path}: audit ok rows"] = con.execute(
                            "SELECT count(*) FROM audit WHERE result = 'ok'").fetchone()[0]
                    else:
                        snap[f"{path}: {t}"] = sorted(map(repr, con.execute(f'SELECT * FROM "{t}"')))
            finally:
                con.close()
        return snap


def parse_json_output(out):
    out = out.strip()
    if not out:
        return []
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        return [json.loads(line) for line in out.splitlines() if line.strip()]


def audit_field(row, *names):
    """The first of names present in row (formats differ in spelling)."""
    for n in names:
        if n in row:
            return row[n]
    return None


def granted_opens(rows, path=None, agent=None):
    """Audit rows of granted opens, optionally of one path / agent."""
    out = []
    for r in rows:
        if r.get("event") != "open" or r.get("result") != "granted":
            continue
        if path is not None and audit_field(r, "path", "secret") != path:
            continue
        if agent is not None and r.get("agent") != agent:
            continue
        out.append(r)
    return out


# ---- the mount --------------------------------------------------------------

class Mount:
    """A scopeholdfs -f serving vault at a fresh 0755 mountpoint."""

    def __init__(self, build, vault, mountpoint, config=None, args=(), key=None, db=None, env=None):
        self.build, self.vault, self.path = build, vault, mountpoint
        self.stderr_path = os.path.join(vault.dir, f"scopeholdfs-{os.path.basename(mountpoint)}.stderr")
        argv = [build.fs, "-f"]
        if config:
            argv += ["-c", config]
        argv.append(f"--db={db or vault.db}")
        if key is not False:    # key=False: no --key-file (the config's, or a credential)
            argv.append(f"--key-file={key or vault.key}")
        # the launch socket is the host's (/run/scopehold/launch.sock) unless
        # a test asks for one of its own
        if not any(str(a).startswith("--launch-socket") for a in args):
            argv.append("--launch-socket=none")
        argv += list(args) + [mountpoint]
        self.argv = argv
        self.killed = False     # the test killed the daemon on purpose
        self.closed = False
        self.problems = []      # found at close
        e = dict(os.environ)
        e.pop("SCOPEHOLD_CONFIG", None)
        if env:
            e.update(env)
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         env=e, cwd="/", start_new_session=True)
        self.pid = self.proc.pid
        try:
            self._wait_mounted()
        except BaseException:
            self.close()
            raise

    def _wait_mounted(self):
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while time.monotonic() < deadline:
            if is_mounted(self.path):
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"scopeholdfs exited with {self.proc.returncode} before mounting:\n"
                                     f"{self.stderr()}")
            time.sleep(0.02)
        raise AssertionError(f"scopeholdfs did not mount {self.path} within {MOUNT_TIMEOUT} s:\n{self.stderr()}")

    def p(self, *parts):
        """A path inside the mount."""
        return os.path.join(self.path, *parts)

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return _decode(f.read())
        except OSError:
            return ""

    def kill(self, sig=signal.SIGKILL):
        """Kill the daemon (by its pid) and wait for it; the mount stays."""
        self.killed = True
        os.kill(self.pid, sig)
        self.proc.wait(timeout=10)

    def close(self):
        """Unmount, end the daemon, remove the mountpoint; idempotent. Returns
        the problems found (sanitizer lines, a value in stderr, a daemon that
        had to be killed); the fixture fails the test on them."""
        if self.closed:
            return self.problems
        self.closed = True
        try:
            if self.proc.poll() is None or is_mounted(self.path, None):
                if not force_unmount(self.path):
                    self.problems.append(f"could not unmount {self.path}")
            if self.proc.poll() is None:
                deadline = time.monotonic() + STOP_TIMEOUT
                while time.monotonic() < deadline and self.proc.poll() is None:
                    time.sleep(0.02)
            if self.proc.poll() is not None and not self.killed and self.proc.returncode != 0:
                self.problems.append(f"scopeholdfs exited with {self.proc.returncode} after the unmount")
            if self.proc.poll() is None:
                if stop_pid(self.pid):
                    self.problems.append("scopeholdfs ignored SIGTERM and was killed with SIGKILL")
                else:
                    self.problems.append(f"scopeholdfs did not exit within {STOP_TIMEOUT} s of the unmount (SIGTERM sent)")
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.problems.append("scopeholdfs could not be reaped")
            if is_mounted(self.path, None) and not force_unmount(self.path):
                self.problems.append(f"{self.path} is still mounted")
        finally:
            try:
                os.rmdir(self.path)
            except OSError as e:
                if e.errno != errno.ENOENT:
                    self.problems.append(f"cannot remove mountpoint {self.path}: {e}")
        text = self.stderr()
        self.final_stderr = text
        for line in bad_stderr_lines(text):
            self.problems.append(f"daemon stderr: {line}")
        for v in self.vault.values:
            if v in text.encode() or v.decode("latin-1") in text:
                self.problems.append("a secret value appears in the daemon's stderr")
        if self.problems:
            self.problems.append("daemon stderr was:\n" + text)
        return self.problems


def write_ini(path, sections):
    """Write {section: {key: value}} as an ini file, mode 0600. The path."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        for name, keys in sections.items():
            f.write(f"[{name}]\n")
            for k, v in keys.items():
                f.write(f"{k} = {v}\n")
    return path


# ---- cgroups ----------------------------------------------------------------

def cgroup2_root():
    """Where cgroup2 is mounted (None when it is not)."""
    for mp, t in mounts():
        if t == "cgroup2":
            return mp
    return None


def own_cgroup_path(pid="self"):
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].rstrip("\n")
    return None


class Cgroup:
    """A cgroup v2 directory: .path in the filesystem, .name as processes
    see it in the 0:: line of /proc/PID/cgroup."""

    def __init__(self, root, rel):
        self.root = root
        self.rel = rel.strip("/")
        self.path = os.path.join(root, self.rel)
        os.mkdir(self.path)
        base = own_cgroup_path()  # cgroup namespace root: "/" on the host
        self.name = "/" + self.rel if base in (None, "/") else None
        if self.name is None:
            raise AssertionError("the test must run in the host's cgroup namespace")

    def pids(self):
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []


class Cgroups:
    """The cgroups of one test under <cg2>/<prefix>-<random>/; removed at
    close (after the processes in them are gone), also when the test failed."""

    def __init__(self, root, prefix):
        self.root = root
        self.top = Cgroup(root, f"{prefix}-{secrets.token_hex(4)}")
        self.made = []

    def make(self, name):
        cg = Cgroup(self.root, f"{self.top.rel}/{name}")
        self.made.append(cg)
        return cg

    def close(self):
        problems = []
        paths = []
        for cg in list(reversed(self.made)) + [self.top]:
            # cgroups a daemon made below ours (launch instances) go first
            paths += [os.path.join(d, n) for d, dirs, _ in os.walk(cg.path, topdown=False) for n in dirs]
            paths.append(cg.path)
        for path in paths:
            cg = types.SimpleNamespace(path=path, pids=lambda path=path: Cgroup.pids(types.SimpleNamespace(path=path)))
            deadline = time.monotonic() + 10
            while os.path.isdir(cg.path):
                left = cg.pids()
                if left and time.monotonic() > deadline - 5:
                    for pid in left:  # only our own test processes live here
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                try:
                    os.rmdir(cg.path)
                except OSError as e:
                    if time.monotonic() > deadline:
                        problems.append(f"cannot remove cgroup {cg.path}: {e} (pids {cg.pids()})")
                        break
                    time.sleep(0.05)
        return problems


# ---- misc ---------------------------------------------------------------------

def make_dir(parent, prefix, mode):
    d = tempfile.mkdtemp(prefix=prefix, dir=parent)
    os.chmod(d, mode)
    return d


def rm_tree(path):
    shutil.rmtree(path, ignore_errors=True)


def file_mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)
