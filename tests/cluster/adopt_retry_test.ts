// A dead node's persistent session whose adoption script fails on every node (Redis refusing it
// for a while: here its ACL denies the key of the wills, which the script reads first, as a Redis
// lost at that moment would) is adopted once the script runs again: messages published while its
// client is away are queued for it, and every one acknowledged reaches it when the client comes
// back, the first arrivals in order. Real processes and redis-server.
import { RedisServer } from "../_helpers/redis.ts";
import { acl } from "./_nodes.ts";
import { adoptionAfterOutage, type AdoptionOutage } from "./_scenarios.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/**
 * The outage: Redis refuses every key of `prefix` but the wills (`PREFIX:wills`, which nothing
 * else uses meanwhile) from just before A dies until `refusedMs` after the first failed adoption.
 * Each node that hears of A's departure with its clients tries to adopt them (one that found it
 * gone otherwise does not know them): after the first failure, the others' tries fail too.
 */
function refused(prefix: string, refusedMs: number, pauseMs?: number): AdoptionOutage {
  return {
    prefix,
    root: "ar",
    deny: (r) => acl(r, "resetkeys", `~${prefix}[^w]*`),
    allow: (r) => acl(r, "resetkeys", "~*"),
    failure: /cannot adopt the session of orphan/,
    failureName: "a failed adoption",
    settleMs: refusedMs,
    pauseMs,
  };
}

Deno.test(
  "cluster: a dead node's persistent session whose adoption script failed is adopted when it runs again; every QoS 1 message acknowledged reaches it, in order [MQTT-4.3.2-1] [MQTT-4.6.0-6]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await adoptionAfterOutage(redis, refused("ar1:", 1000));
  },
);

// The other nodes keep a departed node's interest for 30 s (the grace): an adoption refused for
// longer lost what was published after it, acknowledged with no subscription left to queue it
// for. Each node whose adoption is still trying keeps the interest, counted from each try.
Deno.test(
  "cluster: a dead node's persistent session whose adoption script fails for longer than the 30 s its interest is kept after its death still gets every QoS 1 message acknowledged meanwhile [MQTT-4.3.2-1] [MQTT-4.6.0-6]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    // Paced: without pause the 40 s put 100,000 messages in the dead stream, whose replay stalled
    // the adopter for seconds on a loaded machine, and a client's connection to it was lost.
    await adoptionAfterOutage(redis, refused("ar2:", 40_000, 10));
  },
);
