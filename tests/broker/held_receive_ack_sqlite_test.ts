/**
 * A single broker on a SQLite store: a QoS 1/2 message whose delivery to a persistent session
 * waits on a receive authorization (a plugin that answers half a second later) is acknowledged to
 * its publisher (PUBACK, PUBREC) only once that delivery is stored, so that the broker killed with
 * SIGKILL right after the reply and started again on the same file still delivers it. The cluster
 * has the same check (`tests/cluster/held_receive_ack_test.ts`); this one has no Redis. The broker
 * is a real process (`tests/cluster/_held_receive_node.ts`, `amqtt` with the plugin).
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { publishPacket, TestClient } from "../_helpers/test_client.ts";
import { waitFor } from "../_helpers/broker.ts";
import { type CliProcess, type Entry, spawnCli, tempDir } from "../cli/_helpers.ts";
import { MQTTClient } from "../../client.ts";
import type { ApplicationMessage } from "../../src/session/client_session.ts";

/** Starts the broker with the slow receive authorization; resolves with its port. */
async function start(config: string): Promise<{ proc: CliProcess; port: number }> {
  const proc = spawnCli("../tests/cluster/_held_receive_node.ts" as Entry, [config], {
    timeoutMs: 180_000,
  });
  const [, port] = await proc.waitForStderr(/Listener "default" bound to [^:]+:(\d+)/, 60_000);
  await proc.waitForStderr(/amqtt test started/, 60_000);
  return { proc, port: Number(port) };
}

Deno.test({
  name:
    "a single broker on SQLite acknowledges a QoS 1 or 2 message whose delivery to a persistent session waits on a receive authorization only once that delivery is stored: killed right after, it delivers it when started again [MQTT-4.3.2-1] [MQTT-4.3.3-1]",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    await using dir = await tempDir();
    const config = `${dir.path}/broker.yaml`;
    await Deno.writeTextFile(
      config,
      "listeners:\n  default:\n    bind: 127.0.0.1:0\n" +
        `persistence:\n  path: ${dir.path}/state.db\n  sync: full\n`,
    );
    let { proc, port } = await start(config);
    try {
      {
        await using sub = new MQTTClient({ clientId: "sub", config: { auto_reconnect: false } });
        await sub.connect(`mqtt://127.0.0.1:${port}`, { cleanSession: false });
        assert.deepEqual(await sub.subscribe([{ topic: "slow/#", qos: 2 }]), [2]);
        await sub.disconnect();
      }
      {
        await using pub = await TestClient.connect(port, { clientId: "pub" });
        await pub.send(publishPacket("slow/1", "one", { qos: 1, packetId: 1 }));
        assert.equal((await pub.expect(PacketType.PUBACK)).packetId, 1);
        await pub.send(publishPacket("slow/2", "two", { qos: 2, packetId: 2 }));
        assert.equal((await pub.expect(PacketType.PUBREC)).packetId, 2);
        proc.kill("SIGKILL");
        await proc.done;
      }
      ({ proc, port } = await start(config));
      await using back = new MQTTClient({ clientId: "sub", config: { auto_reconnect: false } });
      await back.connect(`mqtt://127.0.0.1:${port}`, { cleanSession: false });
      const got: ApplicationMessage[] = [];
      const reading = (async () => {
        for await (const m of back.messages()) {
          got.push(m);
          if (got.length === 2) break;
        }
      })();
      // A guard against a lost message hanging the test, not a bound it asserts.
      await waitFor(() => got.length >= 2, 30_000, "both messages").catch(() => {});
      assert.deepEqual(
        got.map((m) => `${m.topic}=${new TextDecoder().decode(m.payload)}`),
        ["slow/1=one", "slow/2=two"],
      );
      assert.ok(back.connected);
      await back.disconnect();
      await reading;
    } finally {
      proc.kill("SIGTERM");
      await proc.done;
    }
  },
});
