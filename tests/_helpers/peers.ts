/**
 * Peer programs the tests run as subprocesses: any command-line tool with a deadline
 * ({@linkcode Tool}, {@linkcode runTool}: mosquitto_pub/sub, paho_c_pub/sub) and a Mosquitto broker
 * made from a generated config ({@linkcode Mosquitto}). The Debian packages come from `.ci/peers`.
 *
 * @module
 */

import type { CertFiles } from "./certs.ts";
import { delay } from "./broker.ts";

/** Debian's broker binary. */
export const MOSQUITTO = "/usr/sbin/mosquitto";

/** How a tool run ended. */
export interface ToolResult {
  /** Exit code; with a signal, 128 + its number as the shell reports it. */
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
  /** True when the deadline killed it. */
  timedOut: boolean;
}

/** A running command-line tool with a deadline. Dispose it to kill it (if running) and reap it. */
export class Tool implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #result: Promise<ToolResult>;
  #exited = false;
  #timedOut = false;

  /**
   * Starts a tool.
   *
   * @param command the executable
   * @param args its arguments
   * @param timeoutMs killed with SIGKILL after this long (default 8000)
   * @throws {Error} when the executable is not installed
   */
  constructor(command: string, args: string[], timeoutMs = 8000) {
    try {
      this.#child = new Deno.Command(command, {
        args,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new Error(`Cannot run ${command}: it is not installed (see .ci/peers)`);
      }
      throw err;
    }
    const timer = setTimeout(() => {
      this.#timedOut = true;
      this.kill("SIGKILL");
    }, timeoutMs);
    this.#result = this.#child.output().then((out) => {
      clearTimeout(timer);
      this.#exited = true;
      const text = new TextDecoder();
      return {
        code: out.code,
        signal: out.signal,
        stdout: text.decode(out.stdout),
        stderr: text.decode(out.stderr),
        timedOut: this.#timedOut,
      };
    });
  }

  /** Whether the process has exited (and its output been collected). */
  get exited(): boolean {
    return this.#exited;
  }

  /**
   * Sends a signal, unless the process has exited.
   *
   * @param signal the signal (default SIGTERM)
   */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    if (this.#exited) return;
    try {
      this.#child.kill(signal);
    } catch {
      // It exited between the check and the kill.
    }
  }

  /**
   * Waits for the exit.
   *
   * @returns exit status and output
   */
  result(): Promise<ToolResult> {
    return this.#result;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.kill("SIGKILL");
    await this.#result;
  }
}

/**
 * Runs a tool to completion.
 *
 * @param command the executable
 * @param args its arguments
 * @param timeoutMs killed with SIGKILL after this long (default 8000)
 * @returns exit status and output
 * @throws {Error} when the executable is not installed
 */
export function runTool(command: string, args: string[], timeoutMs = 8000): Promise<ToolResult> {
  return new Tool(command, args, timeoutMs).result();
}

/**
 * A loopback port that was free a moment ago (bound to port 0, then released): for a peer that
 * must be told its port before it starts, or as a port nobody listens on.
 *
 * @returns the port
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** One listener of a {@linkcode Mosquitto}. */
export interface MosquittoListener {
  protocol?: "mqtt" | "websockets";
  /** Serve TLS with these files. */
  tls?: { certs: CertFiles; requireCertificate?: boolean };
}

/** Options of {@linkcode Mosquitto.start}. */
export interface MosquittoOptions {
  /** Listeners besides the plain TCP one that always comes first (mosquitto 2.0.11 will not start
   * with websockets listeners only). */
  listeners?: MosquittoListener[];
  allowAnonymous?: boolean;
  /** Keep sessions in a file across restarts. */
  persistence?: boolean;
  /** Extra config lines; `{dir}` stands for the broker's directory. */
  extra?: string[];
  /** Files to write into the broker's directory before it starts, by name. */
  files?: Record<string, string>;
}

/** A mosquitto process on 127.0.0.1 with free ports, stoppable and restartable on the same ports. */
export class Mosquitto {
  readonly dir: string;
  /** Ports: `[0]` is the plain TCP listener, then one per extra listener, in order. */
  readonly ports: number[];
  #child: Deno.ChildProcess | undefined;

  private constructor(dir: string, ports: number[]) {
    this.dir = dir;
    this.ports = ports;
  }

  /** The plain TCP port. */
  get port(): number {
    return this.ports[0]!;
  }

  /** Writes the config and starts mosquitto; resolves when every port accepts connections. */
  static async start(options: MosquittoOptions = {}): Promise<Mosquitto> {
    const dir = await Deno.makeTempDir({ prefix: "amqtt_mosq_" });
    await Deno.chmod(dir, 0o777);
    const extras = options.listeners ?? [];
    const ports = [freePort(), ...extras.map(() => freePort())];
    const lines = [
      `listener ${ports[0]} 127.0.0.1`,
      `allow_anonymous ${options.allowAnonymous ?? true}`,
    ];
    extras.forEach((l, i) => {
      lines.push(`listener ${ports[i + 1]} 127.0.0.1`);
      if (l.protocol === "websockets") lines.push("protocol websockets");
      if (l.tls !== undefined) {
        lines.push(
          `cafile ${l.tls.certs.caFile}`,
          `certfile ${l.tls.certs.serverCertFile}`,
          `keyfile ${l.tls.certs.serverKeyFile}`,
        );
        if (l.tls.requireCertificate) lines.push("require_certificate true");
      }
    });
    if (options.persistence) {
      lines.push("persistence true", `persistence_location ${dir}/`, "autosave_interval 0");
    }
    lines.push(...(options.extra ?? []).map((l) => l.replaceAll("{dir}", dir)));
    for (const [name, content] of Object.entries(options.files ?? {})) {
      await Deno.writeTextFile(`${dir}/${name}`, content);
    }
    await Deno.writeTextFile(`${dir}/mosquitto.conf`, lines.join("\n") + "\n");
    const m = new Mosquitto(dir, ports);
    await m.restart();
    return m;
  }

  /** Starts the process again (after {@linkcode stop}) on the same ports and config. */
  async restart(): Promise<void> {
    if (this.#child !== undefined) throw new Error("mosquitto is already running");
    this.#child = new Deno.Command(MOSQUITTO, {
      args: ["-c", `${this.dir}/mosquitto.conf`],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      for (const port of this.ports) await waitForPort(port, 5000);
    } catch (error) {
      // Never leave a half-started broker behind a failed test.
      await this.stop();
      throw error;
    }
  }

  /** Stops the process (SIGTERM, so a persistent broker saves its sessions). */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    this.#child = undefined;
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    await child.status;
  }

  /** Stops it and removes its directory. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/** Resolves once `port` on 127.0.0.1 accepts a connection; throws the last error after `ms`. */
async function waitForPort(port: number, ms: number): Promise<void> {
  const end = performance.now() + ms;
  for (;;) {
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      c.close();
      return;
    } catch (error) {
      if (performance.now() > end) throw error;
      await delay(20);
    }
  }
}
