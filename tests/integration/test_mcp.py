"""test_mcp.py - real MCP servers launched as agents (issue 10 item 3).

The npm packages of the official MCP servers and the TypeScript SDK are
installed at pinned versions into a temporary directory once per pytest
session (removed at its end; nothing is cached in the repository). The SDK's
stdio client (mcp_client.mjs), run as the agent's uid like a desktop user,
starts each server exactly as a client config would: `command` is
scopeholdctl, `args` are `run --agent NAME ... -- node SERVER ...`.

- server-filesystem launched as agent A reads A's key through its
  read_text_file tool; a second one of the same uid launched as agent B reads
  B's key and not A's; the audit rows name node as the exe, the server's
  process and its instance cgroup under the launch cgroup;
- server-everything launched with `--env GITHUB_PERSONAL_ACCESS_TOKEN=
  github/token` shows the variable through its get-env tool; with the grant
  revoked it does not start and scopeholdctl's error names the variable and
  the path, not the value.

Skips, with the reason, when node or npm is missing or the packages cannot
be installed (no registry reachable)."""
import json
import os
import re
import shutil
import subprocess
import types

import pytest

import scopehold_it as it
from scopehold_it import UID_A
from test_launch import Launcher, launcher  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.mounted]

# Pinned: the newest of each on its "latest" tag that runs on node 20.
PACKAGES = {
    "@modelcontextprotocol/sdk": "1.32.2",
    "@modelcontextprotocol/server-filesystem": "2026.8.31",
    "@modelcontextprotocol/server-everything": "2026.8.31",
}
NODE_MAJOR_MIN = 20          # server-filesystem's glob needs node 20 or newer
INSTALL_TIMEOUT = 600        # s; one install per session, ~10 s here
CLIENT = os.path.join(it.HERE, "mcp_client.mjs")


