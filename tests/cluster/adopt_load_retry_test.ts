// A node that wins the adoption of a dead node's persistent session and then cannot load it
// from the store (Redis refusing it for a while: here its ACL denies the session's queue key,
// which the load reads and nothing else uses meanwhile) loads it again until it can: the session
// is kept [MQTT-3.1.2-4], messages published while its client is away are queued for it, and
// every one acknowledged reaches it when the client comes back, the first arrivals in order.
// Real processes and redis-server.
import { RedisServer } from "../_helpers/redis.ts";
import { acl } from "./_nodes.ts";
import { adoptionAfterOutage } from "./_scenarios.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const prefix = "al1:";

/**
 * ACL key patterns that allow every key but those starting with `deny` (after the prefix): one
 * pattern per character of it, each allowing whatever differs from `deny` there.
 */
function allBut(deny: string): string[] {
  const patterns: string[] = [];
  for (let i = 0; i < deny.length; i++) {
    patterns.push(`~${prefix}${deny.slice(0, i)}[^${deny[i]}]*`);
  }
  return patterns;
}

Deno.test(
  "cluster: a node that won a dead node's persistent session and cannot load it loads it again; the session is kept and every QoS 1 message acknowledged reaches it, in order [MQTT-3.1.2-4] [MQTT-4.3.2-1] [MQTT-4.6.0-6]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await adoptionAfterOutage(redis, {
      prefix,
      root: "al",
      // The orphan's queue (`al1:store:out:orphan`): read by the load; written only by the
      // session's owner, and A, its owner, is about to die. The adoption script's keys stay.
      deny: (r) => acl(r, "resetkeys", ...allBut("store:out:")),
      allow: (r) => acl(r, "resetkeys", "~*"),
      failure: /cannot (load|adopt) the session of orphan/,
      failureName: "the adopter's failed load",
    });
  },
);
