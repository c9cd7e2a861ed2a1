// The rescue of a dead node's unread shared-group messages (share_rescue_test.ts) when that
// node's streams were on ioredis (TLS without certificate verification, `streamsFallback`): it
// reads in the consumer group `r` there too, so the group's last id says how far it read, and
// what it never read still reaches a member elsewhere. Real processes on a TLS redis-server, the
// dead node killed with SIGKILL; the publishing node is the test, writing frames into the dead
// node's stream as a node does.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { certFiles } from "../_helpers/certs.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { Node, until } from "./_nodes.ts";
import { startBus } from "./_bus_helpers.ts";
import { bothInGroup, chosen, gotAlone, inboxMember, payloads, untilUnfinished } from "./_share.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: a node reading its stream on ioredis (TLS without verification) dies; the QoS 1 message it never read for its clean group member reaches a member elsewhere, the one it delivered does not",
  opts,
  async () => {
    const prefix = "srt1:";
    await using certs = await certFiles();
    await using redis = await RedisServer.start({
      tls: {
        certFile: certs.serverCertFile,
        keyFile: certs.serverKeyFile,
        caFile: certs.caFile,
        ca: certs.ca,
        clientCert: certs.clientCert,
        clientKey: certs.clientKey,
      },
    });
    const tls = [
      "  tls:",
      `    cafile: ${certs.caFile}`,
      `    certfile: ${certs.clientCertFile}`,
      `    keyfile: ${certs.clientKeyFile}`,
    ];
    // B's server certificate is not verified: its streams go to ioredis.
    await using b = await Node.start(redis, {
      nodeId: "b",
      prefix,
      nodeTimeout: 1,
      yaml: [...tls, "    verify: false"],
    });
    await using c = await Node.start(redis, { nodeId: "c", prefix, yaml: tls });
    const clientTls = { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey };
    await using p = await startBus(redis, "p", { prefix, livenessTtl: 60_000, tls: clientTls });
    await until(() => /without verifying/.test(b.log()), "B's streams on ioredis");
    await using memberB = await inboxMember(b, "member-b", 1);
    await using memberC = await inboxMember(c, "member-c", 1);
    await bothInGroup(p);
    const r = new Redis({ host: "127.0.0.1", port: redis.port, tls: clientTls, lazyConnect: true });
    await r.connect();
    try {
      // Chosen for B: its clean member has it and acknowledged it, and Redis was told (read on
      // ioredis without NOACK too, the entry pending until then: share_unfinished_test.ts). Its
      // entry stays in B's stream (the last read).
      await r.xadd(`${prefix}s:b`, "*", "f", Buffer.from(chosen("delivered by B", 1, 1)));
      await until(() => payloads(memberB).includes("delivered by B"), "B's member");
      await untilUnfinished(r, `${prefix}s:b`, 0, "B to tell Redis its member acknowledged it");
      await b.crash();
      // Chosen for B by a node that had not found it dead yet: acknowledged to its publisher
      // once in B's stream [MQTT-4.3.2-1], never read; B's member's session ended with B.
      await r.xadd(`${prefix}s:b`, "*", "f", Buffer.from(chosen("chosen B", 2, 1)));
    } finally {
      r.disconnect();
    }
    // In the order of B's stream: had the delivered one been passed on, it would be here.
    await gotAlone(memberC, "chosen B", "C's member to get it", 60_000);
    assert.deepEqual(payloads(memberB), ["delivered by B"]);
  },
);
