// A dead node's persistent session whose adoption script fails on every node (Redis refusing it
// for a while: here its ACL denies the key of the wills, which the script reads first, as a Redis
// lost at that moment would) is adopted once the script runs again: messages published while its
// client is away are queued for it, and every one acknowledged reaches it when the client comes
// back, the first arrivals in order. Real processes and redis-server.
import { RedisServer } from "../_helpers/redis.ts";
import { acl } from "./_nodes.ts";
import { adoptionAfterOutage } from "./_scenarios.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const prefix = "ar1:";

Deno.test(
  "cluster: a dead node's persistent session whose adoption script failed is adopted when it runs again; every QoS 1 message acknowledged reaches it, in order [MQTT-4.3.2-1] [MQTT-4.6.0-6]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await adoptionAfterOutage(redis, {
      prefix,
      root: "ar",
      // Every key but the wills (`ar1:wills`), which nothing else uses meanwhile.
      deny: (r) => acl(r, "resetkeys", `~${prefix}[^w]*`),
      allow: (r) => acl(r, "resetkeys", "~*"),
      // Each node that hears of A's departure with its clients tries to adopt them (one that
      // found it gone otherwise does not know them): after the first failure, the others' tries
      // have a moment to fail too.
      failure: /cannot adopt the session of orphan/,
      failureName: "a failed adoption",
      settleMs: 1000,
    });
  },
);
