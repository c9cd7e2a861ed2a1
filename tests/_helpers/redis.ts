/**
 * A real `redis-server` (Debian's, installed by `.ci/peers`) started by a test on a free port of
 * 127.0.0.1, without persistence, in a temporary directory, and stopped by it.
 *
 * `redis-server --port 0` does not pick a free port, so a port is found by binding port 0 with
 * `Deno.listen`, closing the listener and starting redis-server on that port. {@linkcode
 * RedisServer.restart} stops the server and starts a new one on the same port (an empty one: the
 * data is not saved), for tests of a Redis restart.
 *
 * @module
 */

/** Debian's server binary. */
export const REDIS_SERVER = "/usr/bin/redis-server";

/** A free TCP port on 127.0.0.1 (free when this returns; used at once). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Options of {@linkcode RedisServer.start}. */
export interface RedisServerOptions {
  /** Require this password (`requirepass`) of every client. */
  password?: string;
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

/** Sends PING over a fresh connection; true when the server answered (PONG, or NOAUTH). */
async function ping(port: number, tls: RedisServerOptions["tls"]): Promise<boolean> {
  let conn: Deno.Conn | undefined;
  try {
    conn = tls === undefined
      ? await Deno.connect({ hostname: "127.0.0.1", port })
      : await Deno.connectTls({
        hostname: "localhost",
        port,
        caCerts: [tls.ca],
        cert: tls.clientCert,
        key: tls.clientKey,
      });
    await conn.write(new TextEncoder().encode("PING\r\n"));
    const buf = new Uint8Array(64);
    const n = await conn.read(buf);
    const reply = n === null ? "" : new TextDecoder().decode(buf.subarray(0, n));
    return reply.startsWith("+PONG") || reply.startsWith("-NOAUTH");
  } catch {
    return false;
  } finally {
    conn?.close();
  }
}

/** A running redis-server. Dispose it to stop it and remove its directory. */
export class RedisServer implements AsyncDisposable {
  /** Its port on 127.0.0.1. */
  readonly port: number;
  /** Its temporary working directory (log file inside). */
  readonly dir: string;
  readonly #options: RedisServerOptions;
  #child: Deno.ChildProcess | undefined;
  #starts = 0;

  private constructor(port: number, dir: string, options: RedisServerOptions) {
    this.port = port;
    this.dir = dir;
    this.#options = options;
  }

  /** `redis://127.0.0.1:PORT`, or `rediss://localhost:PORT` with TLS. */
  get url(): string {
    return this.#options.tls === undefined
      ? `redis://127.0.0.1:${this.port}`
      : `rediss://localhost:${this.port}`;
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
      await server.#spawn();
    } catch (error) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw error;
    }
    return server;
  }

  async #spawn(): Promise<void> {
    const log = `${this.dir}/redis-${++this.#starts}.log`;
    const { password, tls } = this.#options;
    const listen = tls === undefined ? ["--port", String(this.port)] : [
      "--port",
      "0",
      "--tls-port",
      String(this.port),
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
          "no",
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
    // A start-up deadline, not an assertion on speed: a server that never answers is a broken
    // test machine, reported as such.
    for (let i = 0; i < 400; i++) {
      if (await ping(this.port, this.#options.tls)) return;
      await delay(25);
    }
    const text = await Deno.readTextFile(log).catch(() => "(no log)");
    await this.stop();
    throw new Error(`redis-server did not start on port ${this.port}:\n${text}`);
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
    await this.#spawn();
  }

  /** Starts the server again after {@linkcode stop}, on the same port. */
  async resume(): Promise<void> {
    if (this.#child === undefined) await this.#spawn();
  }

  /** Stops the server and removes its directory. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}
