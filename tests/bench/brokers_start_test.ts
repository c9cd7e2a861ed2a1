// bench/_brokers.ts startBroker("mosquitto"): Mosquitto is told its port before it starts, so
// another process may take that port first; the broker must then start on another port rather
// than take that process for Mosquitto.
import assert from "node:assert/strict";
import { startBroker } from "../../bench/_brokers.ts";
import { TestClient } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/mod.ts";
import { freePort } from "../_helpers/peers.ts";

Deno.test("bench startBroker: mosquitto whose port was taken before it bound it starts on another port", async () => {
  // A listener of this test holds the first port handed out, as another process would.
  using held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const heldPort = (held.addr as Deno.NetAddr).port;
  let picks = 0;
  const pickPort = () => picks++ === 0 ? heldPort : freePort();
  await using broker = await startBroker("mosquitto", { pickPort });
  assert.equal(picks, 2, "a second port after the taken one");
  assert.notEqual(broker.port, heldPort);
  // It is Mosquitto there: a CONNECT gets its CONNACK 0.
  await using client = await TestClient.connect(broker.port, { clientId: "bench-start" });
  assert.equal(client.ended, false);
});

Deno.test("bench startBroker: the connection floor answers CONNECT with CONNACK 0, closes after DISCONNECT, keeps an idle connection open", async () => {
  await using floor = await startBroker("connect-floor");
  // An idle client: still open once the other has come and gone.
  await using idle = await TestClient.connect(floor.port, { clientId: "idle" });
  await using client = await TestClient.connect(floor.port, { clientId: "bench-floor" });
  await client.send({ type: PacketType.DISCONNECT });
  // The server closes after DISCONNECT [MQTT-3.14.4-1] (the generator's connect mode relies on it
  // no more than on the peer's close, but it is what a broker does).
  assert.notEqual(await client.waitEnd(10_000), undefined, "the floor closed the connection");
  await idle.expectNothing(100);
  assert.equal(idle.ended, false, "the idle connection is still open");
});
