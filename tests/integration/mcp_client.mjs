// mcp_client.mjs - an MCP client as a desktop or IDE client is one: the
// official TypeScript SDK's stdio client starts `command` with `args` (and
// `env`, else the SDK's default environment) and calls tools on it.
//
//   node mcp_client.mjs SDK_DIR SPEC_JSON
//
// SDK_DIR is the installed @modelcontextprotocol/sdk package directory (it
// lives in the test's temporary npm prefix, not beside this script). SPEC is
// {"command", "args", "env"?, "tool", "arguments"} or, for several calls on
// one server, {"command", "args", "env"?, "calls": [{"tool", "arguments"}]}.
// Prints one JSON document on stdout:
//   {"ok": true, "pid": N, "results": [CallToolResult, ...], "stderr": "..."}
//   {"ok": false, "pid": N|null, "error": "...", "stderr": "..."}
// where stderr is what the server (here: scopeholdctl, then the server it
// execs) wrote on its stderr. Exit status 0 either way; 2 for bad usage.
import { join } from "node:path";
import { pathToFileURL } from "node:url";

if (process.argv.length !== 4) {
	process.stderr.write("usage: node mcp_client.mjs SDK_DIR SPEC_JSON\n");
	process.exit(2);
}
const sdk = process.argv[2];
let spec;
try {
	spec = JSON.parse(process.argv[3]);
} catch (e) {
	process.stderr.write(`mcp_client: SPEC_JSON is not JSON: ${e.message}\n`);
	process.exit(2);
}
const load = (rel) => import(pathToFileURL(join(sdk, "dist", "esm", rel)).href);
const { Client } = await load("client/index.js");
const { StdioClientTransport } = await load("client/stdio.js");

const calls = spec.calls ?? [{ tool: spec.tool, arguments: spec.arguments ?? {} }];
const params = { command: spec.command, args: spec.args ?? [], stderr: "pipe" };
if (spec.env)
	params.env = spec.env;
const transport = new StdioClientTransport(params);
let stderr = "";
const stderrDone = new Promise((resolve) => {
	transport.stderr.on("data", (chunk) => { stderr += chunk.toString(); });
	transport.stderr.on("end", resolve);
});
const client = new Client({ name: "scopehold-test-client", version: "1.0.0" });

const out = { ok: false, pid: null };
try {
	await client.connect(transport);
	out.pid = transport.pid;
	out.results = [];
	for (const c of calls)
		out.results.push(await client.callTool({ name: c.tool, arguments: c.arguments ?? {} }));
	out.ok = true;
} catch (e) {
	out.error = String(e?.message ?? e);
	out.pid = out.pid ?? transport.pid;
} finally {
	try {
		await client.close();
	} catch {
		// the server may be gone already
	}
}
// all of the server's stderr: its pipe ends once it (and any child holding
// the pipe) has exited; a child left behind must not hang the client
let bound;
await Promise.race([stderrDone, new Promise((resolve) => { bound = setTimeout(resolve, 5000); })]);
clearTimeout(bound);
out.stderr = stderr;
process.stdout.write(JSON.stringify(out) + "\n");
