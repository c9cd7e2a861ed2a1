/**
 * Broker, area 62: many devices behind one address logging in at once (a fleet behind NAT
 * reconnecting after an outage) while authentication is slow. The failed-login budget of a
 * source bounds its logins in progress; logins over it wait for the source's logins in progress
 * instead of being refused "server unavailable", and are checked as those succeed. Once the
 * source's budget is spent by failures and nothing of it is in progress, its waiting logins are
 * refused without a check, so a flood of wrong passwords from one address still cannot crowd out
 * logins from elsewhere. Real sockets with a slow authentication plugin; the core's edge cases
 * with FakeLink and an injected clock.
 *
 * @module
 */

import assert from "node:assert/strict";
import net from "node:net";
import { ConnackReturnCode, encodePacket, PacketType } from "../../src/packet/mod.ts";
import type { ConnackPacket, Packet } from "../../src/packet/mod.ts";
import { enhancedDecision } from "../../src/broker/enhanced_auth.ts";
import type { DecisionRequest } from "../../src/broker/decision.ts";
import type { BrokerPlugin, ClientInfo } from "../../broker.ts";
import { startBroker } from "../_helpers/broker.ts";
import { FakeLink, T0, type TestCore, testCore } from "../_helpers/core.ts";
import { connectPacket } from "../_helpers/test_client.ts";

const test = (name: string, fn: () => Promise<void> | void) =>
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });

const enc = new TextEncoder();
const RIGHT = "right";

/**
 * An authentication plugin whose every check takes `ms` (a password hash, a remote user
 * directory); it counts the checks it made and the most it had in progress at once.
 */
function slowAuth(ms: number) {
  const counts = { checked: 0, wrong: 0, inProgress: 0, most: 0 };
  const plugin: BrokerPlugin = {
    name: "slow_auth",
    authenticate: async (client: ClientInfo) => {
      counts.checked++;
      counts.inProgress++;
      counts.most = Math.max(counts.most, counts.inProgress);
      await new Promise((resolve) => setTimeout(resolve, ms));
      counts.inProgress--;
      const ok = new TextDecoder().decode(client.password) === RIGHT;
      if (!ok) counts.wrong++;
      return ok;
    },
  };
  return { plugin, counts };
}

/** An open socket from `localAddress`, its CONNECT not written yet. */
interface Device {
  socket: net.Socket;
  code: Promise<number>;
}

/** Opens a connection from `localAddress`; `code` resolves to the CONNACK's return code. */
function device(port: number, localAddress: string): Promise<Device> {
  return new Promise((opened, failed) => {
    const socket = net.connect({ host: "127.0.0.1", port, localAddress });
    const got: number[] = [];
    const code = new Promise<number>((resolve) => {
      socket.on("data", (chunk: Uint8Array) => {
        got.push(...chunk);
        if (got.length >= 4) socket.end();
      });
      socket.on("close", () => resolve(got.length >= 4 && got[0] === 0x20 ? got[3]! : -1));
    });
    socket.once("error", failed);
    socket.once("connect", () => opened({ socket, code }));
  });
}

/**
 * Opens `n` connections from `localAddress` first, then writes all their CONNECTs at once, so
 * that they reach the broker together; resolves to their CONNACK return codes.
 */
async function fleet(
  port: number,
  localAddress: string,
  n: number,
  password: (i: number) => string,
  name: string,
): Promise<Promise<number[]>> {
  const devices: Device[] = [];
  for (let i = 0; i < n; i++) devices.push(await device(port, localAddress));
  devices.forEach((d, i) => {
    d.socket.write(encodePacket(
      connectPacket({ clientId: `${name}-${i}`, username: "u", password: enc.encode(password(i)) }),
      4,
    ));
  });
  return Promise.all(devices.map((d) => d.code));
}

