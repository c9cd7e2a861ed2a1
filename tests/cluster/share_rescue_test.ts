// What the node that reaps a dead node passes on from the dead node's stream for its shared
// groups: what the dead node had no member to deliver to when it read it, or never read, goes to
// a member elsewhere; what it had delivered to a member that left afterwards does not go to a
// second one. The reaper decides from what the dead node wrote to Redis (its interest, and the
// point of its stream where a group's last member left it), not from its own view of the dead
// node, which may lag. Real processes on a redis-server, the dead node killed with SIGKILL; the
// publishing node is the test, writing frames into the dead node's stream as a node does.
import assert from "node:assert/strict";
import { waitFor } from "../_helpers/broker.ts";
import { subscribe5, TestClient } from "../_helpers/test_client.ts";
import { adopted, Inbox, until } from "./_nodes.ts";
import { bringBack, cutOff } from "./_away.ts";
import {
  bothInGroup,
  chosen,
  gotAlone,
  groupNodes,
  inboxMember,
  payloads,
  SHARE,
  type ShareNodes,
  startShareNodes,
  untilUnfinished,
} from "./_share.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

/**
 * Starts the nodes under `prefix`: B is taken for dead 1 s after it dies; `proxied`, B reaches
 * Redis through a `StallProxy` and its outage is shorter than its node timeout (10 s).
 */
function startNodes(prefix: string, proxied = false): Promise<ShareNodes> {
  return startShareNodes(prefix, { bTimeout: proxied ? 10 : 1, proxied });
}

/** A clean member of the group on B and one on C; disposing it disconnects them. */
interface Members extends AsyncDisposable {
  memberB: Inbox;
  memberC: Inbox;
}

/** Clean members of the group on B and on C, subscribed at `qos`, once P sees both in it. */
async function twoMembers(nodes: ShareNodes, qos: 1 | 2): Promise<Members> {
  await using stack = new AsyncDisposableStack();
  const memberB = stack.use(await inboxMember(nodes.b, "member-b", qos));
  const memberC = stack.use(await inboxMember(nodes.c, "member-c", qos));
  await bothInGroup(nodes.p);
  const rest = stack.move();
  return { memberB, memberC, [Symbol.asyncDispose]: () => rest.disposeAsync() };
}

/**
 * Once Redis knows that B's group has no persistent member, B dies, and a QoS 1 message chosen
 * for B by a node that had not found it dead yet lands in B's stream (so acknowledged to its
 * publisher [MQTT-4.3.2-1]), never read there. With no session of the group left to adopt, the
 * message goes to `memberC`, C's member, and nothing else does; `memberC` stays connected.
 */
async function diesWithNoPersistentMember(nodes: ShareNodes, memberC: Inbox): Promise<void> {
  const { r, prefix, stream } = nodes;
  await waitFor(
    async () => await r.sismember(`${prefix}durable:b`, SHARE) === 0,
    30_000,
    "Redis to know B's group has no persistent member",
  );
  await nodes.b.crash();
  await r.xadd(stream, "*", "f", Buffer.from(chosen("chosen B", 1, 1)));
  await gotAlone(memberC, "chosen B", "C's member to get it");
}

Deno.test(
  "cluster: a reaper that never heard the dead node's last group member leave still passes on the QoS 1 message the dead node had no member for",
  opts,
  async () => {
    await using nodes = await startNodes("srs1:");
    const { r, b, prefix, stream } = nodes;
    await using members = await twoMembers(nodes, 1);
    const { memberC } = members;
    await b.crash();
    // B's member left just before B died, and C never heard of it (the announcement lost with
    // B): Redis has what B's leave wrote (its interest without the group, and the last entry
    // it had read then: none), C's view still has B in the group.
    await r.multi().srem(`${prefix}interest:b`, SHARE).hset(`${prefix}left:b`, SHARE, "0-0")
      .exec();
    // Acknowledged to its publisher once in B's stream (chosen by a node that had not heard
    // the leave either); B never read it.
    await r.xadd(stream, "*", "f", Buffer.from(chosen("chosen B", 1, 1)));
    // C reaps B and passes on what B had no member for [MQTT-4.3.2-1]: Redis says B had none.
    await gotAlone(memberC, "chosen B", "C's member to get it");
  },
);

