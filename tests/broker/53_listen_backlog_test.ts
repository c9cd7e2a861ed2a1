// The listen queue of every MQTT listener: a storm of concurrent connects larger than Deno's and
// node's default queue (511) overflowed it, and each handshake the kernel dropped came back only
// after the client's one-second SYN retransmission. Checked on the socket itself with `ss`, which
// shows a listening socket's queue limit in its Send-Q column.
import assert from "node:assert/strict";
import { certFiles } from "../_helpers/certs.ts";
import { startBroker } from "../_helpers/broker.ts";

/** The accept-queue limit the kernel holds for the socket listening on 127.0.0.1:`port`. */
async function listenQueue(port: number): Promise<number> {
  const out = await new Deno.Command("ss", { args: ["-Hltn", `sport = :${port}`] }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const rows = new TextDecoder().decode(out.stdout).trim().split("\n");
  assert.equal(rows.length, 1, `one listening socket on port ${port}: ${rows.join(" | ")}`);
  // State, Recv-Q (connections waiting to be accepted), Send-Q (the queue's limit), addresses.
  const [state, , limit] = rows[0]!.trim().split(/\s+/);
  assert.equal(state, "LISTEN");
  return Number(limit);
}

Deno.test("53 listen backlog: tcp, tls and ws listeners queue up to somaxconn (at most 4096) handshakes", async () => {
  const somaxconn = Number(await Deno.readTextFile("/proc/sys/net/core/somaxconn"));
  const expected = Math.min(4096, somaxconn);
  await using f = await certFiles();
  await using b = await startBroker({
    listeners: {
      default: { bind: "127.0.0.1:0" },
      secure: {
        bind: "127.0.0.1:0",
        ssl: "on",
        certfile: f.serverCertFile,
        keyfile: f.serverKeyFile,
      },
      web: { type: "ws", bind: "127.0.0.1:0" },
    },
  });
  const listeners = b.broker.listeners;
  assert.deepEqual(listeners.map((l) => l.transport).sort(), ["tcp", "tls", "ws"]);
  for (const l of listeners) {
    const limit = await listenQueue(l.port);
    assert.equal(limit, expected, `${l.transport} listener`);
    // Deno's and node's default (511) is what overflowed in a storm of 1,000 connects.
    if (somaxconn > 511) assert.ok(limit > 511, `${l.transport} listener: ${limit}`);
  }
});
