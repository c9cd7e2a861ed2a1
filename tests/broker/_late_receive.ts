/**
 * What the receive-gate tests (areas 60, 61) do with the late-answering broker
 * (`_late_receive_broker.ts`): start it on a SQLite store file, crash it, and check that a client
 * got nothing yet.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { TestClient } from "../_helpers/test_client.ts";
import { type CliProcess, type Entry, spawnCli } from "../cli/_helpers.ts";

/** Starts the late-answering broker on `config` and waits until it listens; returns its port. */
export async function startLate(config: string): Promise<{ proc: CliProcess; port: number }> {
  const proc = spawnCli("../tests/broker/_late_receive_broker.ts" as Entry, [config], {
    timeoutMs: 180_000,
  });
  try {
    const [, port] = await proc.waitForStderr(/Listener "default" bound to [^:]+:(\d+)/, 60_000);
    await proc.waitForStderr(/amqtt test started/, 60_000);
    return { proc, port: Number(port) };
  } catch (error) {
    proc.kill("SIGKILL");
    await proc.done;
    throw error;
  }
}

/** A configuration on a SQLite store file in `dir`, `sync: full`, any free port. */
export async function storeConfig(dir: string): Promise<string> {
  const config = `${dir}/broker.yaml`;
  await Deno.writeTextFile(
    config,
    "listeners:\n  default:\n    bind: 127.0.0.1:0\n" +
      `persistence:\n  path: ${dir}/state.db\n  sync: full\n`,
  );
  return config;
}

/** Kills the broker as a crash (SIGKILL) and waits for it to end. */
export async function crash(proc: CliProcess): Promise<void> {
  proc.kill("SIGKILL");
  await proc.done;
}

/**
 * Asserts that `client` got nothing within a second, long enough for a store commit, and is still
 * connected. (A PINGREQ would not tell: its PINGRESP waits behind the held reply, in order.)
 */
export async function nothingYet(client: TestClient, what: string): Promise<void> {
  const got = await client.poll(1000);
  assert.equal(got, undefined, `${what}: got ${JSON.stringify(got)}`);
  assert.equal(client.ended, false, `${what}: the connection is open`);
}
