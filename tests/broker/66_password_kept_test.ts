/**
 * The CONNECT password is for authentication only: the broker hands it to `authenticate` and
 * clears it from the client's details once the plugins have answered, so that a connection does not
 * keep a copy of it for as long as its session lives (memory per connection, and a secret held for
 * nothing). Later hooks get the same client without it.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { BrokerPlugin, ClientInfo } from "../../src/plugins/types.ts";
import { startBroker } from "../_helpers/broker.ts";
import { TestClient } from "../_helpers/test_client.ts";

Deno.test("66 password: authenticate sees it, later hooks and the kept client details do not", async () => {
  const seen: { hook: string; client: ClientInfo; password: string | undefined }[] = [];
  const note = (hook: string, client: ClientInfo) =>
    seen.push({
      hook,
      client,
      password: client.password === undefined
        ? undefined
        : new TextDecoder().decode(client.password),
    });
  const plugin: BrokerPlugin = {
    name: "recording",
    authenticate: (client) => {
      note("authenticate", client);
      return new TextDecoder().decode(client.password) === "s3cret";
    },
    authorizeSubscribe: (client) => {
      note("authorizeSubscribe", client);
      return undefined;
    },
    authorizePublish: (client) => {
      note("authorizePublish", client);
      return undefined;
    },
  };
  await using b = await startBroker({}, { plugins: [plugin] });
  const c = await TestClient.open(b.port);
  const connack = await c.handshake({
    clientId: "p",
    username: "u",
    password: new TextEncoder().encode("s3cret"),
    // A will is authorized as a publish right after authentication.
    will: { topic: "w/p", payload: new Uint8Array([1]), qos: 0, retain: false },
  });
  assert.equal(connack.reasonCode, 0);
  const suback = await c.subscribe({ "t/#": 0 });
  assert.deepEqual(suback.reasonCodes, [0]);
  assert.deepEqual(seen.map((s) => [s.hook, s.password]), [
    ["authenticate", "s3cret"],
    ["authorizePublish", undefined],
    ["authorizeSubscribe", undefined],
  ]);
  // One object throughout: the one authenticate was given no longer holds the password.
  assert.equal(seen[1]!.client, seen[0]!.client);
  assert.equal(seen[0]!.client.password, undefined);
  assert.equal(seen[0]!.client.username, "u");
  assert.ok(!c.ended, "the client is still connected");
  await c.disconnect();
});
