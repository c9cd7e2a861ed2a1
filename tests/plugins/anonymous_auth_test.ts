import assert from "node:assert/strict";
import { AnonymousAuthPlugin } from "../../src/plugins/anonymous_auth.ts";
import { client } from "./_helpers.ts";

Deno.test("AnonymousAuthPlugin defaults to allowAnonymous true, like aMQTT", () => {
  const plugin = new AnonymousAuthPlugin();
  assert.equal(plugin.allowAnonymous, true);
  assert.equal(plugin.authenticate(client()), true);
  assert.equal(plugin.authenticate(client("bob", "anything")), true);
});

Deno.test("AnonymousAuthPlugin with allowAnonymous false refuses clients without a username", () => {
  const plugin = new AnonymousAuthPlugin({ allowAnonymous: false });
  assert.equal(plugin.authenticate(client()), false);
  // aMQTT tests the username for truth: an empty username counts as none.
  assert.equal(plugin.authenticate(client("")), false);
});

Deno.test("AnonymousAuthPlugin with allowAnonymous false accepts any username, ignoring the password", () => {
  const plugin = new AnonymousAuthPlugin({ allowAnonymous: false });
  assert.equal(plugin.authenticate(client("bob")), true);
  assert.equal(plugin.authenticate(client("bob", "wrong password")), true);
});

Deno.test("AnonymousAuthPlugin rejects a non-boolean allowAnonymous", () => {
  assert.throws(
    () => new AnonymousAuthPlugin({ allowAnonymous: "no" as unknown as boolean }),
    /allowAnonymous must be a boolean/,
  );
});
