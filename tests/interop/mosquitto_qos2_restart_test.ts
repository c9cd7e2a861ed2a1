/**
 * Interop: `mosquitto_sub` (libmosquitto 2.0.11) as a persistent QoS 2 subscriber across broker
 * crashes and restarts. libmosquitto keeps a second entry for a packet id when a QoS 2 PUBLISH it
 * has acknowledged with PUBREC comes again, and that entry takes the PUBREL of the next message
 * sent with the same id, which is then never delivered. A crash between its PUBREC and the commit
 * of it makes the broker send the PUBLISH again, as it must [MQTT-4.4.0-1]; so the broker must not
 * start the session's ids at 1 again after a later restart (`src/broker/packet_id_mark.ts`).
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/mod.ts";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { startBroker, type TestBroker, waitFor } from "../_helpers/broker.ts";
import { CrashingStore } from "../_helpers/crashing_store.ts";
import { freePort } from "../_helpers/peers.ts";
import { publishPacket, TestClient } from "../_helpers/test_client.ts";
import { tempDir } from "../_helpers/temp_dir.ts";

/** `mosquitto_sub` with a persistent session, its lines as they come. */
function mosquittoSub(port: number): { lines: string[] } & AsyncDisposable {
  // Line-buffered: a pipe would hold its output back until the buffer fills.
  const child = new Deno.Command("stdbuf", {
    args: [
      ...["-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", String(port)],
      ...["-i", "sub-mosq", "-c", "-q", "2", "-d", "-t", "t/q2", "-F", "%t %p"],
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines: string[] = [];
  const reading = (async () => {
    let rest = "";
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      rest += decoder.decode(chunk, { stream: true });
      const parts = rest.split("\n");
      rest = parts.pop()!;
      lines.push(...parts);
    }
  })();
  return {
    lines,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch { /* it exited */ }
      await child.status;
      await reading;
    },
  };
}

/** The messages it printed. */
function printed(lines: readonly string[]): string[] {
  return lines.filter((l) => l.startsWith("t/q2 "));
}

/** Waits until the broker holds nothing in flight for `clientId` (its PUBCOMP was handled). */
async function settled(b: TestBroker, clientId: string): Promise<void> {
  await waitFor(
    () =>
      b.broker.clients().some((c) => c.clientId === clientId && c.connected && c.inflight === 0),
    undefined,
    `${clientId} to complete its QoS 2 flows`,
  );
}

/** Publishes a QoS 2 message up to its PUBREC, then sends PUBREL. */
async function publish2(pub: TestClient, payload: string, packetId: number): Promise<void> {
  await pub.send(publishPacket("t/q2", payload, { qos: 2, packetId }));
  await pub.expect(PacketType.PUBREC);
  await pub.send({ type: PacketType.PUBREL, packetId });
}

Deno.test({
  name:
    "interop mosquitto_sub: no QoS 2 message is lost after a crash between its PUBREC and the commit of it, and a restart",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    await using dir = await tempDir("amqtt-mosq-qos2-");
    const path = `${dir.path}/state.db`;
    const port = freePort();
    const config = { listeners: { default: { bind: `127.0.0.1:${port}` } } };
    // Run 1: the store "crashes" when it is to record the subscriber's PUBREC of m1.
    const store = new CrashingStore(path);
    let b: TestBroker | undefined = await startBroker(config, { store });
    // Started once the broker listens: mosquitto_sub gives up when its first connect fails.
    await using sub = mosquittoSub(port);
    try {
      await waitFor(
        () => sub.lines.some((l) => l.includes("received SUBACK")),
        undefined,
        "mosquitto_sub to subscribe",
      );
      store.crashAt((m) => m.type === "pubrelOutbound" && m.clientId === "sub-mosq");
      await using pub = await TestClient.connect(port, { clientId: "pub" });
      await publish2(pub, "m1", 1);
      await waitFor(() => store.crashed, undefined, "the PUBREC of m1 to reach the store");
    } finally {
      await b[Symbol.asyncDispose]();
      b = undefined;
    }
    {
      // Run 2: m1 is sent again with DUP; libmosquitto now holds two entries for its id.
      await using b = await startBroker(config, { store: SqliteStore.open(path) });
      await waitFor(() => printed(sub.lines).length === 1, undefined, "m1 to be printed");
      await settled(b, "sub-mosq");
    }
    {
      // Run 3: new messages must not take the id of the entry libmosquitto kept.
      await using b = await startBroker(config, { store: SqliteStore.open(path) });
      await waitFor(
        () => b.broker.clients().some((c) => c.clientId === "sub-mosq" && c.connected),
        undefined,
        "mosquitto_sub to reconnect",
      );
      await using pub = await TestClient.connect(port, { clientId: "pub" });
      await publish2(pub, "m2", 2);
      await pub.expect(PacketType.PUBCOMP);
      await publish2(pub, "m3", 3);
      await pub.expect(PacketType.PUBCOMP);
      await settled(b, "sub-mosq");
      await waitFor(() => printed(sub.lines).length >= 3, undefined, "m2 and m3 to be printed");
      assert.deepEqual(printed(sub.lines), ["t/q2 m1", "t/q2 m2", "t/q2 m3"]);
    }
  },
});
