#!/usr/bin/python3
"""kill_loop.py [COUNT] - SIGKILL scopeholdfs COUNT times (default 50) under
8 concurrent readers and an admin writer (issue 11 item 1), restarting it on
the same mountpoint each time (it clears the dead mount itself). After each
kill: PRAGMA integrity_check passes on both stores, `scopeholdctl audit
verify` passes, every open that returned a handle has its granted row (at
most one more row per reader: committed, then the kill came before the
reply), every value committed reads back (the reader's secret and each
admin put), and the restarted daemon serves the value. Prints one summary
line, `kill-loop: K kills, L lost rows, integrity ok`, exit 0; or a line
saying what broke, exit 1.

Run as root from the repository, with SCOPEHOLD_BUILD naming a build
directory (default build/). tests/integration/test_faults.py runs it with
10 kills (CI); scripts/stress runs the full count. Everything it makes (a
directory under /tmp, the mount, its processes) is removed on exit."""
import collections
import os
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import scopehold_it as it  # noqa: E402
from scopehold_it import UID_A  # noqa: E402
import test_audit_trail as at  # noqa: E402  the reader processes and row counting
from test_faults import integrity_ok  # noqa: E402
from test_rekey import read_all, tools  # noqa: E402  the crash-test reader of every value

AGENT, PROJECT, SECRET = "killer", "kproj", "kill/read_key"
READERS = 8
ROWS_PER_ROUND = 150        # granted rows the readers add before each kill


class Admin(threading.Thread):
    """Admin writes while the daemon serves and dies: new versions of
    kill/admin{0..3} and grants and revokes of them to a second agent.
    .current holds every value whose put exited 0."""

    def __init__(self, vault):
        super().__init__(daemon=True)
        self.vault, self.stop, self.current = vault, threading.Event(), {}
        self.done = self.failed = 0
        self.granted = set()

    def run(self):
        i = 0
        while not self.stop.is_set():
            pk = f"kill/admin{i % 4}"
            if i % 2 == 0:
                value = it.new_value("sk_kadm_").encode()
                self.vault.values.append(value)
                p = self.vault.ctl("secret", "put", pk, input=value)
                if p.returncode == 0:
                    self.current[pk] = value
            else:
                verb = "revoke" if pk in self.granted else "grant"
                p = self.vault.ctl(verb, "kadmin", pk)
                if p.returncode == 0:
                    self.granted ^= {pk}
            self.done += p.returncode == 0
            self.failed += p.returncode != 0
            i += 1


def check_stores(vault, readall, values, what):
    for store in (vault.db, vault.audit_db):
        assert integrity_ok(store), f"{what}: integrity_check of {store} fails"
    at.assert_intact(vault)
    ok, msg = read_all(readall, vault.db, vault.key, values)
    assert ok, f"{what}: {msg}"


def start(build, vault, mp):
    m = it.Mount(build, vault, mp)
    deadline = time.monotonic() + it.MOUNT_TIMEOUT
    while "serving" not in m.stderr():   # a dead mount is fuse.scopehold too
        assert m.proc.poll() is None and time.monotonic() < deadline, f"no restart:\n{m.stderr()}"
        time.sleep(0.02)
    return m


def kill_loop(build, vault, mp, procs, count, log=print):
    """Run count kills; returns (kills, lost rows, extra rows, admin ok, admin failed)."""
    _, readall = tools(build)
    vault.agent(AGENT, PROJECT, UID_A)
    vault.agent("kadmin", PROJECT, it.UID_B)
    value = vault.give(AGENT, PROJECT, SECRET, it.new_value("sk_kill_"))
    for k in range(4):
        vault.put(f"kill/admin{k}", it.new_value("sk_kadm_"))
        vault.assign(f"kill/admin{k}", PROJECT)
    current = {f"kill/admin{k}": vault.values[-4 + k] for k in range(4)}
    expected = lost = extra = done = failed = 0
    m = None
    try:
        for rnd in range(count):
            m = start(build, vault, mp)
            assert it.read_as(UID_A, m.p(SECRET)) == (0, value, ""), f"round {rnd}: restarted daemon does not serve"
            expected += 1
            first = at.last_id(vault)
            ps = at.start_readers(procs, READERS, m.p(SECRET), 10 ** 6, len(value), stop=True)
            admin = Admin(vault)                 # a thread starts once: one per round
            admin.current = dict(current)
            at.go(ps)
            admin.start()
            deadline = time.monotonic() + 60
            while at.last_id(vault) < first + ROWS_PER_ROUND and time.monotonic() < deadline:
                time.sleep(0.05)
            assert all(p.poll() is None for p in ps), f"round {rnd}: a reader ended before the kill"
            m.kill(signal.SIGKILL)
            m.closed = True                      # the next daemon clears the dead mount
            res = at.results(ps)
            procs.close()
            admin.stop.set()
            admin.join(timeout=120)
            assert not admin.is_alive(), "the admin writer did not stop"
            current = dict(admin.current)
            done, failed = done + admin.done, failed + admin.failed
            bad = it.bad_stderr_lines(m.stderr())
            assert not bad, f"round {rnd}: daemon stderr: {bad}"
            assert not any(v in m.stderr().encode() for v in vault.values), "a value in the daemon's stderr"
            for r in res:
                assert r["wrong"] == 0 and r["empty"] == 0, f"round {rnd}: torn read {r}"
            rows = at.granted_open_rows(vault, agent=AGENT, path=SECRET)
            per = collections.Counter(r["tgid"] for r in rows)
            for r in res:
                got = per.get(r["pid"], 0)
                lost += max(0, r["ok"] - got)
                extra += max(0, got - r["ok"])
                assert r["ok"] <= got <= r["ok"] + 1, f"round {rnd}: reader {r} has {got} granted rows"
            expected += sum(per.get(r["pid"], 0) for r in res)
            assert len(rows) == expected, f"round {rnd}: {len(rows)} granted rows, expected {expected}"
            check_stores(vault, readall, {SECRET: value, **current}, f"after kill {rnd + 1}")
            log(f"kill {rnd + 1}: {sum(r['ok'] for r in res)} opens, {extra} extra rows so far, "
                f"admin writes {done} ok / {failed} failed")
        m = start(build, vault, mp)
        assert it.read_as(UID_A, m.p(SECRET)) == (0, value, "")
    finally:
        procs.close()
        if m is not None and not m.closed:
            problems = m.close()
            assert not problems, problems
        elif m is not None:
            it.force_unmount(mp)
    return count, lost, extra


def main(argv):
    count = int(argv[1]) if len(argv) > 1 else 50
    if os.geteuid() != 0:
        print("kill-loop: needs root", file=sys.stderr)
        return 1
    build = it.Build()
    if build.missing():
        print(f"kill-loop: not built: {build.missing()}", file=sys.stderr)
        return 1
    top = it.make_dir("/tmp", "scopehold-kill-loop-", 0o755)
    procs = it.Procs()
    try:
        vdir = it.make_dir(top, "vault-", 0o700)
        vault = it.Vault(build, vdir)
        vault.init()
        mp = it.make_dir(top, "mnt-", 0o755)
        kills, lost, extra = kill_loop(build, vault, mp, procs, count,
                                       log=lambda s: print(s, file=sys.stderr, flush=True))
    except AssertionError as e:
        print(f"kill-loop: FAILED: {e}")
        return 1
    finally:
        procs.close()
        for mp_ in it.scopehold_mounts_under(top):
            it.force_unmount(mp_)
        it.rm_tree(top)
    print(f"kill-loop: {kills} kills, {lost} lost rows, integrity ok")
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
