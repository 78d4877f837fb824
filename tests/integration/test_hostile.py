"""test_hostile.py - hostile input on the mount (issue 11 item 4): names at
and past NAME_MAX and PATH_MAX, '..', newlines and invalid UTF-8 in names,
open for create-and-truncate, O_PATH then a reopen through /proc/self/fd,
a shared mmap, splice and sendfile, ioctl, getxattr and listxattr, readdir
with tiny buffers, lseek past the end. Each gets a proper errno or exactly
the granted value, never another value, and no value is logged or audited.
(Covered elsewhere and not repeated here: the other write operations,
setxattr and removexattr in test_view.py; a private mmap, directory seeks
and a plain reopen after a revoke in test_isolation.py.)"""
import json

import pytest

import scopehold_it as it
from scopehold_it import UID_A, UID_B, UID_C
from test_hygiene import leaks

pytestmark = pytest.mark.mounted

# Run as a caller: argv[1] the mount, argv[2] a provider dir, argv[3] a
# granted file (or a path the caller may not see). Prints one JSON object:
# operation -> "ok:HEX" (bytes it got), "ok" or "ok:INFO", or an errno name.
HOSTILE_SRC = r"""
import ctypes, errno, json, mmap, os, socket, sys
mnt, prov, f = (a.encode() for a in sys.argv[1:4])
libc = ctypes.CDLL(None, use_errno=True)
out = {}

def run(name, fn):
    try:
        r = fn()
        out[name] = "ok" if r is None else "ok:" + (r.hex() if isinstance(r, bytes) else str(r))
    except OSError as e:
        out[name] = errno.errorcode.get(e.errno, str(e.errno))

def slurp(fd):
    b = b""
    while True:
        c = os.read(fd, 65536)
        if not c:
            return b
        b += c

def read_path(p, flags=0):
    fd = os.open(p, os.O_RDONLY | flags)
    try:
        return slurp(fd)
    finally:
        os.close(fd)

def lookups(tag, p):
    run(tag + " stat", lambda: os.stat(p) and None)
    run(tag + " open", lambda: read_path(p))

# -- names
lookups("name 255 in provider", prov + b"/" + b"k" * 255)
lookups("name 256 in provider", prov + b"/" + b"k" * 256)
lookups("name 255 in root", mnt + b"/" + b"p" * 255)
lookups("name 1025 in provider", prov + b"/" + b"k" * 1025)
lookups("name 3900 in provider", prov + b"/" + b"k" * 3900)
lookups("name 4096 in root", mnt + b"/" + b"p" * 4096)
lookups("path 4096", mnt + b"/" + b"/".join([b"x" * 200] * 21))
lookups("dotdot in provider", prov + b"/../" + os.path.basename(prov) + b"/" + os.path.basename(f))
lookups("dotdot chain", mnt + b"/" + b"../" * 1300 + f.lstrip(b"/"))
run("dotdot listing", lambda: ",".join(sorted(n.decode() for n in os.listdir(prov + b"/.."))))
lookups("newline name", prov + b"/" + os.path.basename(f) + b"\n")
lookups("newline provider", mnt + b"/" + os.path.basename(prov) + b"\nx/" + os.path.basename(f))
lookups("newline inside", prov + b"/a\nb")
lookups("invalid utf-8 name", prov + b"/\xff\xfe" + os.path.basename(f))
lookups("cut utf-8 name", prov + b"/" + os.path.basename(f) + b"\xc3")
lookups("invalid utf-8 provider", mnt + b"/\xc0\xaf/" + os.path.basename(f))

# -- create and truncate
def creat(p):
    os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
run("O_WRONLY|O_CREAT|O_TRUNC existing", lambda: creat(f))
run("O_WRONLY|O_CREAT|O_TRUNC new", lambda: creat(prov + b"/new-key"))
run("O_RDWR|O_CREAT|O_TRUNC existing", lambda: os.close(os.open(f, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)))
run("after create attempts", lambda: read_path(f))

# -- O_PATH, then a reopen through /proc/self/fd
def o_path():
    fd = os.open(f, os.O_PATH)
    r = {}
    for name, fn in (("read", lambda: os.read(fd, 100)),
                     ("reopen rdonly", lambda: read_path("/proc/self/fd/%d" % fd)),
                     ("reopen wronly", lambda: os.close(os.open("/proc/self/fd/%d" % fd, os.O_WRONLY))),
                     ("reopen trunc", lambda: os.close(os.open("/proc/self/fd/%d" % fd, os.O_RDONLY | os.O_TRUNC))),
                     ("fstat size", lambda: os.fstat(fd).st_size)):
        try:
            v = fn()
            r[name] = "ok" if v is None else "ok:" + (v.hex() if isinstance(v, bytes) else str(v))
        except OSError as e:
            r[name] = errno.errorcode.get(e.errno, str(e.errno))
    os.close(fd)
    return json.dumps(r)
run("O_PATH", o_path)

# -- shared mmap
def mapped(flags, prot, mode=os.O_RDONLY):
    fd = os.open(f, mode)
    try:
        size = os.fstat(fd).st_size
        m = mmap.mmap(fd, size, flags=flags, prot=prot)
        try:
            return bytes(m[:size])
        finally:
            m.close()
    finally:
        os.close(fd)
run("mmap shared read", lambda: mapped(mmap.MAP_SHARED, mmap.PROT_READ))
run("mmap shared write", lambda: mapped(mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE))
run("mmap private write", lambda: mapped(mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE))

# -- splice and sendfile
def spliced(offset):
    fd = os.open(f, os.O_RDONLY)
    r, w = os.pipe()
    try:
        n = os.splice(fd, w, 65536, offset_src=offset)
        os.close(w)
        w = -1
        return slurp(r)[:n]
    finally:
        os.close(fd)
        os.close(r)
        if w >= 0:
            os.close(w)
def sent(offset):
    fd = os.open(f, os.O_RDONLY)
    a, b = socket.socketpair()
    try:
        n = os.sendfile(a.fileno(), fd, offset, 65536)
        a.close()
        got = b""
        while True:
            c = b.recv(65536)
            if not c:
                break
            got += c
        return got[:n] if n else b""
    finally:
        os.close(fd)
        a.close()
        b.close()
size = len(read_path(f)) if os.path.exists(f) else 0
run("splice", lambda: spliced(0))
run("splice past end", lambda: spliced(size + 10))
run("sendfile", lambda: sent(0))
run("sendfile past end", lambda: sent(size + 4096))

# -- ioctl (on the file and on directories)
FIONREAD, FS_IOC_GETFLAGS, FS_IOC_GETVERSION, FIGETBSZ, FS_IOC_FSGETXATTR = 0x541B, 0x80086601, 0x80087601, 2, 0x801C581F
def ioctl(p, req, flags=os.O_RDONLY):
    fd = os.open(p, flags)
    try:
        buf = ctypes.create_string_buffer(64)
        if libc.ioctl(fd, ctypes.c_ulong(req), buf) < 0:
            raise OSError(ctypes.get_errno(), "ioctl")
        return buf.raw
    finally:
        os.close(fd)
for name, req in (("FIONREAD", FIONREAD), ("FS_IOC_GETFLAGS", FS_IOC_GETFLAGS),
                  ("FS_IOC_GETVERSION", FS_IOC_GETVERSION), ("FS_IOC_FSGETXATTR", FS_IOC_FSGETXATTR),
                  ("custom 0xdead", 0xC008DEAD)):
    run("ioctl file " + name, lambda: ioctl(f, req))
    run("ioctl dir " + name, lambda: ioctl(prov, req, os.O_RDONLY | os.O_DIRECTORY))
run("ioctl root custom 0xdead", lambda: ioctl(mnt, 0xC008DEAD, os.O_RDONLY | os.O_DIRECTORY))

# -- getxattr, listxattr (set and remove are in test_view.py)
for tag, p in (("file", f), ("dir", prov), ("root", mnt)):
    for attr in ("user.x", "security.selinux", "security.capability", "system.posix_acl_access",
                 "trusted.x", "user." + "a" * 250):
        run("getxattr %s %s" % (tag, attr[:20]), lambda: os.getxattr(p, attr))
    run("listxattr " + tag, lambda: ",".join(os.listxattr(p)))
    run("llistxattr " + tag, lambda: ",".join(os.listxattr(p, follow_symlinks=False)))

# -- readdir with tiny buffers: getdents64 until 0, each buffer size
def getdents(p, size):
    fd = os.open(p, os.O_RDONLY | os.O_DIRECTORY)
    names = []
    try:
        for _ in range(10000):
            buf = ctypes.create_string_buffer(size)
            n = libc.syscall(217, fd, buf, size)
            if n < 0:
                raise OSError(ctypes.get_errno(), "getdents64")
            if n == 0:
                return ",".join(sorted(names))
            raw, i = buf.raw[:n], 0
            while i < n:
                reclen = int.from_bytes(raw[i + 16:i + 18], "little")
                names.append(raw[i + 19:i + reclen].split(b"\0")[0].decode("utf-8", "surrogateescape"))
                i += reclen
        return "no end"
    finally:
        os.close(fd)
for tag, p in (("root", mnt), ("provider", prov)):
    for bufsize in (1, 8, 19, 24, 32, 40, 64, 4096):
        run("getdents %s %d" % (tag, bufsize), lambda: getdents(p, bufsize))
    run("scandir " + tag, lambda: ",".join(sorted(e.name.decode() for e in os.scandir(p))))

# -- lseek past the end
def seeks():
    fd = os.open(f, os.O_RDONLY)
    r = []
    try:
        for off, whence in ((size, os.SEEK_SET), (size + 1, os.SEEK_SET), (1 << 20, os.SEEK_SET),
                            ((1 << 62), os.SEEK_SET), (0, os.SEEK_END), (100, os.SEEK_END)):
            try:
                pos = os.lseek(fd, off, whence)
                r.append("%d:%s" % (pos, os.read(fd, 4096).hex()))
            except OSError as e:
                r.append(errno.errorcode.get(e.errno, "?"))
        for off, whence in ((-1, os.SEEK_SET), (size + 1, os.SEEK_DATA), (size + 1, os.SEEK_HOLE)):
            try:
                r.append("%d" % os.lseek(fd, off, whence))
            except OSError as e:
                r.append(errno.errorcode.get(e.errno, "?"))
        for off in (size, size + 1, 1 << 40):
            r.append("pread:" + os.pread(fd, 4096, off).hex())
    finally:
        os.close(fd)
    return "|".join(r)
run("lseek", seeks)
print(json.dumps(out))
"""