test("62 login fleet: 200 concurrent logins from one address with a slow check are all checked and accepted [MQTT-3.2.2-5]", async () => {
  const { plugin, counts } = slowAuth(20);
  await using b = await startBroker(
    // A connect timeout no busy machine reaches: what is tested is the throttle, not the clock.
    { max_login_failures: 20, login_failure_window: 3600, connect_timeout: 3600 },
    { plugins: [plugin] },
  );
  const codes = await (await fleet(b.port, "127.0.0.1", 200, () => RIGHT, "dev"));
  assert.deepEqual(
    codes.filter((c) => c !== ConnackReturnCode.ACCEPTED),
    [],
    "every device accepted",
  );
  assert.equal(counts.checked, 200);
  // One source never has more checks in progress than its budget.
  assert.ok(counts.most <= 20, `${counts.most} checks at once`);
});

test("62 login fleet: a wrong-password flood from one address refuses neither a fleet from another nor spends more than its budget [MQTT-3.2.2-5]", async () => {
  const { plugin, counts } = slowAuth(10);
  await using b = await startBroker(
    { max_login_failures: 10, login_failure_window: 3600, connect_timeout: 3600 },
    { plugins: [plugin] },
  );
  const flood = await fleet(b.port, "127.0.0.1", 300, () => "wrong", "flood");
  const good = await fleet(b.port, "127.0.0.2", 100, () => RIGHT, "good");
  const [floodCodes, goodCodes] = await Promise.all([flood, good]);
  assert.deepEqual(goodCodes.filter((c) => c !== ConnackReturnCode.ACCEPTED), []);
  const bad = floodCodes.filter((c) => c === ConnackReturnCode.BAD_USERNAME_OR_PASSWORD).length;
  const unavailable = floodCodes.filter((c) => c === ConnackReturnCode.SERVER_UNAVAILABLE).length;
  assert.equal(bad + unavailable, 300, `codes: ${[...new Set(floodCodes)]}`);
  // Only the flooding source's budget was checked; its waiting logins were refused unchecked.
  assert.equal(counts.wrong, bad);
  assert.ok(bad <= 10, `${bad} wrong passwords checked`);
  assert.ok(counts.most <= 20, `${counts.most} checks at once (two sources, 10 each)`);
  // Its budget spent and nothing of it in progress: the right password from it is not checked.
  const late = await fleet(b.port, "127.0.0.1", 1, () => RIGHT, "late");
  assert.deepEqual(await late, [ConnackReturnCode.SERVER_UNAVAILABLE]);
  assert.equal(counts.checked, bad + 100);
});

// The core's side: one source (FakeLink's 127.0.0.1), checks answered when the test says.

/** Logins whose credential checks the test answers: password "right" passes. */
function heldCore(maxLoginFailures: number): TestCore {
  return testCore({ maxLoginFailures, loginFailureWindow: 3600, connectTimeout: 10 }, {
    policy: { hasPublishHooks: false, offersAuthenticationMethod: (m) => m === "m" },
  });
}

function login(core: TestCore, clientId: string, extra: Packet[] = []): FakeLink {
  const link = new FakeLink(clientId);
  link.answer = () => undefined;
  core.attach(link, T0);
  core.handle(link, connectPacket({ clientId, username: "u", password: enc.encode(RIGHT) }), T0);
  for (const packet of extra) core.handle(link, packet, T0);
  return link;
}

function connack(link: FakeLink): ConnackPacket | undefined {
  return link.sent.find((p): p is ConnackPacket => p.type === PacketType.CONNACK);
}

function asked(link: FakeLink): number {
  return link.asked.filter((a) => a.request.kind === "authenticate").length;
}

