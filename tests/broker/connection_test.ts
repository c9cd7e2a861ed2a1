// BrokerConnection's life as the broker sees it: a connection that ends at once, inside its own
// start (the transport calls back without waiting), leaves the broker's books as it found them.
import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/constants.ts";
import { socketConnection } from "../../src/transport/socket.ts";
import { startBroker } from "../_helpers/broker.ts";
import { TestClient } from "../_helpers/test_client.ts";

Deno.test("Broker: a handed-over connection that is closed already ends at once and frees its place under max-connections", async () => {
  await using b = await startBroker({
    listeners: {
      default: { bind: "127.0.0.1:0" },
      mine: { type: "external", max_connections: 1 },
    },
  });
  using own = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (own.addr as Deno.NetAddr).port;
  // The host accepts a socket, closes it (its peer went away), and hands it over all the same:
  // the socket's readThen reports the end before the broker's connection is even constructed.
  const gone = await Deno.connect({ hostname: "127.0.0.1", port });
  const closed = socketConnection(await own.accept(), { transport: "tcp", remoteAddress: "gone" });
  closed.close();
  gone.close();
  b.broker.acceptConnection(closed, "mine");
  // The next one is within max-connections 1 and served.
  const accepting = own.accept().then((conn) =>
    b.broker.acceptConnection(
      socketConnection(conn, { transport: "tcp", remoteAddress: "next" }),
      "mine",
    )
  );
  const client = await TestClient.connect(port, { clientId: "after-closed" });
  try {
    await accepting;
    assert.equal(b.log.has("max-connections"), false);
    await client.send({ type: PacketType.PINGREQ });
    await client.expect(PacketType.PINGRESP);
    assert.equal(b.broker.stats.clientsConnected, 1);
  } finally {
    await client.disconnect();
  }
});
