/**
 * What a user running the broker from source downloads, and what `deno doc` prints: only the
 * runtime's npm packages land in an empty DENO_DIR (the test-only ones live in the `tests/` and
 * `bench/` scopes of deno.json), and the public entry points document without type warnings.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** The npm packages the broker and the tools need (see deno.json "imports"). */
const RUNTIME = ["commander", "hash-wasm", "ws", "yaml"];

async function deno(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", ...env },
    stdin: "null",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

async function list(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return names.sort();
}

Deno.test("deno run -A cli/amqtt.ts --version on an empty DENO_DIR downloads only the runtime's npm packages (no aedes, mqtt, fast-check, @types)", async () => {
  const denoDir = await Deno.makeTempDir({ prefix: "amqtt_deno_dir_" });
  try {
    const r = await deno(["run", "-A", "cli/amqtt.ts", "--version"], { DENO_DIR: denoDir });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\d+\.\d+\.\d+\n$/);
    const registry = `${denoDir}/npm/registry.npmjs.org`;
    const fetched = await list(registry);
    assert.ok(fetched.length > 0, `npm packages under ${registry}`);
    assert.deepEqual(fetched, RUNTIME);
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
});

Deno.test("deno doc on broker.ts, client.ts and mod.ts prints no 'Failed resolving types' warning", async () => {
  for (const entry of ["broker.ts", "client.ts", "mod.ts"]) {
    const r = await deno(["doc", entry]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /Failed resolving types|Warning/, `${entry}: ${r.stderr}`);
    assert.match(r.stdout, /class|function/);
  }
});
