/**
 * socketConnection turns Nagle's algorithm off before any write that could be held back by it:
 * before the second write, or before a first write larger than one segment. A connection that
 * writes once (a CONNACK) makes no setNoDelay call. Observed on a real accepted socket whose calls
 * are recorded on their way through.
 */

import assert from "node:assert/strict";
import { socketConnection } from "../../src/transport/socket.ts";

/** The accepted socket, with the names of the calls made on it recorded in order. */
function recorded(conn: Deno.Conn, calls: string[]): Deno.Conn {
  return new Proxy(conn, {
    get(target, key) {
      const value = Reflect.get(target, key, target);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        if (key === "write" || key === "setNoDelay") calls.push(key);
        return value.apply(target, args);
      };
    },
  });
}

async function readAll(conn: Deno.Conn, n: number): Promise<number> {
  const buf = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const r = await conn.read(buf.subarray(got));
    if (r === null) break;
    got += r;
  }
  return got;
}

Deno.test("socketConnection turns Nagle off just before the second write", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  using client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const calls: string[] = [];
  const conn = socketConnection(recorded(await listener.accept(), calls), {
    transport: "tcp",
    remoteAddress: "peer",
  });
  await conn.write(new Uint8Array([0x20, 0x02, 0x00, 0x00]));
  assert.deepEqual(calls, ["write"]);
  await conn.write(new Uint8Array([0xd0, 0x00]));
  await conn.write(new Uint8Array([0xd0, 0x00]));
  assert.deepEqual(calls, ["write", "setNoDelay", "write", "write"]);
  assert.equal(await readAll(client, 8), 8);
  conn.close();
  await conn.closed;
});

Deno.test("socketConnection turns Nagle off before a first write larger than one segment", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  using client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const calls: string[] = [];
  const conn = socketConnection(recorded(await listener.accept(), calls), {
    transport: "tcp",
    remoteAddress: "peer",
  });
  await conn.write(new Uint8Array(600));
  assert.deepEqual(calls, ["setNoDelay", "write"]);
  await conn.write(new Uint8Array(10));
  assert.deepEqual(calls, ["setNoDelay", "write", "write"]);
  assert.equal(await readAll(client, 610), 610);
  conn.close();
  await conn.closed;
});

Deno.test("socketConnection that writes once makes no setNoDelay call", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  using client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const calls: string[] = [];
  const conn = socketConnection(recorded(await listener.accept(), calls), {
    transport: "tcp",
    remoteAddress: "peer",
  });
  await conn.write(new Uint8Array([0x20, 0x02, 0x00, 0x05]));
  conn.close();
  await conn.closed;
  assert.equal(await readAll(client, 4), 4);
  assert.deepEqual(calls, ["write"]);
});
