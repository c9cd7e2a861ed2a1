// What a PUBLISH causes is written in the turn of the event loop that read it: the delivery to the
// subscriber, and at QoS 1 the PUBACK to the publisher, are handed to their sockets before any
// timer queued when the PUBLISH was read can run (no flush deferred to a later turn, which would
// add up to a timer tick to a message's latency), and before the publisher's connection sets up its
// next read. Observed on real sockets through connections the host hands to an `external`
// listener, wrapped to note the order; no clock is read.
import assert from "node:assert/strict";
import type { QoS } from "../../src/packet/constants.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { socketConnection } from "../../src/transport/socket.ts";
import type { ByteConnection } from "../../src/transport/types.ts";
import { startBroker } from "../_helpers/broker.ts";
import { publishPacket, TestClient, text } from "../_helpers/test_client.ts";

/**
 * A socket connection that counts the bytes the broker writes to it, notes each read it starts and
 * each write in one log shared by the connections, and can mark a read as it completes.
 */
class Noting implements ByteConnection {
  readonly #inner: ByteConnection;
  readonly #name: string;
  readonly #log: string[];
  /** Bytes the broker has handed to write() so far. */
  written = 0;
  /** Called with each chunk the broker reads, as the read completes. */
  onChunk: ((chunk: Uint8Array) => void) | undefined;

  constructor(inner: ByteConnection, name: string, log: string[]) {
    this.#inner = inner;
    this.#name = name;
    this.#log = log;
  }
  get info() {
    return this.#inner.info;
  }
  get readable() {
    return this.#inner.readable;
  }
  get closed() {
    return this.#inner.closed;
  }
  get isClosed() {
    return this.#inner.isClosed;
  }
  read(reuse?: Uint8Array): Promise<Uint8Array | null> {
    this.#log.push(`${this.#name} read`);
    return this.#inner.read!(reuse).then((chunk) => {
      if (chunk !== null) this.onChunk?.(chunk);
      return chunk;
    });
  }
  write(bytes: Uint8Array): Promise<void> {
    this.#log.push(`${this.#name} write`);
    this.written += bytes.length;
    return this.#inner.write(bytes);
  }
  close(): void {
    this.#inner.close();
  }
}

async function sameTurn(qos: QoS): Promise<void> {
  await using b = await startBroker({
    listeners: { default: { bind: "127.0.0.1:0" }, host: { type: "external" } },
  });
  using own = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted: Noting[] = [];
  const log: string[] = [];
  const accept = async () => {
    const conn = new Noting(
      socketConnection(await own.accept(), { transport: "tcp", remoteAddress: "host" }),
      accepted.length === 0 ? "sub" : "pub",
      log,
    );
    accepted.push(conn);
    b.broker.acceptConnection(conn, "host");
  };
  let accepting = accept();
  const sub = await TestClient.connect(own.addr.port, { clientId: "turn-sub" });
  await accepting;
  accepting = accept();
  const pub = await TestClient.connect(own.addr.port, { clientId: "turn-pub" });
  await accepting;
  await sub.subscribe({ "turn/t": qos });
  const [toSub, toPub] = accepted as [Noting, Noting];
  const before = { sub: toSub.written, pub: toPub.written };
  // When the broker's read of the PUBLISH completes, queue a timer: it runs after everything
  // that read set off in this turn, and before anything deferred to a later turn.
  const atTimer = Promise.withResolvers<{ sub: number; pub: number }>();
  let logAtRead = 0;
  toPub.onChunk = () => {
    toPub.onChunk = undefined;
    logAtRead = log.length;
    setTimeout(() => atTimer.resolve({ sub: toSub.written, pub: toPub.written }), 0);
  };
  await pub.send(publishPacket("turn/t", "now", { qos, packetId: qos > 0 ? 7 : undefined }));
  const seen = await atTimer.promise;
  assert.ok(seen.sub > before.sub, "the delivery was not written in the turn of the read");
  // And before the publisher's connection reads again: what a chunk caused goes out first.
  const after = log.slice(logAtRead);
  const expected = qos === 1 ? ["sub write", "pub write", "pub read"] : ["sub write", "pub read"];
  assert.deepEqual(after.slice(0, expected.length), expected);
  if (qos === 1) {
    assert.ok(seen.pub > before.pub, "the PUBACK was not written in the turn of the read");
    assert.equal((await pub.expect(PacketType.PUBACK)).packetId, 7);
  } else {
    assert.equal(seen.pub, before.pub);
  }
  const delivered = await sub.expect(PacketType.PUBLISH);
  assert.equal(text(delivered), "now");
  if (qos === 1) await sub.send({ type: PacketType.PUBACK, packetId: delivered.packetId! });
  await pub.disconnect();
  await sub.disconnect();
}

Deno.test("47 write turn: a QoS 0 delivery is written in the turn its PUBLISH was read, before the next read", async () => {
  await sameTurn(0);
});

Deno.test("47 write turn: a QoS 1 delivery and its PUBACK are written in the turn the PUBLISH was read, before the next read [MQTT-4.3.2-2]", async () => {
  await sameTurn(1);
});
