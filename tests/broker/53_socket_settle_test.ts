/**
 * Broker, area 53: the socket wrapper settles each read and write with one callback per
 * connection for success and failure alike; a failure must still read as one.
 *
 * @module
 */

import assert from "node:assert/strict";
import { socketConnection } from "../../src/transport/socket.ts";

Deno.test("53 socket: a read ends with null once the peer closes, and the connection is closed", async () => {
  using server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  const conn = socketConnection(await server.accept(), { transport: "tcp", remoteAddress: "peer" });
  try {
    await client.write(new Uint8Array([1, 2, 3]));
    assert.deepEqual([...(await conn.read!())!], [1, 2, 3]);
    client.close();
    assert.equal(await conn.read!(), null);
    assert.equal(conn.isClosed, true);
  } finally {
    conn.close();
  }
});

Deno.test("53 socket: a write after the peer went away fails instead of resolving", async () => {
  using server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  const conn = socketConnection(await server.accept(), { transport: "tcp", remoteAddress: "peer" });
  try {
    client.close();
    // The first writes may still be taken by the kernel; once the peer's reset is back, the
    // write rejects, with an error (not a count).
    let failure: unknown;
    for (let i = 0; i < 1000 && failure === undefined; i++) {
      try {
        await conn.write(new Uint8Array(1024));
      } catch (error) {
        failure = error;
      }
    }
    assert.ok(failure instanceof Error, `the write failed with ${String(failure)}`);
  } finally {
    conn.close();
  }
});
