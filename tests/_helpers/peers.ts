/**
 * Peer programs the tests run as subprocesses: any command-line tool with a deadline
 * ({@linkcode Tool}, {@linkcode runTool}: mosquitto_pub/sub, paho_c_pub/sub) and a Mosquitto broker
 * made from a generated config ({@linkcode Mosquitto}). The Debian packages come from `.ci/peers`.
 *
 * @module
 */

import type { CertFiles } from "./certs.ts";
import { delay } from "./broker.ts";
import { freePort } from "./free_port.ts";

export { freePort };

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
  /**
   * Extra config lines; `{dir}` stands for the broker's directory. No `log_dest`: the broker
   * always logs to {@linkcode Mosquitto.log} (error, warning, notice and information; more
   * `log_type` lines add to those).
   */
  extra?: string[];
  /** Files to write into the broker's directory before it starts, by name. */
  files?: Record<string, string>;
  /** Picks each port (default {@linkcode freePort}); the helper's own test hands out a taken one. */
  pickPort?: () => number;
}

/** Start attempts of {@linkcode Mosquitto.start}, each on new ports, before it gives up. */
const START_ATTEMPTS = 5;

/** How mosquitto 2.0.11 says a port was taken: a TCP listener, or (libwebsockets) a websockets one. */
const PORT_TAKEN = /Error: Address already in use|Error: Unable to create websockets listener/;

/**
 * A mosquitto process on 127.0.0.1 with free ports, stoppable and restartable on the same ports.
 *
 * The ports are picked free ({@linkcode freePort}) before mosquitto binds them, so another process
 * may take one in between; a listener there proves nothing. Readiness therefore comes from this
 * broker's own log ("mosquitto version … running" once every listener is bound), and a start that
 * failed on a port in use is tried again on new ports.
 */
export class Mosquitto {
  readonly dir: string;
  #ports: number[];
  readonly #lines: (ports: number[]) => string[];
  #child: Deno.ChildProcess | undefined;
  #stderr: Promise<string> = Promise.resolve("");

  private constructor(dir: string, ports: number[], lines: (ports: number[]) => string[]) {
    this.dir = dir;
    this.#ports = ports;
    this.#lines = lines;
  }

  /** Ports: `[0]` is the plain TCP listener, then one per extra listener, in order. */
  get ports(): readonly number[] {
    return this.#ports;
  }

  /** The plain TCP port. */
  get port(): number {
    return this.#ports[0]!;
  }

  /** Its log file (appended to by every run). */
  get log(): string {
    return `${this.dir}/mosquitto.log`;
  }

  /**
   * Writes the config and starts mosquitto; resolves when its log says every listener is bound.
   * A port taken by another process before mosquitto bound it: new ports, a new config, another
   * attempt (up to 5).
   *
   * @throws {Error} when it does not start (its log in the message)
   */
  static async start(options: MosquittoOptions = {}): Promise<Mosquitto> {
    const extra = options.extra ?? [];
    const logDest = extra.find((l) => /^\s*log_dest\b/.test(l));
    if (logDest !== undefined) {
      throw new TypeError(
        `Mosquitto.start: "${logDest}" in extra: it always logs to {dir}/mosquitto.log`,
      );
    }
    const dir = await Deno.makeTempDir({ prefix: "amqtt_mosq_" });
    // Mosquitto started as root drops to its own user, which must write the log and the store here.
    await Deno.chmod(dir, 0o777);
    const extras = options.listeners ?? [];
    const lines = (ports: number[]) => {
      const lines = [
        `listener ${ports[0]} 127.0.0.1`,
        `allow_anonymous ${options.allowAnonymous ?? true}`,
        `log_dest file ${dir}/mosquitto.log`,
        ...["error", "warning", "notice", "information"].map((t) => `log_type ${t}`),
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
      lines.push(...extra.map((l) => l.replaceAll("{dir}", dir)));
      return lines;
    };
    try {
      for (const [name, content] of Object.entries(options.files ?? {})) {
        await Deno.writeTextFile(`${dir}/${name}`, content);
      }
      const pick = options.pickPort ?? freePort;
      const ports = () => [pick(), ...extras.map(() => pick())];
      const m = new Mosquitto(dir, ports(), lines);
      for (let attempt = 1; (await m.#spawn()) === "port taken"; attempt++) {
        if (attempt === START_ATTEMPTS) {
          throw new Error(`mosquitto found no free ports in ${START_ATTEMPTS} attempts`);
        }
        m.#ports = ports();
      }
      return m;
    } catch (error) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw error;
    }
  }

  /**
   * Starts the process again (after {@linkcode stop}) on the same ports and config.
   *
   * @throws {Error} when one of its ports was taken meanwhile, or it does not start
   */
  async restart(): Promise<void> {
    if (this.#child !== undefined) throw new Error("mosquitto is already running");
    if (await this.#spawn() === "port taken") {
      throw new Error(
        `mosquitto cannot start again: one of its ports ${
          this.#ports.join(", ")
        } was taken meanwhile`,
      );
    }
  }

  /** Writes the config and starts mosquitto; resolves when its log says it runs or it exited. */
  async #spawn(): Promise<"running" | "port taken"> {
    await Deno.writeTextFile(
      `${this.dir}/mosquitto.conf`,
      this.#lines(this.#ports).join("\n") + "\n",
    );
    // Only what this run appends to the log counts.
    const from = await Deno.stat(this.log).then((s) => s.size, () => 0);
    const child = new Deno.Command(MOSQUITTO, {
      args: ["-c", `${this.dir}/mosquitto.conf`],
      stdin: "null",
      stdout: "null",
      // Config errors come before the log file is open.
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.#stderr = new Response(child.stderr).text().catch(() => "");
    let exited = false;
    child.status.then(() => exited = true);
    const text = async () => {
      const bytes = await Deno.readFile(this.log).catch(() => new Uint8Array());
      return new TextDecoder().decode(bytes.subarray(from));
    };
    // A start-up deadline, not an assertion on speed: a broker that never gets ready is a broken
    // test machine, reported as such.
    const end = performance.now() + 30_000;
    for (;;) {
      const log = await text();
      if (/mosquitto version \S+ running/.test(log)) return "running";
      if (exited || performance.now() > end) {
        const status = exited ? "exited at start" : "did not start in 30 s";
        await this.stop();
        // Read again once it has ended: it may have written its error and exited between the
        // read above and the check of `exited`.
        const final = await text();
        if (PORT_TAKEN.test(final)) return "port taken";
        throw new Error(
          `mosquitto ${status} (ports ${this.#ports.join(", ")}):\n${final}${await this.#stderr}`,
        );
      }
      await delay(20);
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
    await this.#stderr;
  }

  /** Stops it and removes its directory. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}
