// A connection's `host:port` is one flat string: a template literal of 13 characters or more is a
// rope of three strings in V8, kept for the life of the connection (memory per idle connection).

import assert from "node:assert/strict";
import { hostPort } from "../../src/transport/_host_port.ts";
import { exposedGc } from "../../src/broker/_memory_release.ts";

Deno.test("hostPort formats IPv4 and IPv6 peers", () => {
  assert.equal(hostPort("127.0.0.1", 1883), "127.0.0.1:1883");
  assert.equal(hostPort("::1", 8883), "[::1]:8883");
  assert.equal(hostPort("fe80::1%eth0", 0), "[fe80::1%eth0]:0");
});

Deno.test("hostPort makes flat strings: 20,000 addresses kept take under 48 bytes each", () => {
  const gc = exposedGc();
  assert.ok(gc !== undefined);
  const count = 20_000;
  const kept: string[] = new Array(count).fill("");
  gc();
  const before = Deno.memoryUsage().heapUsed;
  for (let i = 0; i < count; i++) kept[i] = hostPort("127.0.0.1", 10_000 + i);
  gc();
  const perAddress = (Deno.memoryUsage().heapUsed - before) / count;
  // Flat: 32 bytes ("127.0.0.1:12345" and its header). A rope: 88 (its node, "127.0.0.1:" and
  // the port's digits).
  assert.ok(perAddress < 48, `${perAddress.toFixed(1)} bytes per address`);
  assert.equal(kept[count - 1], `127.0.0.1:${10_000 + count - 1}`);
});
