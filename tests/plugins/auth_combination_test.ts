// The built-in auth plugins combined through the PluginHost, as an aMQTT configuration would.
import assert from "node:assert/strict";
import { PluginHost } from "../../src/broker/plugin_host.ts";
import { AnonymousAuthPlugin } from "../../src/plugins/anonymous_auth.ts";
import { FileAuthPlugin } from "../../src/plugins/file_auth.ts";
import { hashPassword } from "../../src/plugins/password_hash.ts";
import type { Logger } from "../../src/plugins/types.ts";
import { client } from "./_helpers.ts";

const logger: Logger = { debug() {}, info() {}, warning() {}, error() {} };
const context = { logger, publish: () => Promise.resolve() };

async function hostWith(allowAnonymous: boolean, path: string) {
  const host = new PluginHost([
    new AnonymousAuthPlugin({ allowAnonymous }),
    new FileAuthPlugin({ passwordFile: path }),
  ], { logger });
  await host.init(context);
  return host;
}

Deno.test("auth_anonymous(allowAnonymous: true) + auth_file: anonymous in, wrong password out", async () => {
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(path, `alice:${await hashPassword("pw", { rounds: 1000 })}\n`);
    const host = await hostWith(true, path);
    assert.equal(await host.authenticate(client()), true);
    assert.equal(await host.authenticate(client("alice", "pw")), true);
    assert.equal(await host.authenticate(client("alice", "bad")), false);
    assert.equal(await host.authenticate(client("mallory", "pw")), false);
    await host.close();
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("auth_anonymous(allowAnonymous: false) + auth_file: only valid users in", async () => {
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(path, `alice:${await hashPassword("pw", { rounds: 1000 })}\n`);
    const host = await hostWith(false, path);
    assert.equal(await host.authenticate(client()), false);
    assert.equal(await host.authenticate(client("alice", "pw")), true);
    assert.equal(await host.authenticate(client("alice", "bad")), false);
    await host.close();
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("auth_file alone: anonymous clients are refused (nobody says true)", async () => {
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(path, `alice:${await hashPassword("pw", { rounds: 1000 })}\n`);
    const host = new PluginHost([new FileAuthPlugin({ passwordFile: path })], { logger });
    await host.init(context);
    assert.equal(await host.authenticate(client()), false);
    assert.equal(await host.authenticate(client("alice", "pw")), true);
    await host.close();
  } finally {
    await Deno.remove(path);
  }
});
