/**
 * The {@linkcode Mosquitto} test helper: its ports are picked free before mosquitto binds them, so
 * another process may take one in between; the helper must then start on other ports rather than
 * take that process for mosquitto.
 *
 * @module
 */

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/constants.ts";
import { freePort, Mosquitto } from "../_helpers/peers.ts";
import { publishPacket, TestClient } from "../_helpers/test_client.ts";

/** A listener of this test holding a port, as another process would. */
function holdPort(): Deno.Listener & { port: number } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return Object.assign(listener, { port: (listener.addr as Deno.NetAddr).port });
}

/** Subscribes and publishes through the broker on `port`: it is a working MQTT broker. */
async function assertWorks(port: number): Promise<void> {
  await using sub = await TestClient.connect(port, { clientId: "helper-sub" });
  await sub.subscribe({ "h/t": 1 });
  await using pub = await TestClient.connect(port, { clientId: "helper-pub" });
  await pub.send(publishPacket("h/t", "hello", { qos: 1, packetId: 1 }));
  await pub.expect(PacketType.PUBACK);
  const got = await sub.expect(PacketType.PUBLISH);
  assert.equal(new TextDecoder().decode(got.payload), "hello");
}

for (const [held, which] of [[0, "TCP"], [1, "websockets"]] as const) {
  Deno.test(`Mosquitto.start: a port taken before mosquitto binds it (for its ${which} listener) makes it start on other ports`, async () => {
    using listener = holdPort();
    // The held port is handed out for the listener `held`, free ones for the others.
    let picks = 0;
    const pickPort = () => picks++ === held ? listener.port : freePort();
    await using m = await Mosquitto.start({ listeners: [{ protocol: "websockets" }], pickPort });
    assert.ok(picks >= 4, `ports picked again after the failed start (${picks} picks)`);
    assert.ok(!m.ports.includes(listener.port), `ports ${m.ports} avoid the held ${listener.port}`);
    const log = await Deno.readTextFile(m.log);
    assert.match(
      log,
      /Address already in use|Unable to create websockets listener/,
      "the first attempt failed on the held port",
    );
    assert.match(log, /mosquitto version \S+ running/);
    await assertWorks(m.port);
  });
}

Deno.test("Mosquitto.restart: a port taken while it was stopped is reported as such", async () => {
  await using m = await Mosquitto.start();
  await m.stop();
  {
    using _held = Deno.listen({ hostname: "127.0.0.1", port: m.port });
    await assert.rejects(
      m.restart(),
      new RegExp(`mosquitto cannot start again: one of its ports ${m.port} was taken meanwhile`),
    );
  }
  // Free again: it comes back on the same port.
  await m.restart();
  await assertWorks(m.port);
});

Deno.test("Mosquitto.start rejects a log_dest of its own in extra (the helper reads its own log)", async () => {
  await assert.rejects(
    Mosquitto.start({ extra: ["log_dest file {dir}/other.log"] }),
    TypeError,
  );
});

Deno.test("freePort: a free port below the kernel's ephemeral range, which outgoing connections and bind(0) do not take", () => {
  const range = Deno.readTextFileSync("/proc/sys/net/ipv4/ip_local_port_range");
  const low = Number(range.trim().split(/\s+/)[0]);
  for (let i = 0; i < 20; i++) {
    const port = freePort();
    assert.ok(port >= 10_000 && port < low, `${port} below ${low}`);
    // Free: this test can listen there.
    Deno.listen({ hostname: "127.0.0.1", port }).close();
  }
});