Deno.test(
  "cluster: a QoS 2 message a dead node delivered to a group member that left afterwards is not passed on to another member, what came after the leave is",
  opts,
  async () => {
    await using nodes = await startNodes("srs2:");
    const { r, b, p, stream } = nodes;
    await using members = await twoMembers(nodes, 2);
    const { memberB, memberC } = members;
    // Chosen for B while its member was there: B delivers it to that member.
    await r.xadd(stream, "*", "f", Buffer.from(chosen("delivered by B", 1, 2)));
    await until(() => payloads(memberB).includes("delivered by B"), "B's member");
    // The member leaves; everyone hears of it. Its entry is still in B's stream (the last
    // one read), then B dies.
    await memberB.client.unsubscribe([SHARE]);
    await until(() => groupNodes(p) === "c", "only C in the group");
    await b.crash();
    // Chosen for B by a node that had not heard the leave, after it: B never read it.
    await r.xadd(stream, "*", "f", Buffer.from(chosen("after the leave", 2, 2)));
    // C reaps B and passes on, in the order of B's stream, what B had no member for; the
    // message B delivered is not delivered again: once per group, exactly once at QoS 2.
    await gotAlone(memberC, "after the leave", "C's member to get what came after the leave");
    assert.deepEqual(payloads(memberB), ["delivered by B"]);
  },
);

Deno.test(
  "cluster: a QoS 1 message sent to a dead node for its clean group members, never read there, reaches a member on another node; one it had delivered does not",
  opts,
  async () => {
    await using nodes = await startNodes("srs3:");
    const { r, b, stream } = nodes;
    await using members = await twoMembers(nodes, 1);
    const { memberB, memberC } = members;
    // Chosen for B: its clean member has it and acknowledged it, and Redis was told (until
    // then the entry is pending: had B died first, the message would go to another member,
    // share_unfinished_test.ts). Its entry stays in B's stream (the last read).
    await r.xadd(stream, "*", "f", Buffer.from(chosen("delivered by B", 1, 1)));
    await until(() => payloads(memberB).includes("delivered by B"), "B's member");
    await untilUnfinished(r, stream, 0, "B to tell Redis its member acknowledged it");
    await b.crash();
    // Chosen for B by a node that had not found it dead yet (its detection time): in B's
    // stream, so acknowledged to its publisher [MQTT-4.3.2-1], and never read. B's member's
    // session ended with B: the message goes to another member of the group, as one whose
    // chosen member's session ended before it was sent (MQTT 5.0, shared subscriptions).
    await r.xadd(stream, "*", "f", Buffer.from(chosen("chosen B", 2, 1)));
    // In the order of B's stream: had the delivered one been passed on, it would be here.
    await gotAlone(memberC, "chosen B", "C's member to get it");
    assert.deepEqual(payloads(memberB), ["delivered by B"]);
  },
);

Deno.test(
  "cluster: a message sent to a dead node for a group with a persistent member there goes to that member once adopted, not also to another member",
  opts,
  async () => {
    const OTHER = "$share/h/s/#";
    await using nodes = await startNodes("srs4:");
    const { r, b, c, p, stream } = nodes;
    // Group g: a persistent member on B, a clean one on C. Group h: clean members on both.
    const durable = await Inbox.connect(b, "durable-b", { cleanSession: false });
    try {
      assert.deepEqual(await durable.client.subscribe([[SHARE, 1]]), [1]);
    } finally {
      await durable[Symbol.asyncDispose]();
    }
    await using otherB = await Inbox.connect(b, "other-b");
    await using memberC = await Inbox.connect(c, "member-c");
    assert.deepEqual(await otherB.client.subscribe([[OTHER, 1]]), [1]);
    assert.deepEqual(await memberC.client.subscribe([[SHARE, 1], [OTHER, 1]]), [1, 1]);
    await bothInGroup(p);
    await b.crash();
    // Chosen for B for both groups by a node that had not found it dead yet; never read.
    await r.xadd(stream, "*", "f", Buffer.from(chosen("chosen B", 1, 1, [SHARE, OTHER])));
    // For h, C passes it on to its member; for g, it leaves it to the adopter of durable-b
    // (C too). Passed on in that order: had g's been passed on, it would be here first.
    await until(() => memberC.on("s/x").length > 0, "C's member to get the message for h");
    await until(() => adopted(c.log(), "durable-b"), "the adoption");
    await using back = await Inbox.connect(c, "durable-b", { cleanSession: false });
    await until(() => payloads(back).includes("chosen B"), "the adopted member to get it");
    // One delivery per group [MQTT-4.8.2-3]: g's to the persistent member, h's to C's member.
    assert.deepEqual(payloads(memberC), ["chosen B"]);
    assert.deepEqual(payloads(back), ["chosen B"]);
    assert.ok(memberC.client.connected);
  },
);

