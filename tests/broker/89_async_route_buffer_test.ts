/**
 * Broker, area 89: a PUBLISH routed once an asynchronous plugin answered (`authorizePublish` that
 * awaits) lets go of the read buffer it came in at the end of that routing turn, as one routed at
 * once does after its packet: its message kept in flight for a subscriber that has not
 * acknowledged it [MQTT-4.4.0-1] gets a payload of its own, as do the records a store writer
 * keeps and the 5.0 copies written out. Before, they kept viewing that buffer (64 KiB per such
 * publisher) until the next PUBLISH to the broker, or until the delivery was acknowledged.
 * Observed in a child process with `--expose-gc` (`_async_route_child.ts`): a `WeakRef` to the
 * buffer the publisher's PUBLISHes were read into is cleared once they were routed.
 *
 * @module
 */

import assert from "node:assert/strict";
import { tempDir } from "../_helpers/temp_dir.ts";

async function child(
  scenario: string,
  store: boolean,
): Promise<{ collected: boolean; held: number }> {
  await using dir = await tempDir("amqtt_89_");
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL("./_async_route_child.ts", import.meta.url).pathname,
      scenario,
      store ? dir.path : "-",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
}

Deno.test("89 async route: a message routed after an awaited authorizePublish and kept in flight does not keep its read buffer [MQTT-4.4.0-1]", async () => {
  const { collected, held } = await child("single", false);
  // The delivery was still unacknowledged when the GC ran.
  assert.equal(held, 1);
  assert.ok(collected, "the read buffer is still referenced after the routing turn");
});

Deno.test("89 async route: a PUBLISH answered later and the one after it, journaled by a SQLite store, do not keep their read buffer", async () => {
  const { collected, held } = await child("backlog", true);
  assert.equal(held, 2);
  assert.ok(collected, "the read buffer is still referenced after the routing turn");
});
