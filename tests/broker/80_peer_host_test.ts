/**
 * Broker, area 80: what the TCP listener tells about a peer. Each accepted connection carries the
 * peer's `host:port` for logs and its bare host (`remoteHost`), which the broker keeps failed-login
 * budgets by without parsing the address again at every login. `formatAddr` makes a host's
 * `host:` part once for the peers that share it: peers of different hosts in turns each get their
 * own.
 *
 * @module
 */

import assert from "node:assert/strict";
import { formatAddr, hostPort } from "../../src/transport/socket.ts";
import { listenTcp } from "../../src/transport/tcp.ts";
import type { ByteConnection } from "../../src/transport/types.ts";

const test = (name: string, fn: () => Promise<void> | void) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

/** Accepts `n` connections from `hostname` on a listener of its own; returns their info. */
async function accepted(hostname: string, n: number) {
  const conns: ByteConnection[] = [];
  const clients: Deno.Conn[] = [];
  let all!: () => void;
  const done = new Promise<void>((resolve) => all = resolve);
  const listener = listenTcp({ name: "peers", hostname, port: 0 }, (conn) => {
    conns.push(conn);
    if (conns.length === n) all();
  });
  try {
    for (let i = 0; i < n; i++) {
      clients.push(await Deno.connect({ hostname, port: listener.port }));
    }
    await done;
    const ports = clients.map((c) => (c.localAddr as Deno.NetAddr).port);
    return { infos: conns.map((c) => c.info), ports, open: conns.every((c) => !c.isClosed) };
  } finally {
    for (const c of clients) c.close();
    for (const c of conns) c.close();
    await listener.close();
  }
}

test("80 peer host: the TCP listener gives each IPv4 peer its host:port and its bare host", async () => {
  const { infos, ports, open } = await accepted("127.0.0.1", 3);
  assert.equal(open, true);
  assert.deepEqual(
    infos.map((i) => [i.remoteAddress, i.remoteHost, i.listener]).sort(),
    ports.map((p) => [`127.0.0.1:${p}`, "127.0.0.1", "peers"]).sort(),
  );
});

test("80 peer host: an IPv6 peer's address is bracketed, its bare host not", async () => {
  let infos, ports;
  try {
    ({ infos, ports } = await accepted("::1", 2));
  } catch (err) {
    // A machine without IPv6 on its loopback cannot run this case.
    if (err instanceof Deno.errors.AddrNotAvailable) return;
    throw err;
  }
  assert.deepEqual(
    infos.map((i) => [i.remoteAddress, i.remoteHost]).sort(),
    ports.map((p) => [`[::1]:${p}`, "::1"]).sort(),
  );
});

test("80 peer host: formatAddr formats peers of different hosts in turns, each with its own host", () => {
  const tcp = (hostname: string, port: number): Deno.NetAddr => ({
    transport: "tcp",
    hostname,
    port,
  });
  const seen = [
    formatAddr(tcp("10.0.0.1", 1)),
    formatAddr(tcp("10.0.0.1", 65535)),
    formatAddr(tcp("2001:db8::1", 2)),
    formatAddr(tcp("2001:db8::1", 3)),
    formatAddr(tcp("10.0.0.1", 4)),
    formatAddr(tcp("10.0.0.2", 4)),
    formatAddr({ transport: "unix", path: "/run/a.sock" }),
    formatAddr(tcp("10.0.0.2", 5)),
  ];
  assert.deepEqual(seen, [
    "10.0.0.1:1",
    "10.0.0.1:65535",
    "[2001:db8::1]:2",
    "[2001:db8::1]:3",
    "10.0.0.1:4",
    "10.0.0.2:4",
    "/run/a.sock",
    "10.0.0.2:5",
  ]);
});

test("80 peer host: hostPort writes every port number as its decimal digits", () => {
  for (let port = 0; port <= 65535; port++) {
    const text = hostPort("10.0.0.1", port);
    if (text !== `10.0.0.1:${port}`) assert.fail(`port ${port} written as ${text}`);
  }
  // Not a port number: written as String() writes it.
  assert.equal(hostPort("10.0.0.1", 70000), "10.0.0.1:70000");
  assert.equal(hostPort("10.0.0.1", 1.5), "10.0.0.1:1.5");
  assert.equal(hostPort("::1", 8), "[::1]:8");
});
