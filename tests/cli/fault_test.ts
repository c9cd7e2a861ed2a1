// amqtt after an unhandled promise rejection (a bug): the error is logged with its stack, the
// broker shuts down as for SIGTERM (the store keeps every message it acknowledged) and the
// process exits with 70, for a supervisor to restart it. A real process, a real SQLite file, our
// clients.
import assert from "node:assert/strict";
import { MQTTClient } from "../../client.ts";
import { FAULT_EXIT_CODE } from "../../cli/amqtt.ts";
import { type Entry, spawnCli, tempDir } from "./_helpers.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

async function start(entry: string, config: string) {
  const process = spawnCli(entry as Entry, ["-c", config], { timeoutMs: 120_000 });
  const [, port] = await process.waitForStderr(/Listener "default" bound to [^:]+:(\d+)/, 60_000);
  await process.waitForStderr(/amqtt \S+ started/, 60_000);
  return { process, url: `mqtt://127.0.0.1:${port}` };
}

Deno.test(
  "amqtt logs an unhandled rejection, shuts down keeping what it acknowledged, and exits with 70",
  opts,
  async () => {
    await using dir = await tempDir();
    const config = `${dir.path}/broker.yaml`;
    await Deno.writeTextFile(
      config,
      `listeners:\n  default:\n    bind: 127.0.0.1:0\npersistence:\n  path: ${dir.path}/state.db\n`,
    );
    const faulty = await start("../tests/cli/_fault_broker.ts", config);
    {
      // A persistent session away, and a QoS 1 message acknowledged (so stored) for it.
      await using keeper = new MQTTClient({
        clientId: "keeper",
        config: { auto_reconnect: false },
      });
      await keeper.connect(faulty.url, { cleanSession: false });
      assert.deepEqual(await keeper.subscribe([{ topic: "k/#", qos: 1 }]), [1]);
      await keeper.disconnect();
      await using pub = new MQTTClient({ clientId: "pub", config: { auto_reconnect: false } });
      await pub.connect(faulty.url);
      await pub.publish("k/1", "kept", { qos: 1 });

      faulty.process.kill("SIGUSR1");
      const result = await faulty.process.done;
      assert.equal(result.code, FAULT_EXIT_CODE, result.stderr);
      assert.match(
        result.stderr,
        /ERROR - Internal error \(a bug, please report it\): unhandled promise rejection: Error: injected fault\n\s+at /,
      );
      assert.match(result.stderr, /shutting down \(exit code 70\)/);
      assert.match(result.stderr, /Broker stopped/);
      assert.equal(pub.connected, false);
    }

    // The store holds the session and its message: a broker on it delivers them.
    const next = await start("amqtt.ts", config);
    try {
      await using keeper = new MQTTClient({
        clientId: "keeper",
        config: { auto_reconnect: false },
      });
      const messages = keeper.messages()[Symbol.asyncIterator]();
      await keeper.connect(next.url, { cleanSession: false });
      const first = await messages.next();
      assert.equal(first.done, false);
      assert.equal(first.value.topic, "k/1");
      assert.equal(new TextDecoder().decode(first.value.payload), "kept");
      await keeper.disconnect();
    } finally {
      next.process.kill("SIGTERM");
      assert.equal((await next.process.done).code, 0);
    }
  },
);