def _node_major(node):
    p = subprocess.run([node, "--version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    m = re.match(r"v(\d+)\.", p.stdout.strip())
    return int(m.group(1)) if p.returncode == 0 and m else None


def _npm_failure(stderr):
    """npm's error code and message in one line, without addresses."""
    lines = [l[len("npm error "):].strip() for l in stderr.splitlines() if l.startswith("npm error ")]
    code = next((l.split(None, 1)[1] for l in lines if l.startswith("code ")), "")
    msg = next((l for l in lines if l and not l.startswith(("code ", "syscall ", "errno ", "at ", "A complete log"))),
               (stderr.strip().splitlines() or ["no message"])[-1])
    msg = re.sub(r"[a-z][a-z0-9+.-]*://\S+", "<url>", f"{code}: {msg}" if code else msg)
    return re.sub(r"\b(ENOTFOUND|EAI_AGAIN) \S+", r"\1 <host>", msg)


@pytest.fixture(scope="session")
def mcp(privileged):
    """The installed packages: .node, .sdk (package directory), .fs_server,
    .everything (their dist/index.js). Installed once per session into a
    0755 directory under /tmp that the readers' uids can read; removed at
    the end of the session."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node:
        pytest.skip("MCP servers: node is not installed")
    if not npm:
        pytest.skip("MCP servers: npm is not installed")
    node = os.path.realpath(node)
    major = _node_major(node)
    if major is None or major < NODE_MAJOR_MIN:
        pytest.skip(f"MCP servers: {node} is node {major}, the pinned packages need {NODE_MAJOR_MIN} or newer")
    d = it.make_dir("/tmp", "scopehold-mcp-", 0o755)
    try:
        specs = [f"{name}@{ver}" for name, ver in PACKAGES.items()]
        try:
            p = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--no-update-notifier",
                                "--prefix", d, "--cache", os.path.join(d, ".npm-cache"), *specs],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=d, timeout=INSTALL_TIMEOUT)
            failed = p.returncode != 0 and f"exit {p.returncode}, {_npm_failure(p.stderr)}"
        except subprocess.TimeoutExpired:
            failed = f"no answer within {INSTALL_TIMEOUT} s"
        if failed:
            pytest.skip(f"MCP servers: cannot install {' '.join(specs)} with npm ({failed})")
        shutil.rmtree(os.path.join(d, ".npm-cache"), ignore_errors=True)
        nm = os.path.join(d, "node_modules", "@modelcontextprotocol")
        m = types.SimpleNamespace(node=node, sdk=os.path.join(nm, "sdk"),
                                  fs_server=os.path.join(nm, "server-filesystem", "dist", "index.js"),
                                  everything=os.path.join(nm, "server-everything", "dist", "index.js"))
        for name, ver in PACKAGES.items():
            with open(os.path.join(d, "node_modules", name, "package.json")) as f:
                assert json.load(f)["version"] == ver, name
        yield m
    finally:
        it.rm_tree(d)


def client(mcp, uid, spec):
    """Run the SDK's stdio client as uid on spec; its JSON answer (dict)."""
    p = it.run_as(uid, [mcp.node, CLIENT, mcp.sdk, json.dumps(spec)], timeout=90)
    assert p.returncode == 0 and p.stdout.strip(), (p.returncode, p.stdout, p.stderr)
    return json.loads(p.stdout)


def server(L, agent, cmd, opts=()):
    """The mcpServers entry a client config has for a launched server."""
    argv = L.run_argv(agent, *cmd, opts=opts)
    return {"command": argv[0], "args": argv[1:]}


def text_of(result):
    """(isError, text) of a CallToolResult."""
    return bool(result.get("isError")), "\n".join(c.get("text", "") for c in result.get("content", []))


def test_filesystem_servers_of_one_uid_read_only_their_agents_keys(mcp, launcher):
    L, v = launcher, launcher.vault
    keys = {"fs-a": "stripe/a_key", "fs-b": "github/b_key"}      # agent: its key
    values = {}
    for agent, pk in keys.items():
        L.agent(agent, "p-" + agent, UID_A)
        values[agent] = v.give(agent, "p-" + agent, pk)
    for agent, other in (("fs-a", "fs-b"), ("fs-b", "fs-a")):
        spec = server(L, agent, [mcp.node, mcp.fs_server, L.mount.path])
        spec["calls"] = [{"tool": "read_text_file", "arguments": {"path": L.mount.p(keys[agent])}},
                         {"tool": "read_text_file", "arguments": {"path": L.mount.p(keys[other])}},
                         {"tool": "list_directory", "arguments": {"path": L.mount.path}}]
        out = client(mcp, UID_A, spec)
        assert out["ok"], out
        (err, got), (other_err, other_text), _ = map(text_of, out["results"])
        assert (err, got.encode()) == (False, values[agent]), out["results"][0]
        assert other_err and "ENOENT" in other_text, out["results"][1]
        assert not any(x.decode() in other_text for x in values.values())
        # the read: node, this server's process, its instance under the launch cgroup
        opens = it.granted_opens(v.audit_rows(), path=keys[agent])
        assert opens, f"no granted open of {keys[agent]}"
        r = opens[-1]
        assert (r["agent"], r["uid"], r["exe"], r["tgid"]) == (agent, UID_A, mcp.node, out["pid"]), r
        assert r["cgroup"].startswith(f"{L.cgroup.name}/{agent}/i"), r
        launches = [x for x in L.rows() if x["result"] == "granted" and x["tgid"] == out["pid"]]
        assert [x["agent"] for x in launches] == [agent], launches
    # neither agent ever read the other's key
    for agent, other in (("fs-a", "fs-b"), ("fs-b", "fs-a")):
        assert not it.granted_opens(v.audit_rows(), path=keys[other], agent=agent)


def test_everything_server_gets_its_token_in_the_environment(mcp, launcher):
    L, v = launcher, launcher.vault
    L.agent("gh-b", "pb", UID_A)
    token = v.give("gh-b", "pb", "github/token", value=it.new_value("ghp_"))
    spec = server(L, "gh-b", [mcp.node, mcp.everything, "stdio"],
                  opts=("--env", "GITHUB_PERSONAL_ACCESS_TOKEN=github/token"))
    spec["env"] = {"FROM_THE_CLIENT_CONFIG": "1"}     # not passed without --pass
    spec["tool"], spec["arguments"] = "get-env", {}
    out = client(mcp, UID_A, spec)
    assert out["ok"], out
    err, text = text_of(out["results"][0])
    env = json.loads(text)
    assert not err and env["GITHUB_PERSONAL_ACCESS_TOKEN"] == token.decode(), sorted(env)
    assert "FROM_THE_CLIENT_CONFIG" not in env and "PATH" in env, sorted(env)
    assert token.decode() not in out["stderr"], "the value on the server's stderr"
    launches = [x for x in L.rows() if x["result"] == "granted" and x["tgid"] == out["pid"]]
    assert [x["agent"] for x in launches] == ["gh-b"], launches
    # revoked: scopeholdctl refuses before the server starts; one line naming
    # the variable and the path, never the value
    v.revoke("gh-b", "github/token")
    out = client(mcp, UID_A, spec)
    assert not out["ok"] and "results" not in out, out
    lines = out["stderr"].strip().splitlines()
    assert len(lines) == 1, out["stderr"]
    assert "GITHUB_PERSONAL_ACCESS_TOKEN" in lines[0] and "github/token" in lines[0], lines
    assert token.decode() not in json.dumps(out), "the value in the client's answer"
