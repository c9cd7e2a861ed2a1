/**
 * Idle MQTT connections for the memory tests (75, 76): CONNECT, CONNACK, then silence.
 *
 * @module
 */

import assert from "node:assert/strict";

/** CONNECT, MQTT 3.1.1, clean session, keepalive 600 s. */
export function connectPacket(clientId: string): Uint8Array {
  const id = new TextEncoder().encode(clientId);
  return new Uint8Array([
    0x10,
    12 + id.length,
    0,
    4,
    77,
    81,
    84,
    84,
    4,
    2,
    2,
    88,
    0,
    id.length,
    ...id,
  ]);
}

/** Opens an idle MQTT connection: CONNECT sent, CONNACK read. */
export async function openIdle(port: number, clientId: string): Promise<Deno.TcpConn> {
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await c.write(connectPacket(clientId));
    const connack = new Uint8Array(4);
    for (let got = 0; got < 4;) {
      const n = await c.read(connack.subarray(got));
      if (n === null) throw new Error("the broker closed a connection before its CONNACK");
      got += n;
    }
    assert.deepEqual([...connack], [0x20, 2, 0, 0]);
    return c;
  } catch (e) {
    c.close();
    throw e;
  }
}
