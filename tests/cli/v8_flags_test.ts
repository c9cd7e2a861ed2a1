/**
 * The broker's V8 flags (`cli/_v8_flags.ts`): `amqtt` and `amqtt broker` start themselves again
 * in the same process with `--max-semi-space-size=2` in `DENO_V8_FLAGS`, unless the user chose V8
 * flags; real processes, their environment read from `/proc`.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { MQTTClient } from "../../client.ts";
import { BROKER_V8_FLAGS } from "../../cli/_v8_flags.ts";
import { type Entry, spawnCli, tempDir } from "./_helpers.ts";

const linux = Deno.build.os === "linux";

/** The process's `DENO_V8_FLAGS`, from the environment it was (last) started with. */
function v8FlagsOf(pid: number): string | undefined {
  const env = Deno.readTextFileSync(`/proc/${pid}/environ`).split("\0");
  return env.find((e) => e.startsWith("DENO_V8_FLAGS="))?.slice("DENO_V8_FLAGS=".length);
}

async function brokerConfig(dir: string): Promise<string> {
  const config = `${dir}/broker.yaml`;
  await Deno.writeTextFile(config, "listeners:\n  default:\n    bind: 127.0.0.1:0\n");
  return config;
}

/** A round trip through the broker on `port`: it serves after its new start. */
async function roundTrip(port: string): Promise<void> {
  await using client = new MQTTClient();
  await client.connect(`mqtt://127.0.0.1:${port}`);
  await client.subscribe([{ topic: "t", qos: 1 }]);
  await client.publish("t", "after the new start", { qos: 1 });
  const m = await client.deliverMessage({ timeout: 5000 });
  assert.equal(new TextDecoder().decode(m.payload), "after the new start");
  await client.disconnect();
}

for (const [entry, args] of [["amqtt.ts", []], ["main.ts", ["broker"]]] as [Entry, string[]][]) {
  Deno.test({
    name: `${
      [entry, ...args].join(" ")
    } runs the broker in its own process with ${BROKER_V8_FLAGS}`,
    ignore: !linux,
    fn: async () => {
      assert.equal(BROKER_V8_FLAGS, "--max-semi-space-size=2");
      await using dir = await tempDir();
      await using broker = spawnCli(entry, [...args, "-c", await brokerConfig(dir.path)]);
      const [, port] = await broker.waitForStderr(/127\.0\.0\.1:(\d+)/);
      await broker.waitForStderr(/started/);
      // The pid the caller holds is the broker's (execve keeps it), now with the flags.
      assert.equal(v8FlagsOf(broker.child.pid), BROKER_V8_FLAGS);
      await roundTrip(port!);
      broker.kill("SIGTERM");
      const result = await broker.done;
      assert.equal(result.code, 0, result.stderr);
      // Started once as far as the user sees: one set of start-up lines.
      assert.equal(result.stderr.match(/started/g)?.length, 1, result.stderr);
    },
  });
}

Deno.test({
  name: "amqtt keeps the V8 flags a user gave in DENO_V8_FLAGS",
  ignore: !linux,
  fn: async () => {
    await using dir = await tempDir();
    await using broker = spawnCli("amqtt.ts", ["-c", await brokerConfig(dir.path)], {
      env: { DENO_V8_FLAGS: "--max-semi-space-size=4" },
    });
    const [, port] = await broker.waitForStderr(/127\.0\.0\.1:(\d+)/);
    await broker.waitForStderr(/started/);
    assert.equal(v8FlagsOf(broker.child.pid), "--max-semi-space-size=4");
    await roundTrip(port!);
    broker.kill("SIGTERM");
    assert.equal((await broker.done).code, 0);
  },
});

Deno.test({
  name: "amqtt keeps the V8 flags a user gave with --v8-flags",
  ignore: !linux,
  fn: async () => {
    await using dir = await tempDir();
    const config = await brokerConfig(dir.path);
    const script = fileURLToPath(new URL("../../cli/amqtt.ts", import.meta.url));
    const deno = fileURLToPath(new URL("../../deno.json", import.meta.url));
    const run = async (denoFlags: string[], scriptArgs: string[]) => {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--config", deno, ...denoFlags, script, ...scriptArgs],
        stdout: "null",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      }).spawn();
      const decoder = new TextDecoder();
      let text = "";
      const reader = child.stderr.getReader();
      while (!/started/.test(text)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      const flags = v8FlagsOf(child.pid);
      child.kill("SIGTERM");
      for (;;) if ((await reader.read()).done) break;
      const status = await child.status;
      assert.equal(status.code, 0, text);
      return flags;
    };
    // Deno's own flag: the user chose; the process is left as it is (no DENO_V8_FLAGS).
    assert.equal(await run(["--v8-flags=--max-semi-space-size=8"], ["-c", config]), undefined);
  },
});

Deno.test("the broker's V8 flags cap V8's young generation at 2 MB a half (node:v8 heap spaces)", async () => {
  // A process keeping one object in four of two million: the young generation grows as far as
  // it may. Its size with the broker's flags against V8's own.
  const code = `import v8 from "node:v8";
    const keep = [];
    for (let i = 0; i < 2e6; i++) { const o = { i }; if (i % 4 === 0) keep.push(o); }
    console.log(v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size);`;
  const youngSize = async (env: Record<string, string>) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", code],
      env,
      stderr: "inherit",
    }).output();
    assert.ok(out.success);
    return Number(new TextDecoder().decode(out.stdout));
  };
  const capped = await youngSize({ DENO_V8_FLAGS: BROKER_V8_FLAGS });
  const own = await youngSize({});
  assert.ok(capped <= 4 * 1024 * 1024, `young generation ${capped} B with the flags`);
  assert.ok(own > 4 * capped, `young generation ${own} B without them`);
});
