// A listener of type `external`: the host program accepts connections itself and hands them to
// the broker (aMQTT's external_connected), here from its own TCP listener.
import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/constants.ts";
import { socketConnection } from "../../src/transport/socket.ts";
import { startBroker } from "../_helpers/broker.ts";
import { publishPacket, TestClient, text } from "../_helpers/test_client.ts";

Deno.test("15 external: connections handed over by the host are served and count for max-connections", async () => {
  await using b = await startBroker({
    listeners: {
      default: { bind: "127.0.0.1:0" },
      mine: { type: "external", max_connections: 1 },
    },
  });
  const own = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = (async () => {
    for (let i = 0; i < 2; i++) {
      const conn = await own.accept();
      b.broker.acceptConnection(
        socketConnection(conn, { transport: "tcp", remoteAddress: "host-accepted" }),
        "mine",
      );
    }
  })();
  try {
    const port = (own.addr as Deno.NetAddr).port;
    const sub = await TestClient.connect(port, { clientId: "ext-sub" });
    await sub.subscribe({ "ext/#": 0 });
    const pub = await TestClient.connect(b.port, { clientId: "tcp-pub" });
    await pub.send(publishPacket("ext/a", "through the host"));
    assert.equal(text(await sub.expect(PacketType.PUBLISH)), "through the host");
    // The second handed-over connection exceeds max-connections 1 and is closed.
    const extra = await TestClient.open(port);
    await extra.expectClosed();
    await extra.close();
    await pub.disconnect();
    await sub.disconnect();
  } finally {
    await accepting;
    own.close();
  }
});

Deno.test("15 external: only an external listener takes handed-over connections", async () => {
  await using b = await startBroker();
  const own = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({
    hostname: "127.0.0.1",
    port: (own.addr as Deno.NetAddr).port,
  });
  const conn = await own.accept();
  try {
    assert.throws(
      () =>
        b.broker.acceptConnection(
          socketConnection(conn, { transport: "tcp", remoteAddress: "x" }),
          "default",
        ),
      TypeError,
    );
  } finally {
    conn.close();
    client.close();
    own.close();
  }
});
