/**
 * What the receive-gate tests (areas 60, 61) do with the late-answering broker
 * (`_late_receive_broker.ts`): start it on a SQLite store file, crash and restart it, resume a
 * session on it, and check that a client got nothing yet.
 *
 * @module
 */

import assert from "node:assert/strict";
import { TestClient } from "../_helpers/test_client.ts";
import { type CliProcess, type Entry, spawnCli, tempDir } from "../cli/_helpers.ts";

/** Starts the late-answering broker on `config` and waits until it listens; returns its port. */
async function startLate(config: string): Promise<{ proc: CliProcess; port: number }> {
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

/**
 * The late-answering broker on a SQLite store file (`sync: full`) in a temporary directory, on a
 * free port; crashed and started again on the same file by {@linkcode LateBroker.restart}.
 * Dispose it to kill it and remove the directory.
 */
export class LateBroker implements AsyncDisposable {
  readonly #dir: AsyncDisposable & { path: string };
  #proc: CliProcess;
  #port: number;

  private constructor(dir: AsyncDisposable & { path: string }, proc: CliProcess, port: number) {
    this.#dir = dir;
    this.#proc = proc;
    this.#port = port;
  }

  /** Starts it on a new store file; resolves once it listens. */
  static async start(): Promise<LateBroker> {
    const dir = await tempDir();
    try {
      const { proc, port } = await startLate(await LateBroker.#config(dir.path));
      return new LateBroker(dir, proc, port);
    } catch (error) {
      await dir[Symbol.asyncDispose]();
      throw error;
    }
  }

  static async #config(dir: string): Promise<string> {
    const config = `${dir}/broker.yaml`;
    await Deno.writeTextFile(
      config,
      "listeners:\n  default:\n    bind: 127.0.0.1:0\n" +
        `persistence:\n  path: ${dir}/state.db\n  sync: full\n`,
    );
    return config;
  }

  /** Its process now (a new one after each restart). */
  get proc(): CliProcess {
    return this.#proc;
  }

  /** Its port now (a new one after each restart). */
  get port(): number {
    return this.#port;
  }

  /** Kills it as a crash (SIGKILL), waits for it to end, and starts it again on the same file. */
  async restart(): Promise<void> {
    await crash(this.#proc);
    ({ proc: this.#proc, port: this.#port } = await startLate(`${this.#dir.path}/broker.yaml`));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await crash(this.#proc);
    await this.#dir[Symbol.asyncDispose]();
  }
}

/** Kills the broker as a crash (SIGKILL) and waits for it to end. */
async function crash(proc: CliProcess): Promise<void> {
  proc.kill("SIGKILL");
  await proc.done;
}

/**
 * Logs `clientId` in again on `port`, not clean: it finds its session (Session Present 1)
 * [MQTT-3.2.2-2].
 *
 * @returns the connected client
 */
export async function resumeSession(port: number, clientId: string): Promise<TestClient> {
  const client = await TestClient.open(port);
  try {
    const connack = await client.handshake({ clientId, clean: false });
    assert.equal(connack.sessionPresent, true, `session of ${clientId}`);
    return client;
  } catch (error) {
    await client.close();
    throw error;
  }
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
