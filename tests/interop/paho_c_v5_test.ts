/**
 * Interop at MQTT 5.0: the Eclipse Paho C sample clients `paho_c_pub` / `paho_c_sub` (asynchronous
 * library) and `paho_cs_pub` / `paho_cs_sub` (synchronous library), Debian package
 * `paho.mqtt.c-examples`, with `-V 5` against our broker over tcp and ws: QoS 0, 1 and 2 round
 * trips, each connection checked to be at level 5.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { QoS } from "../../src/packet/constants.ts";
import { delay, waitFor } from "../_helpers/broker.ts";
import { SharedCerts } from "../_helpers/certs.ts";
import { runTool, Tool } from "../_helpers/peers.ts";
import {
  assertConnections,
  interopTest,
  type OurBroker,
  startOurBroker,
  type Transport,
  whenSubscribed,
} from "./_peers.ts";

const certs = new SharedCerts();

/** The asynchronous and the synchronous sample pairs. */
const SAMPLES = [
  { pub: "paho_c_pub", sub: "paho_c_sub" },
  { pub: "paho_cs_pub", sub: "paho_cs_sub" },
] as const;

function url(b: OurBroker, t: Transport): string {
  return `${t}://127.0.0.1:${b.port(t)}${t === "ws" ? "/mqtt" : ""}`;
}

/** Starts the subscriber sample at level 5, QoS 2, and waits until our broker holds it. */
async function sub5(b: OurBroker, t: Transport, bin: string, id: string): Promise<Tool> {
  const sub = new Tool(bin, ["-c", url(b, t), "-V", "5", "-i", id, "-t", "paho5/t", "-q", "2"]);
  await whenSubscribed(sub, b.broker, { clientId: id, ms: 5000 });
  assert.equal(sub.exited, false, `${bin} exited early`);
  return sub;
}

/** Stops a subscriber sample the way a user does (Ctrl-C: it disconnects); returns its lines. */
async function stop(sub: Tool, bin: string): Promise<string[]> {
  // The broker has written the messages; give the sample a moment to read and print them.
  await delay(150);
  sub.kill("SIGINT");
  const r = await sub.result();
  assert.equal(r.timedOut, false, `${bin} was killed at its deadline`);
  return r.stdout.split("\n").filter((l) => l !== "");
}

for (const s of SAMPLES) {
  for (const t of ["tcp", "ws"] as const) {
    interopTest(
      `paho.mqtt.c ${s.pub}/${s.sub} -V 5 over ${t} -> amqtt: QoS 0, 1 and 2 publish and subscribe`,
      async () => {
        await using b = await startOurBroker(await certs.get());
        const seen: { qos: QoS; payload: string }[] = [];
        b.broker.on("message", (m) => {
          seen.push({ qos: m.qos, payload: new TextDecoder().decode(m.payload) });
        });
        await using sub = await sub5(b, t, s.sub, `p5-sub-${t}`);
        for (const qos of [0, 1, 2]) {
          const r = await runTool(s.pub, [
            ...["-c", url(b, t), "-V", "5", "-i", `p5-pub-${t}-${qos}`],
            ...["-t", "paho5/t", "-q", String(qos), "-m", `v5 payload ${qos}`],
          ]);
          assert.equal(r.code, 0, `${s.pub} failed: ${r.stderr}`);
        }
        await waitFor(() => seen.length === 3, 5000, "three publishes");
        assert.deepEqual(seen.map((m) => m.qos), [0, 1, 2], "each QoS flow completed at its level");
        await waitFor(() => b.broker.stats.publishSent >= 3, 5000, "three deliveries");
        assert.deepEqual(await stop(sub, s.sub), ["v5 payload 0", "v5 payload 1", "v5 payload 2"]);
        assertConnections(b, t, 5);
      },
    );
  }
}

interopTest("paho.mqtt.c -V 5 interop certificates are removed", async () => {
  const dir = (await certs.get()).dir;
  await certs.remove();
  await assert.rejects(Deno.stat(dir), Deno.errors.NotFound);
});
