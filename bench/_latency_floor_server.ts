/**
 * The smallest MQTT 3.1.1 QoS 0 forwarder a Deno program can be: it answers CONNECT, SUBSCRIBE and
 * PINGREQ and copies every PUBLISH to every subscriber, over `Deno.listen` with TCP_NODELAY and one
 * read and one write per packet. `bench/latency_floor.ts` runs it to show what Deno's socket layer
 * alone adds to a message's latency. Prints `port N`.
 *
 * Usage: deno run -A bench/_latency_floor_server.ts
 *
 * @module
 */

const subscribers = new Set<Deno.TcpConn>();

/** The fixed header's size of the whole packet at the start of `data`, or -1 while incomplete. */
function headerSize(data: Uint8Array): [header: number, total: number] | undefined {
  let length = 0, multiplier = 1, i = 1;
  for (;;) {
    if (i >= data.length) return undefined;
    const byte = data[i++]!;
    length += (byte & 127) * multiplier;
    multiplier *= 128;
    if ((byte & 128) === 0) break;
  }
  return i + length <= data.length ? [i, i + length] : undefined;
}

/**
 * Serves one connection until it ends (exported for bench/latency_work.ts, which runs the
 * forwarder in its own process).
 *
 * @param conn the accepted connection
 */
export async function serve(conn: Deno.TcpConn): Promise<void> {
  conn.setNoDelay(true);
  const chunk = new Uint8Array(65536);
  let pending = new Uint8Array(0);
  try {
    for (;;) {
      const n = await conn.read(chunk);
      if (n === null) break;
      const data = new Uint8Array(pending.length + n);
      data.set(pending);
      data.set(chunk.subarray(0, n), pending.length);
      let offset = 0;
      for (;;) {
        const rest = data.subarray(offset);
        const sizes = headerSize(rest);
        if (sizes === undefined) break;
        const [header, length] = sizes;
        const packet = rest.subarray(0, length);
        const type = packet[0]! >> 4;
        if (type === 1) await conn.write(new Uint8Array([0x20, 2, 0, 0]));
        else if (type === 8) {
          subscribers.add(conn);
          // SUBACK with the SUBSCRIBE's packet id, granting QoS 0.
          await conn.write(new Uint8Array([0x90, 3, packet[header]!, packet[header + 1]!, 0]));
        } else if (type === 3) {
          for (const s of subscribers) s.write(packet.slice()).catch(() => {});
        } else if (type === 12) await conn.write(new Uint8Array([0xd0, 0]));
        offset += length;
      }
      pending = data.slice(offset);
    }
  } catch { /* the peer went away */ }
  subscribers.delete(conn);
  try {
    conn.close();
  } catch { /* closed already */ }
}

if (import.meta.main) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  console.log(`port ${(listener.addr as Deno.NetAddr).port}`);
  for await (const conn of listener) serve(conn);
}