test("62 login fleet: waiting logins are checked in arrival order as the source's logins succeed, and refused unchecked once failures spent its budget", () => {
  const core = heldCore(2);
  const links = ["a", "b", "c", "d", "e"].map((id) => login(core, id));
  assert.deepEqual(links.map(asked), [1, 1, 0, 0, 0], "a budget of two: two checks at once");
  for (const link of links) assert.equal(link.closing, false, `${link.name} waits, not refused`);
  // a succeeds: its unit comes back, c (the first waiting) is checked.
  core.decided(links[0]!.asked[0]!.id, true, T0 + 1);
  assert.equal(connack(links[0]!)?.reasonCode, ConnackReturnCode.ACCEPTED);
  assert.deepEqual(links.map(asked), [1, 1, 1, 0, 0]);
  // b and c fail: the budget of two is spent and nothing is in progress; d and e are refused
  // "server unavailable" without a check [MQTT-3.2.2-5].
  core.decided(links[1]!.asked[0]!.id, false, T0 + 2);
  assert.deepEqual(links.map(asked), [1, 1, 1, 0, 0], "a failure gives no unit back");
  assert.equal(links[3]!.closing, false, "c is still in progress: d waits");
  core.decided(links[2]!.asked[0]!.id, false, T0 + 3);
  for (const link of links.slice(3)) {
    assert.equal(asked(link), 0);
    assert.equal(connack(link)?.reasonCode, ConnackReturnCode.SERVER_UNAVAILABLE);
    assert.equal(link.closing, true);
  }
});

test("62 login fleet: packets after a waiting CONNECT wait with it; a waiting login closed meanwhile is skipped; one still waiting at the connect timeout gets code 3", () => {
  const core = heldCore(1);
  const first = login(core, "first");
  const pingAfter = login(core, "ping", [{ type: PacketType.PINGREQ }]);
  const gone = login(core, "gone");
  const late = login(core, "late");
  core.detach(gone, T0 + 1);
  core.decided(first.asked[0]!.id, true, T0 + 2);
  // The next waiting login is checked; the closed one is not.
  assert.equal(asked(pingAfter), 1);
  assert.deepEqual(pingAfter.sent.map((p) => p.type), [], "PINGREQ waits behind the login");
  assert.equal(asked(gone), 0);
  core.decided(pingAfter.asked[0]!.id, true, T0 + 3);
  assert.deepEqual(pingAfter.sent.map((p) => p.type), [PacketType.CONNACK, PacketType.PINGRESP]);
  // "late" was checked once "ping" succeeded; say it hangs: the one after it waits, and at the
  // connect timeout gets a CONNACK "server unavailable" rather than a silent close.
  assert.equal(asked(late), 1);
  const last = login(core, "last");
  assert.equal(asked(last), 0);
  core.tick(T0 + 10_001);
  assert.equal(connack(last)?.reasonCode, ConnackReturnCode.SERVER_UNAVAILABLE);
  assert.equal(asked(last), 0, "never checked, even once the budget comes back");
  core.decided(late.asked[0]!.id, true, T0 + 10_002);
  assert.equal(asked(last), 0);
});

test("62 login fleet: an enhanced authentication the client leaves while the server waits for its AUTH settles the login, so logins waiting behind it go on [MQTT-4.12.0-2]", () => {
  const core = heldCore(1);
  const enhanced = new FakeLink("enhanced");
  enhanced.answer = (request: DecisionRequest) =>
    request.kind === "enhanced" ? enhancedDecision({ continue: enc.encode("c") }) : undefined;
  core.attach(enhanced, T0);
  core.handle(
    enhanced,
    connectPacket({ protocolVersion: 5, clientId: "e", properties: { authenticationMethod: "m" } }),
    T0,
  );
  assert.deepEqual(enhanced.sent.map((p) => p.type), [PacketType.AUTH], "the challenge");
  const waiting = login(core, "waiting");
  assert.equal(asked(waiting), 0, "the budget of one is the exchange's");
  // The client goes away instead of answering: a failed login, its budget of one spent.
  core.detach(enhanced, T0 + 1);
  assert.equal(connack(waiting)?.reasonCode, ConnackReturnCode.SERVER_UNAVAILABLE);
  assert.equal(asked(waiting), 0);
});
