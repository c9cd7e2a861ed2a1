/**
 * A real `redis-server` (Debian's, installed by `.ci/peers`) started by a test on a free port of
 * 127.0.0.1, without persistence, in a temporary directory, and stopped by it.
 *
 * `redis-server --port 0` does not pick a free port, so it is started on {@linkcode freePort}'s
 * (and on another when that one was taken before it bound it). {@linkcode
 * RedisServer.restart} stops the server and starts a new one on the same port (an empty one: the
 * data is not saved), for tests of a Redis restart; with `persist`, it keeps its data. {@linkcode
 * RedisServer.snapshot} saves an RDB file (`SAVE`) and {@linkcode RedisServer.rollback} stops the
 * server and starts it again on that file: Redis gone back to older data, every write made since
 * the snapshot lost.
 *
 * @module
 */

import { freePort } from "./free_port.ts";

export { freePort };

/** Debian's server binary. */
export const REDIS_SERVER = "/usr/bin/redis-server";

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Options of {@linkcode RedisServer.start}. */
export interface RedisServerOptions {
  /** Require this password (`requirepass`) of every client. */
  password?: string;
  /**
   * Keep the data in an append-only file fsynced at every write, so that a server stopped (even
   * with SIGKILL) and resumed has it again: Redis away for a while, not Redis losing its data.
   */
  persist?: boolean;
  /**
   * Serve TLS only, with this certificate and key; clients must present a certificate issued by
   * `caFile` (`clientCert`/`clientKey` are used to check that the server is up).
   */
  tls?: {
    certFile: string;
    keyFile: string;
    caFile: string;
    ca: string;
    clientCert: string;
    clientKey: string;
  };
}

/** A running redis-server. Dispose it to stop it and remove its directory. */
export class RedisServer implements AsyncDisposable {
  #port: number;
  /** Its temporary working directory (log file inside). */
  readonly dir: string;
  readonly #options: RedisServerOptions;
  #child: Deno.ChildProcess | undefined;
  #starts = 0;

  private constructor(port: number, dir: string, options: RedisServerOptions) {
    this.#port = port;
    this.dir = dir;
    this.#options = options;
  }

  /** Its port on 127.0.0.1. */
  get port(): number {
    return this.#port;
  }

  /** `redis://127.0.0.1:PORT`, or `rediss://localhost:PORT` with TLS. */
  get url(): string {
    return this.#options.tls === undefined
      ? `redis://127.0.0.1:${this.#port}`
      : `rediss://localhost:${this.#port}`;
  }

  /**
   * Starts a server on a free port and waits until it answers PING.
   *
   * @throws {Error} If redis-server is not installed or does not come up.
   */
  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const dir = await Deno.makeTempDir({ prefix: "amqtt_redis_" });
    const server = new RedisServer(freePort(), dir, options);
    try {
      // Another process may take the free port before redis-server binds it: try another.
      for (let attempt = 1; (await server.#spawn()) === "port taken"; attempt++) {
        if (attempt === 5) throw new Error("redis-server found no free port in 5 attempts");
        server.#port = freePort();
      }
    } catch (error) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw error;
    }
    return server;
  }

  /** Starts redis-server on the port; resolves when its log says it is ready. */
  async #spawn(): Promise<"ready" | "port taken"> {
    const log = `${this.dir}/redis-${++this.#starts}.log`;
    const { password, tls, persist } = this.#options;
    const listen = tls === undefined ? ["--port", String(this.#port)] : [
      "--port",
      "0",
      "--tls-port",
      String(this.#port),
      "--tls-cert-file",
      tls.certFile,
      "--tls-key-file",
      tls.keyFile,
      "--tls-ca-cert-file",
      tls.caFile,
      "--tls-auth-clients",
      "yes",
    ];
    try {
      this.#child = new Deno.Command(REDIS_SERVER, {
        args: [
          ...listen,
          ...(password === undefined ? [] : ["--requirepass", password]),
          "--bind",
          "127.0.0.1",
          "--save",
          "",
          "--appendonly",
          persist === true ? "yes" : "no",
          ...(persist === true ? ["--appendfsync", "always"] : []),
          "--dir",
          this.dir,
          "--logfile",
          log,
        ],
        cwd: this.dir,
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new Error(`Cannot run ${REDIS_SERVER}: it is not installed (see .ci/peers)`);
      }
      throw error;
    }
    let exited = false;
    this.#child.status.then(() => exited = true);
    // Readiness from this server's own log (a PING could reach another process that took the
    // port). A start-up deadline, not an assertion on speed: a server that never gets ready is a
    // broken test machine, reported as such.
    for (let i = 0; i < 400; i++) {
      const text = await Deno.readTextFile(log).catch(() => "");
      if (text.includes("Ready to accept connections")) return "ready";
      if (exited) {
        await this.stop();
        if (text.includes("Address already in use")) return "port taken";
        throw new Error(`redis-server exited at start on port ${this.#port}:\n${text}`);
      }
      await delay(25);
    }
    const text = await Deno.readTextFile(log).catch(() => "(no log)");
    await this.stop();
    throw new Error(`redis-server did not start on port ${this.#port}:\n${text}`);
  }

  /** Stops the server (SIGKILL, so nothing is saved or flushed) and waits for it to exit. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    this.#child = undefined;
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await child.status;
  }

  /** Stops the server and starts an empty one on the same port. */
  async restart(): Promise<void> {
    await this.stop();
    await Deno.remove(`${this.dir}/dump.rdb`).catch(() => {});
    await this.resume();
  }

  /**
   * Saves the server's data to its RDB file (`SAVE`, through a connection of its own), for a
   * later {@linkcode rollback}. Not with `persist` (the append-only file would be loaded).
   */
  async snapshot(): Promise<void> {
    if (this.#options.persist === true) throw new Error("An RDB snapshot needs persist off");
    const { Redis } = await import("ioredis");
    const redis = new Redis({
      host: "127.0.0.1",
      port: this.#port,
      password: this.#options.password,
      lazyConnect: true,
    });
    await redis.connect();
    try {
      await redis.save();
    } finally {
      await redis.quit();
    }
  }

  /**
   * Stops the server (SIGKILL: nothing more saved) and starts it again on the same port with the
   * data of the last {@linkcode snapshot}: every write since is lost, and nothing says so.
   */
  async rollback(): Promise<void> {
    await this.stop();
    await Deno.stat(`${this.dir}/dump.rdb`); // NotFound: no snapshot was taken
    await this.resume();
  }

  /** Starts the server again after {@linkcode stop}, on the same port. */
  async resume(): Promise<void> {
    if (this.#child !== undefined) return;
    if (await this.#spawn() === "port taken") {
      throw new Error(`redis-server cannot start again: port ${this.#port} was taken meanwhile`);
    }
  }

  /** Stops the server and removes its directory. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}
