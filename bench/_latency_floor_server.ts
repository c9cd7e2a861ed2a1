/**
 * The smallest MQTT 3.1.1 forwarder a Deno program can be, for QoS 0 and QoS 1: what a broker must
 * at least do on Deno's socket layer, and nothing else. It answers CONNECT, SUBSCRIBE (granting the
 * QoS asked for, at most 1) and PINGREQ; for each PUBLISH it writes a copy to every subscriber (a
 * QoS 1 one with a packet id of that subscriber's, marked in flight until its PUBACK) and then, at
 * QoS 1, the PUBACK to the publisher; a subscriber's PUBACK clears its mark. No topic matching, no
 * sessions, no queues, no resends. Each packet is its own `write` (at 5k msg/s there is nothing to
 * batch), over `Deno.listen` with TCP_NODELAY, reads into one 64 KiB buffer kept for good.
 * `bench/latency_floor.ts` and `compare.ts --brokers floor` run it to show what Deno's socket layer
 * alone adds to a message's latency. Prints `port N`.
 *
 * Usage: deno run -A bench/_latency_floor_server.ts
 *
 * @module
 */

/** A subscriber: its connection, granted QoS, next packet id and the ids in flight. */
interface Subscriber {
  conn: Deno.TcpConn;
  qos: number;
  nextId: number;
  inFlight: Uint8Array;
}

const subscribers: Subscriber[] = [];

/** Total length of the packet at `offset` and where its variable header starts, or undefined. */
function frame(
  data: Uint8Array,
  offset: number,
  end: number,
): [header: number, total: number] | undefined {
  let length = 0, multiplier = 1, i = offset + 1;
  for (;;) {
    if (i >= end) return undefined;
    const byte = data[i++]!;
    length += (byte & 127) * multiplier;
    multiplier *= 128;
    if ((byte & 128) === 0) break;
  }
  return i + length <= end ? [i - offset, i - offset + length] : undefined;
}

function ignore(): void {}

/** Writes a copy of a PUBLISH to every subscriber, at the lower of its QoS and theirs. */
function forward(packet: Uint8Array, header: number, qos: number): void {
  const topicEnd = header + 2 + ((packet[header]! << 8) | packet[header + 1]!);
  for (const s of subscribers) {
    let copy: Uint8Array;
    if (qos === 0 || s.qos === 0) {
      if (qos === 0) copy = packet.slice();
      else {
        // QoS 1 to a QoS 0 subscriber: the same packet without its packet id.
        const body = packet.length - header - 2;
        copy = new Uint8Array(1 + lengthBytes(body) + body);
        copy[0] = 0x30;
        const at = writeLength(copy, body);
        copy.set(packet.subarray(header, topicEnd), at);
        copy.set(packet.subarray(topicEnd + 2), at + topicEnd - header);
      }
    } else {
      copy = packet.slice();
      copy[0] = copy[0]! & ~0x09; // RETAIN and DUP clear on a delivery
      const id = s.nextId;
      s.nextId = id === 65535 ? 1 : id + 1;
      s.inFlight[id] = 1;
      copy[topicEnd] = id >> 8;
      copy[topicEnd + 1] = id & 255;
    }
    s.conn.write(copy).catch(ignore);
  }
}

function lengthBytes(n: number): number {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
}

function writeLength(out: Uint8Array, n: number): number {
  let i = 1;
  do {
    let byte = n & 127;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 128;
    out[i++] = byte;
  } while (n > 0);
  return i;
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
  let self: Subscriber | undefined;
  try {
    for (;;) {
      const n = await conn.read(chunk);
      if (n === null) break;
      // Whole packets are handled from the read buffer itself; only a split one is copied.
      let data = chunk, end = n;
      if (pending.length > 0) {
        data = new Uint8Array(pending.length + n);
        data.set(pending);
        data.set(chunk.subarray(0, n), pending.length);
        end = data.length;
      }
      let offset = 0;
      for (;;) {
        const sizes = frame(data, offset, end);
        if (sizes === undefined) break;
        const [header, length] = sizes;
        const packet = data.subarray(offset, offset + length);
        const type = packet[0]! >> 4;
        if (type === 3) {
          const qos = (packet[0]! >> 1) & 3;
          forward(packet, header, qos);
          if (qos === 1) {
            const at = header + 2 + ((packet[header]! << 8) | packet[header + 1]!);
            conn.write(new Uint8Array([0x40, 2, packet[at]!, packet[at + 1]!])).catch(ignore);
          }
        } else if (type === 4) {
          if (self !== undefined) self.inFlight[(packet[header]! << 8) | packet[header + 1]!] = 0;
        } else if (type === 1) conn.write(new Uint8Array([0x20, 2, 0, 0])).catch(ignore);
        else if (type === 8) {
          // One filter per SUBSCRIBE (the generator's): its requested QoS is the last byte.
          const qos = Math.min(packet[length - 1]! & 3, 1);
          if (self === undefined) {
            self = { conn, qos, nextId: 1, inFlight: new Uint8Array(65536) };
            subscribers.push(self);
          } else self.qos = qos;
          conn.write(new Uint8Array([0x90, 3, packet[header]!, packet[header + 1]!, qos]))
            .catch(ignore);
        } else if (type === 12) conn.write(new Uint8Array([0xd0, 0])).catch(ignore);
        offset += length;
      }
      pending = offset === end ? pending.subarray(0, 0) : data.slice(offset, end);
    }
  } catch { /* the peer went away */ }
  if (self !== undefined) subscribers.splice(subscribers.indexOf(self), 1);
  try {
    conn.close();
  } catch { /* closed already */ }
}

if (import.meta.main) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  console.log(`port ${(listener.addr as Deno.NetAddr).port}`);
  for await (const conn of listener) serve(conn);
}
