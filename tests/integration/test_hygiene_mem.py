"""test_hygiene_mem.py - no value left in memory (issue 11 item 6): after a
burst of reads of a distinctive value, the value is nowhere in the daemon's
writable mappings (read through /proc/PID/mem); `scopeholdctl exec`, stopped
just before its execve (tests/crash/execstop.c), holds the value only in the
environment strings it hands to CMD. Each scan is first shown to work: it
finds the value in a reader process that holds it."""
import os
import re
import signal
import subprocess

import pytest

import scopehold_it as it
from scopehold_it import UID_A

pytestmark = pytest.mark.mounted

SECRET = "memscan/key"
# Mappings larger than this are the sanitizer's shadow and allocator
# reservations (terabytes, nearly all never touched); heaps, stacks, the
# sodium pages and libfuse's buffers are far smaller.
MAX_MAPPING = 1 << 30
CHUNK = 16 << 20


def writable_mappings(pid):
    """[(start, end, name)] of pid's writable mappings, from /proc/PID/maps."""
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if "w" in fields[1]:
                out.append((start, end, fields[5] if len(fields) > 5 else ""))
    return out


def scan(pid, needle):
    """(addresses of needle in pid's writable memory, bytes read, mappings
    skipped as too large). Pages that cannot be read (guard pages) are
    passed over."""
    found, scanned, skipped = [], 0, 0
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
    try:
        for start, end, name in writable_mappings(pid):
            if end - start > MAX_MAPPING:
                skipped += 1
                continue
            tail, tail_at = b"", start
            off = start
            while off < end:
                n = min(CHUNK, end - off)
                try:
                    data = os.pread(fd, n, off)
                except OSError:
                    data = b""
                if not data:                          # unreadable: go on a page later
                    tail = b""
                    off += 4096
                    tail_at = off
                    continue
                scanned += len(data)
                buf = tail + data
                for m in re.finditer(re.escape(needle), buf):
                    found.append(tail_at + m.start())
                keep = len(needle) - 1
                tail = buf[-keep:] if keep else b""
                off += len(data)
                tail_at = off - len(tail)
    finally:
        os.close(fd)
    return sorted(set(found)), scanned, skipped


# A reader as uid A that reads the value n times and then holds it in memory
# until told to exit: the positive control of the scan.
HOLD_VALUE = r"""
import os, sys
path, n = sys.argv[1], int(sys.argv[2])
kept = None
for _ in range(n):
    with open(path, "rb") as f:
        kept = f.read()
sys.stdout.write("read %d\n" % len(kept)); sys.stdout.flush()
sys.stdin.readline()
"""


def test_daemon_memory_holds_no_value_after_a_burst_of_reads(vault, mount, procs):
    vault.agent("mem", "memproj", UID_A)
    value = vault.give("mem", "memproj", SECRET, it.new_value("sk_memscan_") + "_" + os.urandom(8).hex())
    path = mount.p(SECRET)
    # the burst: 4 readers, 200 opens and reads each, at the same time
    ps = [procs.add(subprocess.Popen(it.uid_argv(UID_A, [it.PYTHON, "-I", "-c", HOLD_VALUE, path, "200"]),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=it.READER_ENV, cwd="/")) for _ in range(4)]
    for p in ps:
        assert p.stdout.readline() == f"read {len(value)}\n".encode(), p.stderr.read()
    # the scan works: the value is in a reader that holds it
    found, scanned, _ = scan(ps[0].pid, value)
    assert found and scanned > 0, "the scan does not find the value in a process that holds it"
    for p in ps:
        p.stdin.write(b"\n")
        p.stdin.flush()
        assert p.wait(timeout=30) == 0
    procs.close()
    rows = it.granted_opens(vault.audit_rows("--agent", "mem"), agent="mem")
    assert len(rows) == 800, f"{len(rows)} granted opens: the burst did not happen"
    found, scanned, skipped = scan(mount.pid, value)
    assert scanned > 1 << 20, f"only {scanned} bytes of the daemon read"
    print(f"daemon: {scanned} bytes of writable memory scanned, {skipped} large reservations skipped")
    assert not found, f"the value is in the daemon's memory at {[hex(a) for a in found]}"
    # neither in its hex form (a debug dump, a log buffer)
    found, _, _ = scan(mount.pid, value.hex().encode())
    assert not found, f"the value's hex is in the daemon's memory at {[hex(a) for a in found]}"


def test_scopeholdctl_exec_holds_the_value_only_in_the_environment_it_builds(build, vault, mount):
    shim = os.path.join(build.dir, "tests", "libscopehold-execstop.so")
    assert os.path.exists(shim), "the exec-stop shim is not built"
    vault.agent("mem", "memproj", UID_A)
    value = vault.give("mem", "memproj", SECRET, it.new_value("sk_execscan_") + "_" + os.urandom(8).hex())
    asan = os.environ.get("ASAN_OPTIONS", "")
    argv = ["env", f"LD_PRELOAD={shim}",
            "ASAN_OPTIONS=" + (asan + ":" if asan else "") + "verify_asan_link_order=0:detect_leaks=0",
            build.ctl, "exec", "--mount", mount.path, "--env", f"K={SECRET}", "--", "/bin/true"]
    p = subprocess.Popen(it.uid_argv(UID_A, argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=it.READER_ENV, cwd="/")
    try:
        envs, lines = [], []
        while True:
            line = p.stderr.readline().decode(errors="replace")
            lines.append(line)
            assert line, f"scopeholdctl exec ended before its exec: {''.join(lines)}"
            m = re.match(r"execstop: env 0x([0-9a-f]+) (\d+)$", line.strip())
            if m:
                envs.append((int(m.group(1), 16), int(m.group(2))))
            elif line.startswith("execstop: stopped"):
                assert int(line.split()[2]) == p.pid
                break
        found, scanned, skipped = scan(p.pid, value)
        inside = [a for a in found if any(s <= a and a + len(value) <= s + n for s, n in envs)]
        outside = [hex(a) for a in found if a not in inside]
        print(f"scopeholdctl exec: {scanned} bytes scanned, {len(inside)} copies in its environment block, "
              f"{len(outside)} elsewhere")
        assert inside, "the scan does not find the value in the environment handed to CMD"
        assert not outside, f"the value is in scopeholdctl's memory outside the environment at {outside}"
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
