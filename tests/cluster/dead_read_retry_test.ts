// A node that adopts a dead node's persistent session and cannot read the dead node's stream
// (Redis refusing it for a while: here its ACL denies XRANGE, as a Redis lost at that moment
// would) tries again until it can, and only then restores the session: what the dead node had
// been sent and had not stored reaches the session when its client comes back, with everything
// published meanwhile, the first arrivals in order. Real processes and redis-server.
import { RedisServer } from "../_helpers/redis.ts";
import { acl } from "./_nodes.ts";
import { adoptionAfterOutage } from "./_scenarios.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "cluster: an adopter that cannot read the dead node's stream tries again before it restores the session; every QoS 1 message acknowledged reaches it, in order [MQTT-4.3.2-1] [MQTT-4.6.0-6]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await adoptionAfterOutage(redis, {
      prefix: "dr1:",
      root: "dr",
      // Only the read of the dead node's streams uses XRANGE.
      deny: (r) => acl(r, "-xrange"),
      allow: (r) => acl(r, "+xrange"),
      failure: /cannot read what node a had not stored/,
      failureName: "the adopter's failed read",
      returnTo: "b",
    });
  },
);
