"""test_json.py - every JSON document is valid under a strict parser (issue 16
item 7): an exe path with bytes that are not UTF-8 (a binary named
$'\\xff\\xfe'cat) reaches `audit list --json`, `whoami --json` and `agent list
--json` as U+FFFD, with the exact bytes in a `*_hex` field."""
import json
import os
import shutil
import subprocess

import pytest

import scopehold_it as it
from scopehold_it import UID_A

pytestmark = pytest.mark.mounted


def strict_json(vault, *args):
    """Run scopeholdctl --json ARGS and parse its raw stdout strictly."""
    argv = [vault.build.ctl, "--db", vault.db, "--key-file", vault.key, "--json"] + [str(a) for a in args]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    text = p.stdout.decode("utf-8")     # strict: raises on a byte that is not UTF-8
    return json.loads(text)


def test_invalid_utf8_in_labels_stays_valid_json(vault, mount, workdir, procs):
    d = it.make_dir(workdir, "bin-", 0o755)
    odd = os.path.join(d.encode(), b"\xff\xfecat")
    shutil.copy2(shutil.which("cat").encode(), odd)
    os.chmod(odd, 0o755)
    vault.agent("odd", "po", UID_A, exe=odd.decode("utf-8", "surrogateescape"))
    v = vault.give("odd", "po", "stripe/odd_key")
    p = subprocess.run(it.uid_argv(UID_A, [odd, mount.p("stripe/odd_key").encode()]),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=it.READER_ENV)
    assert (p.returncode, p.stdout) == (0, v), p.stderr
    rows = strict_json(vault, "audit", "list")
    rows = rows.get("rows", rows) if isinstance(rows, dict) else rows
    opens = [r for r in rows if r.get("event") == "open" and r.get("path") == "stripe/odd_key"]
    assert opens, rows
    r = opens[-1]
    assert "\ufffd\ufffdcat" in r["exe"], r
    assert bytes.fromhex(r["exe_hex"]) == odd, r
    agents = strict_json(vault, "agent", "list")
    a = [x for x in agents if x["name"] == "odd"][0]
    assert bytes.fromhex(a["exe_hex"]) == odd, a
    # whoami of a running process with that exe
    holder = procs.add(subprocess.Popen(it.uid_argv(UID_A, [odd]), stdin=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=it.READER_ENV))
    try:
        import time
        for _ in range(500):
            try:
                if os.readlink(f"/proc/{holder.pid}/exe").encode("utf-8", "surrogateescape") == odd:
                    break
            except OSError:
                pass
            time.sleep(0.01)
        w = strict_json(vault, "whoami", holder.pid)
        assert w["agent"] == "odd" and bytes.fromhex(w["exe_hex"]) == odd, w
    finally:
        procs.stop(holder)