ENOENT_ONLY = {"ENOENT"}
NOT_SUPPORTED = {"ENOTTY", "ENOSYS", "EINVAL", "EOPNOTSUPP", "ENOTSUP", "EPERM", "EACCES"}


def hostile(uid, mount, prov, f):
    p = it.py_as(uid, HOSTILE_SRC, mount.path, mount.p(prov), f, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def got(result):
    """The bytes of an "ok:HEX" result, else None."""
    if not result.startswith("ok:"):
        return None
    try:
        return bytes.fromhex(result[3:])
    except ValueError:
        return None


def dents(names, size):
    """What getdents64 with a buffer of size bytes gives for names: all of
    them (with . and ..) when the largest record fits, else EINVAL."""
    names = [".", ".."] + list(names)
    if size < max((19 + len(n.encode()) + 1 + 7) & ~7 for n in names):
        return "EINVAL"
    return "ok:" + ",".join(sorted(names))


def check_names(r, value, visible):
    """Names: too long -> ENAMETOOLONG, odd bytes -> ENOENT, '..' resolved
    by the kernel to what the caller may see anyway."""
    # Names past NAME_MAX: this kernel hands FUSE names of any length that
    # fits PATH_MAX (older ones stop at 1024 with ENAMETOOLONG); past the 128
    # bytes a name may have, the daemon answers ENOENT like for any unknown
    for tag in ("name 256 in provider", "name 1025 in provider", "name 3900 in provider"):
        for op in ("stat", "open"):
            assert r[f"{tag} {op}"] in {"ENOENT", "ENAMETOOLONG"}, (tag, op, r[f"{tag} {op}"])
    for tag in ("name 4096 in root", "path 4096"):
        for op in ("stat", "open"):
            assert r[f"{tag} {op}"] == "ENAMETOOLONG", (tag, op, r[f"{tag} {op}"])
    for tag in ("name 255 in provider", "name 255 in root", "newline name", "newline provider",
                "newline inside", "invalid utf-8 name", "cut utf-8 name", "invalid utf-8 provider"):
        for op in ("stat", "open"):
            assert r[f"{tag} {op}"] in ENOENT_ONLY, (tag, op, r[f"{tag} {op}"])
    for tag in ("dotdot in provider", "dotdot chain"):
        if visible:
            assert r[f"{tag} stat"] == "ok" and got(r[f"{tag} open"]) == value, (tag, r[f"{tag} open"])
        else:
            assert r[f"{tag} stat"] == "ENOENT" and r[f"{tag} open"] == "ENOENT", tag


def test_hostile_calls_by_the_granted_agent(vault, mount):
    vault.agent("alpha", "pa", UID_A)
    value = vault.give("alpha", "pa", "stripe/k")
    other = vault.give("alpha", "pa", "github/token")   # granted too: must not appear in stripe's answers
    vault.agent("beta", "pb", UID_B)
    foreign = vault.give("beta", "pb", "stripe/b_only")
    f = mount.p("stripe", "k")
    r = hostile(UID_A, mount, "stripe", f)
    check_names(r, value, visible=True)
    assert r["dotdot listing"] == "ok:github,stripe"

    for op in ("O_WRONLY|O_CREAT|O_TRUNC existing", "O_RDWR|O_CREAT|O_TRUNC existing",
               "O_WRONLY|O_CREAT|O_TRUNC new"):
        assert r[op] in {"EACCES", "EROFS"}, (op, r[op])
    assert got(r["after create attempts"]) == value, "a create/truncate attempt changed the file"

    o = json.loads(r["O_PATH"][3:])
    assert o["read"] == "EBADF"
    assert got(o["reopen rdonly"]) == value, o      # a fresh OPEN, checked like any other
    assert o["reopen wronly"] in {"EACCES", "EROFS"} and o["reopen trunc"] in {"EACCES", "EROFS"}, o
    assert o["fstat size"] == f"ok:{len(value)}"

    # a shared mapping is refused (direct_io) or shows exactly the value;
    # a writable one is refused
    assert r["mmap shared read"] in {"ENODEV", "EINVAL", "EACCES"} or got(r["mmap shared read"]) == value, \
        r["mmap shared read"]
    assert r["mmap shared write"] in {"EACCES", "ENODEV", "EINVAL", "EPERM"}, r["mmap shared write"]
    assert r["mmap private write"] in {"ENODEV", "EINVAL", "EACCES"} or \
        got(r["mmap private write"]) == value, r["mmap private write"]

    for op in ("splice", "sendfile"):
        assert got(r[op]) == value or r[op] in {"EINVAL", "ENOSYS"}, (op, r[op])
        assert r[op + " past end"] in {"ok:", "EINVAL"}, (op, r[op + " past end"])

    for op, res in r.items():
        if op == "ioctl file FIONREAD":   # the VFS answers: the bytes left to read
            assert int.from_bytes(got(res)[:4], "little") == len(value), res
        elif op.startswith("ioctl"):
            assert res in NOT_SUPPORTED, (op, res)
        if op.startswith(("getxattr", "listxattr", "llistxattr")):
            assert res in {"ENODATA", "EOPNOTSUPP", "ENOTSUP", "ok:", "ERANGE"}, (op, res)

    for size in (1, 8, 19, 24, 32, 40, 64, 4096):
        assert r[f"getdents root {size}"] == dents(["github", "stripe"], size), (size, r[f"getdents root {size}"])
        assert r[f"getdents provider {size}"] == dents(["k"], size), (size, r[f"getdents provider {size}"])
    assert r["scandir root"] == "ok:github,stripe" and r["scandir provider"] == "ok:k"

    seek = r["lseek"][3:].split("|")
    n = len(value)
    assert seek[:6] == [f"{n}:", f"{n + 1}:", f"{1 << 20}:", f"{1 << 62}:", f"{n}:", f"{n + 100}:"], seek
    assert seek[6] == "EINVAL" and seek[7] == "ENXIO" and seek[8] in {"ENXIO", str(n)}, seek
    assert seek[9:] == ["pread:", "pread:", "pread:"], seek

    # no answer holds a value other than the one asked for
    text = json.dumps(r)
    assert foreign.hex() not in text and other.hex() not in text
    assert_nothing_logged(vault, mount)


@pytest.mark.parametrize("uid", [UID_B, UID_C], ids=["other-agent", "no-agent"])
def test_hostile_calls_by_a_caller_without_the_grant(vault, mount, uid):
    vault.agent("alpha", "pa", UID_A)
    value = vault.give("alpha", "pa", "stripe/k")
    vault.agent("beta", "pb", UID_B)
    own = vault.give("beta", "pb", "github/token")
    # the provider is visible to beta only through its own grant: probe the
    # one beta sees (github) and the one it must not (stripe)
    r = hostile(uid, mount, "stripe", mount.p("stripe", "k"))
    check_names(r, value, visible=False)
    for op, res in r.items():
        if op in ("dotdot listing",):
            continue
        seen = ["github"] if uid == UID_B else []
        if op.startswith("getdents root"):
            assert res == dents(seen, int(op.rsplit(" ", 1)[1])), (op, res)
            continue
        if op == "scandir root":
            assert res == "ok:" + ",".join(seen), (op, res)
            continue
        if op.startswith(("ioctl root", "getxattr root", "listxattr root", "llistxattr root")):
            assert res in NOT_SUPPORTED | {"ENODATA", "ok:", "ERANGE"}, (op, res)
            continue
        # everything on stripe/k or the stripe directory: not there
        assert res in {"ENOENT", "ENAMETOOLONG"}, (op, res)
    text = json.dumps(r)
    assert value.hex() not in text and (uid == UID_B or own.hex() not in text)
    assert_nothing_logged(vault, mount)


def assert_nothing_logged(vault, mount):
    """No value in the daemon's stderr so far, nor in the audit trail."""
    assert not leaks(mount.stderr(), vault.values), "a value in the daemon's log"
    p = vault.ctl_ok("audit", "export", "--format", "jsonl")
    assert not leaks(p.stdout, vault.values), "a value in the audit trail"
    assert vault.ctl_ok("audit", "verify").returncode == 0
