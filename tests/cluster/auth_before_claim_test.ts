// A CONNECT to another node with a client's id and wrong credentials takes nothing over: the node
// loads and claims a session only once the plugins accepted the login, so the client stays
// connected where it is, keeps receiving, and its session stays with its node. The checks come
// first [MQTT-3.1.4-2]; a takeover is part of an accepted CONNECT [MQTT-3.1.4-3]. Real processes,
// redis-server, the password-file plugin and our client.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { MQTTClient } from "../../client.ts";
import { ConnectError } from "../../src/client/errors.ts";
import { hashPassword } from "../../src/plugins/password_hash.ts";
import { RedisServer } from "../_helpers/redis.ts";
import { delay } from "../_helpers/broker.ts";
import { Inbox, Node, routeReady, until } from "./_nodes.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };
const prefix = "abc1:";
const alice = { username: "alice", password: "right" };

/** A CONNECT as `clientId` with a wrong password; resolves with the refusal's code. */
async function refusedCode(node: Node, clientId: string, protocolVersion: 4 | 5): Promise<number> {
  await using client = new MQTTClient({ clientId, config: { auto_reconnect: false } });
  try {
    await client.connect(node.url, {
      cleanSession: false,
      username: "alice",
      password: "wrong",
      protocolVersion,
      ...(protocolVersion === 5 ? { sessionExpiryInterval: 3600 } : {}),
    });
  } catch (error) {
    assert.ok(error instanceof ConnectError, String(error));
    return error.returnCode ?? -1;
  }
  assert.fail("a CONNECT with a wrong password was accepted");
}

Deno.test(
  "cluster: a CONNECT with another client's id and wrong credentials to another node is refused and neither closes that client nor moves its session [MQTT-3.1.4-2] [MQTT-3.1.4-3]",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    const passwords = await Deno.makeTempFile({ suffix: ".passwd" });
    await using _passwords = { [Symbol.asyncDispose]: () => Deno.remove(passwords) };
    await Deno.writeTextFile(passwords, `alice:${await hashPassword("right", { rounds: 1000 })}\n`);
    const yaml = ["plugins:", "  auth_file:", `    password_file: ${passwords}`];
    await using a = await Node.start(redis, { nodeId: "a", prefix, yaml });
    await using b = await Node.start(redis, { nodeId: "b", prefix, yaml });
    const admin = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
    await admin.connect();
    await using _admin = { [Symbol.asyncDispose]: async () => void await admin.quit() };

    await using x = await Inbox.connect(a, "x", { cleanSession: false, ...alice });
    assert.deepEqual(await x.client.subscribe([{ topic: "t/#", qos: 1 }]), [1]);
    await using pub = await Inbox.connect(b, "pub", alice);
    await routeReady(pub.client, x, "t/probe");
    // A claims x in the background after its CONNACK (a guard of 30 s, not a bound).
    const owner = () => admin.hget(`${prefix}owner`, "x");
    for (let i = 0; i < 600 && await owner() !== "a"; i++) await delay(50);
    assert.equal(await owner(), "a");

    // 3.1.1: return code 4; 5.0: 0x86. Each refused by the plugins, on B.
    assert.equal(await refusedCode(b, "x", 4), 4);
    assert.equal(await refusedCode(b, "x", 5), 0x86);

    // X is still connected on A and receives what is published on B after the attempts (had it
    // been taken over, this would never arrive).
    for (let i = 0; i < 3; i++) await pub.client.publish("t/after", `m${i}`, { qos: 1 });
    await until(() => x.on("t/after").length >= 3, "the messages published after the attempts");
    assert.deepEqual(x.on("t/after").map((m) => m.payload), ["m0", "m1", "m2"]);
    assert.equal(x.client.connected, true);
    // Its session did not move: A still owns it, B never loaded it, A never handed it over.
    assert.equal(await owner(), "a");
    assert.doesNotMatch(b.log(), /session of x loaded/);
    assert.doesNotMatch(a.log(), /x taken over|hand(ed)? ?over.* x\b/i);
    assert.match(b.log(), /Refused client "x" .*authentication refused/);
  },
);