Deno.test(
  "cluster: a group left while the node was cut off from Redis gets its leave mark when Redis is back: the QoS 2 message delivered before the leave is not passed on after the node dies",
  opts,
  async () => {
    // B reaches Redis through the proxy; its outage is shorter than its node timeout.
    await using nodes = await startNodes("srs5:", true);
    const { r, b, p, stream } = nodes;
    const proxy = nodes.proxy!;
    await using members = await twoMembers(nodes, 2);
    const { memberB, memberC } = members;
    await r.xadd(stream, "*", "f", Buffer.from(chosen("delivered by B", 1, 2)));
    await until(() => payloads(memberB).includes("delivered by B"), "B's member");
    // B loses Redis; its member leaves meanwhile: nothing of the leave reaches Redis then.
    await cutOff(proxy, b);
    await memberB.client.unsubscribe([SHARE]);
    // Back: B's resync writes its interest, and the leave's mark.
    await bringBack(proxy, b);
    await until(() => groupNodes(p) === "c", "only C in the group");
    await b.crash();
    await r.xadd(stream, "*", "f", Buffer.from(chosen("after the leave", 2, 2)));
    await gotAlone(
      memberC,
      "after the leave",
      "C's member to get what came after the leave",
      60_000,
    );
    assert.deepEqual(payloads(memberB), ["delivered by B"]);
  },
);

Deno.test(
  "cluster: a group whose persistent member on a dead node left it while a clean member there stayed has its unread QoS 1 message passed on to a member elsewhere",
  opts,
  async () => {
    await using nodes = await startNodes("srs6:");
    const { b, c, p } = nodes;
    // Group g on B: a persistent member and a clean one; on C: a clean one.
    await using durable = await Inbox.connect(b, "durable-b", { cleanSession: false });
    assert.deepEqual(await durable.client.subscribe([[SHARE, 1]]), [1]);
    await using _cleanB = await inboxMember(b, "clean-b", 1);
    await using memberC = await inboxMember(c, "member-c", 1);
    await bothInGroup(p);
    // The persistent member leaves the group (its session stays, with no member of it); the
    // clean one stays. Redis is told that B's group has no persistent member any more.
    await durable.client.unsubscribe([SHARE]);
    // B's clean member's session ends with B, and no session adopted from B is a member.
    await diesWithNoPersistentMember(nodes, memberC);
  },
);

Deno.test(
  "cluster: a 5.0 group member resumed on a node with a Session Expiry Interval of 0 (its session now ends with its connection) counts as a clean member when the node dies: the unread QoS 1 message goes to a member elsewhere",
  opts,
  async () => {
    await using nodes = await startNodes("srs7:");
    const { b, c, p } = nodes;
    const connect = { clientId: "x", clean: false, protocolVersion: 5 as const };
    {
      await using first = await TestClient.connect(b.port, {
        ...connect,
        properties: { sessionExpiryInterval: 600 },
      });
      await subscribe5(first, [{ topic: SHARE, qos: 1 }]);
      await first.disconnect();
    }
    await using memberC = await inboxMember(c, "member-c", 1);
    await bothInGroup(p);
    // Resumed with its subscription, the session now ends with its connection (no Session
    // Expiry Interval in the CONNECT: 0) [MQTT-3.1.2-23]: the group has no persistent member
    // on B any more.
    await using again = await TestClient.open(b.port, { protocolVersion: 5 });
    const connack = await again.handshake(connect);
    assert.equal(connack.sessionPresent, true);
    // The member's session ends with B (nothing adopts it).
    await diesWithNoPersistentMember(nodes, memberC);
  },
);
