// A clean member ending with a shared QoS 1 message it got through two groups and never
// acknowledged: one group's copy goes to another member here (`shared_redelivery.ts`), the other
// group's, with no member left here, to a member on another node (`SharedWatch.passOn`). The
// stream entry is held once per group (`ClusterLink.#sharedHeld`), and each way takes that
// group's hold alone (`#sharedHanded`, `#passOn`): the pass lets go of its own once made, the
// member here keeps the other until its PUBACK. Before, the first of them took every hold: a pass
// made first let go of the member's too, the entry was acknowledged in Redis, and when the node
// died the member's copy, never acknowledged, went to no other member (MQTT 5.0 on shared
// subscriptions: it SHOULD). Real processes on a redis-server, B killed with SIGKILL; the
// publishing node is the test, writing frames into B's stream as a node does.
import assert from "node:assert/strict";
import { delay, waitFor } from "../_helpers/broker.ts";
import { TestClient, text } from "../_helpers/test_client.ts";
import { PacketType } from "../../src/packet/constants.ts";
import { Inbox, until } from "./_nodes.ts";
import { chosen, startShareNodes, unfinished, untilUnfinished } from "./_share.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

const G1 = "$share/g1/s/#";
const G2 = "$share/g2/s/#";

/** Payloads `inbox` got on `s/x`. */
function got(inbox: Inbox): string[] {
  return inbox.on("s/x").map((m) => m.payload);
}

/**
 * On B: S, member of G1 and G2 at QoS 1 (subscribed in the order `shares`, the frame's too), gets
 * `m` through both and acknowledges neither copy; X joins G1 and S's session ends: G1's copy goes
 * to X, which acknowledges nothing, G2's to C's member of G2. B then dies: C's member of G1 gets
 * X's copy.
 */
async function handOver(prefix: string, shares: string[]): Promise<void> {
  await using nodes = await startShareNodes(prefix, { bTimeout: 1 });
  const { r, b, c, stream } = nodes;
  await using c1 = await Inbox.connect(c, "c1");
  assert.deepEqual(await c1.client.subscribe([[G1, 1]]), [1]);
  await using c2 = await Inbox.connect(c, "c2");
  assert.deepEqual(await c2.client.subscribe([[G2, 1]]), [1]);
  const s = await TestClient.connect(b.port, { clientId: "s", protocolVersion: 5 });
  await using x = await TestClient.connect(b.port, { clientId: "x", protocolVersion: 5 });
  try {
    // One SUBSCRIBE each, in the order given: the order B routes the message to S's groups in,
    // and so the order of S's copies its session's end hands on.
    for (const share of shares) {
      assert.deepEqual((await s.subscribe({ [share]: 1 })).reasonCodes, [1]);
    }
    await waitFor(
      async () => {
        const onB = await r.smembers(`${prefix}interest:b`);
        const onC = await r.smembers(`${prefix}interest:c`);
        return [G1, G2].every((g) => onB.includes(g) && onC.includes(g));
      },
      30_000,
      "both nodes' interest in both groups",
    );
    // B's view of C's interest comes by the bus, as P's does.
    await until(
      () => [...nodes.p.chooseShares("s/x")?.keys() ?? []].includes("c"),
      "C's members known to the nodes",
    );
    await r.xadd(stream, "*", "f", Buffer.from(chosen("m", 1, 1, shares)));
    const copies = [await s.expect(PacketType.PUBLISH), await s.expect(PacketType.PUBLISH)];
    assert.deepEqual(copies.map((p) => `${text(p)}@${p.qos}`), ["m@1", "m@1"]);
    await untilUnfinished(r, stream, 1, "the entry held");
    assert.deepEqual((await x.subscribe({ [G1]: 1 })).reasonCodes, [1]);
    await s.disconnect();
  } finally {
    await s.close();
  }
  assert.equal(text(await x.expect(PacketType.PUBLISH)), "m");
  await until(() => got(c2).includes("m"), "C's member of G2 to get the message passed on");
  // The pass made and its hold let go; B's sweep (500 ms) and acknowledgements (50 ms) have run
  // meanwhile: the entry is still held, for X, whose PUBACK never came [MQTT-4.3.2-1].
  await delay(2000);
  assert.equal(await unfinished(r, stream), 1);
  await b.crash();
  // C reaps B: G2's copy was passed on already (its key in `P passed:b`), G1's goes to C's member.
  await until(() => got(c1).includes("m"), "C's member of G1 to get X's unacknowledged copy");
  assert.deepEqual(got(c1), ["m"]);
  assert.deepEqual(got(c2), ["m"]);
  assert.ok(c1.client.connected && c2.client.connected);
}

Deno.test(
  "cluster: a clean member's unacknowledged QoS 1 message of two groups, one group's copy handed to a member here and the other's passed on, stays held for the member here and goes to another member when the node dies",
  opts,
  () => handOver("shq1a:", [G1, G2]),
);

Deno.test(
  "cluster: a clean member's unacknowledged QoS 1 message of two groups, the other group's copy passed on before this group's is handed to a member here, stays held for the member here and goes to another member when the node dies",
  opts,
  () => handOver("shq1b:", [G2, G1]),
);
