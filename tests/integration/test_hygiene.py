"""test_hygiene.py - a value never leaves the places it may be (issue 2):
not in the database file or its WAL, the daemon's stderr (also with FUSE
debug output on), the audit trail (list, export), any listing or
explanation, any command line; the daemon keeps keys in locked memory and
cannot dump core."""
import base64
import hashlib
import os
import signal

import pytest

import scopehold_it as it
from scopehold_it import UID_A, UID_B, UID_C

pytestmark = pytest.mark.mounted


def forms(value):
    """The ways a value could leak: raw, hex, base64, and common digests."""
    out = {"raw": value, "hex": value.hex().encode(), "HEX": value.hex().upper().encode(),
           "base64": base64.b64encode(value), "base64url": base64.urlsafe_b64encode(value).rstrip(b"=")}
    for name in ("sha256", "sha1", "md5", "blake2b"):
        out[name + " hex"] = hashlib.new(name, value).hexdigest().encode()
    out["blake2b-256 hex"] = hashlib.blake2b(value, digest_size=32).hexdigest().encode()
    out["blake2b-256 raw"] = hashlib.blake2b(value, digest_size=32).digest()
    return out


def leaks(blob, values):
    """[(form, value prefix)] of each value found in blob in any form."""
    if isinstance(blob, str):
        blob = blob.encode("utf-8", "surrogateescape")
    found = []
    for v in values:
        for name, f in forms(v).items():
            if f in blob:
                found.append((name, v[:12]))
    return found


def files_of_db(vault):
    files = vault.store_files()
    assert vault.db in files
    return files


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_value_appears_nowhere(vault, mount, read_as, cat_as, holder):
    vault.agent("alpha", "pa", UID_A)
    vault.agent("beta", "pb", UID_B)
    v1 = vault.give("alpha", "pa", "stripe/test_key")
    vault.give("beta", "pb", "github/token")
    held = holder(UID_A, mount.p("stripe/test_key"))
    assert held.opened
    v2 = vault.put("stripe/test_key", it.new_value())              # a rotation
    assert read_as(UID_A, mount.p("stripe/test_key")) == (0, v2, "")
    assert held.read() == v1
    for uid in (UID_B, UID_C):                                     # denied probes: audited, never answered
        assert cat_as(uid, mount.p("stripe/test_key"))[0] != 0
    assert cat_as(UID_A, mount.p(".scopehold/whoami"))[0] == 0
    values = vault.values
    assert len(values) == 3

    # The store, while the daemon runs (WAL not yet checkpointed).
    for f in files_of_db(vault):
        assert not leaks(read(f), values), f"value in {f}"
    # The master key is not in the store either.
    master = read(vault.key)
    for f in files_of_db(vault):
        assert master not in read(f), f"master key in {f}"

    # What scopeholdctl prints.
    outputs = {}
    for argv in (["audit", "list"], ["--json", "audit", "list"], ["audit", "export", "--format", "jsonl"],
                 ["secret", "list"], ["--json", "secret", "list"], ["secret", "versions", "stripe/test_key"],
                 ["--json", "secret", "versions", "stripe/test_key"], ["grants"], ["--json", "grants"],
                 ["agent", "list"], ["explain", "alpha", "stripe/test_key"],
                 ["--json", "explain", "alpha", "stripe/test_key"], ["whoami", str(held.pid)],
                 ["--json", "whoami", str(held.pid)], ["audit", "verify"], ["provider", "list"]):
        p = vault.ctl_ok(*argv)
        outputs[" ".join(argv)] = p.stdout + p.stderr
    export = outputs["audit export --format jsonl"]
    assert '"granted"' in export and "stripe/test_key" in export, "the export shows the opens"
    for what, text in outputs.items():
        assert not leaks(text, values), f"value in the output of scopeholdctl {what}"

    # No command line of any process carries a value (scopeholdctl got them on stdin).
    for argv in vault.argvs:
        assert not leaks("\0".join(argv), values)
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = read(f"/proc/{pid}/cmdline")
            except OSError:
                continue
            assert not leaks(cmdline, values), f"value on the command line of pid {pid}"

    # The daemon's stderr, and the store after the daemon has stopped.
    held.close()
    assert not mount.close()
    assert not leaks(mount.final_stderr, values)
    for f in files_of_db(vault):
        assert not leaks(read(f), values), f"value in {f} after unmount"


def test_fuse_debug_output_shows_no_value(vault, mount_factory, read_as):
    vault.agent("alpha", "pa", UID_A)
    v = vault.give("alpha", "pa", "stripe/test_key")
    m = mount_factory(args=["-d"])
    assert read_as(UID_A, m.p("stripe/test_key")) == (0, v, "")
    assert read_as(UID_A, m.p("stripe/test_key")) == (0, v, "")
    text = m.stderr()
    assert "READ" in text or "read" in text, "debug output is on"
    assert not leaks(text, vault.values)


def _status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
    return None


def _sanitized(pid):
    with open(f"/proc/{pid}/maps") as f:
        return any("libasan" in line or "libtsan" in line for line in f)


def test_daemon_cannot_dump_core(vault, mount, read_as):
    vault.agent("alpha", "pa", UID_A)
    v = vault.give("alpha", "pa", "stripe/test_key")
    assert read_as(UID_A, mount.p("stripe/test_key")) == (0, v, "")
    with open(f"/proc/{mount.pid}/limits") as f:
        core = [line for line in f if line.startswith("Max core file size")]
    assert core and core[0].split()[4:6] == ["0", "0"], core


def test_daemon_keeps_keys_in_locked_memory(vault, mount, read_as):
    if _sanitized(mount.pid):
        pytest.skip("AddressSanitizer turns mlock() into a no-op: VmLck cannot be checked in this build")
    vault.agent("alpha", "pa", UID_A)
    v = vault.give("alpha", "pa", "stripe/test_key")
    assert read_as(UID_A, mount.p("stripe/test_key")) == (0, v, "")
    locked_kb = int(_status(mount.pid, "VmLck").split()[0])
    assert locked_kb > 0, "no locked memory: keys and plaintext are not in sodium_malloc/mlock memory"


def test_value_not_in_the_store_after_a_crash(vault, mount, read_as):
    """A daemon killed with SIGKILL leaves its WAL as it was: still no value."""
    vault.agent("alpha", "pa", UID_A)
    v = vault.give("alpha", "pa", "stripe/test_key")
    for _ in range(3):
        assert read_as(UID_A, mount.p("stripe/test_key")) == (0, v, "")
    mount.kill(signal.SIGKILL)
    for f in files_of_db(vault):
        assert not leaks(read(f), vault.values), f"value in {f}"
    rows = vault.audit_rows()
    assert len(it.granted_opens(rows, path="stripe/test_key")) == 3, "the rows survive the crash"
