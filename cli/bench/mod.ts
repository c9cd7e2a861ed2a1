/**
 * `amqtt bench pub|sub|conn`: an MQTT load generator in the spirit of emqtt-bench. Publishers put a
 * timestamp, their client index and a sequence number at the start of each payload; subscribers
 * count messages, gaps and duplicates, and measure latency from the timestamp. A progress line goes
 * to stderr once a second and a summary to stdout at the end.
 *
 * The flags are those of `amqtt pub`/`amqtt sub` where the meaning is the same (`-h`, `-p`, `-u`,
 * `-P`, `--pw-file`, `-V`, `-k`, `-c`, `-I`, `-t`, `-q`, `-r`, `-C`, `-W`, `--ca-file`, `--quiet`);
 * the load settings have long names only (`--connections`, `--rate`, `--size`, `--inflight`…).
 *
 * @example Publishing 1,000 QoS 1 messages and receiving them
 * ```ts
 * import { runBenchCommand } from "./mod.ts";
 * import { Broker } from "../../broker.ts";
 * import assert from "node:assert/strict";
 *
 * await using broker = new Broker({ listeners: { default: { bind: "127.0.0.1:0" } } });
 * await broker.start();
 * const port = String(broker.listeners[0].port);
 * const sub = runBenchCommand(["sub", "-p", port, "-t", "bench/#", "-q", "1", "-C", "1000", "--quiet"]);
 * await new Promise((r) => setTimeout(r, 300)); // let the subscriber subscribe
 * const pub = ["pub", "-p", port, "-t", "bench/%i", "-q", "1", "-C", "1000", "--quiet"];
 * assert.equal(await runBenchCommand(pub), 0);
 * assert.equal(await sub, 0);
 * ```
 *
 * @module
 */

import { Command, InvalidArgumentError, Option } from "commander";
import type { QoS } from "@amqtt/amqtt/packet";
import { VERSION } from "../_deps.ts";
import { PASSWORD_ENV, resolvePassword } from "../_password.ts";
import { CliError, reportError } from "../_program.ts";
import {
  type BenchTarget,
  type ConnectReport,
  type LatencyHistogram,
  openConnections,
  Publishers,
  type PublishReport,
  type SubscribeReport,
  Subscribers,
} from "./load.ts";

export * from "./load.ts";

interface CommonFlags {
  host: string;
  port: number;
  connections: number;
  startNumber: number;
  interval: number;
  concurrency: number;
  protocolVersion: 3 | 4;
  keepAlive: number;
  disableCleanSession?: boolean;
  username?: string;
  password?: string;
  pwFile?: string;
  idPrefix?: string;
  ssl: boolean;
  caFile?: string;
  duration: number;
  quiet: boolean;
  json: boolean;
  // other spellings (hidden from --help)
  cafile?: string;
  keepalive?: number;
}

interface PubFlags extends CommonFlags {
  topic: string;
  qos: QoS;
  size: number;
  rate: number;
  count: number;
  retain: boolean;
  inflight: number;
}

interface SubFlags extends CommonFlags {
  topic: string[];
  qos: QoS;
  count: number;
  idle: number;
}

function integer(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`Expected an integer from ${min} to ${max}`);
    }
    return n;
  };
}

function oneOf<T extends number>(allowed: T[]) {
  return (value: string): T => {
    const n = Number(value) as T;
    if (!allowed.includes(n)) throw new InvalidArgumentError(`Expected ${allowed.join(", ")}`);
    return n;
  };
}

/** `-V` as amqtt pub/sub take it (`mqttv311`, `mqttv31`, `311`, `31`), or emqtt-bench's 3 / 4. */
function protocolVersion(value: string): 3 | 4 {
  const v = value.toLowerCase().replace(/^mqttv/, "");
  if (v === "311" || v === "3.1.1" || v === "4") return 4;
  if (v === "31" || v === "3.1" || v === "3") return 3;
  throw new InvalidArgumentError("Expected mqttv311 or mqttv31 (or 4, 3)");
}

function seconds(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < 0) {
    throw new InvalidArgumentError("Expected seconds, 0 or more");
  }
  return n;
}

function common(cmd: Command, kind: string): Command {
  return cmd
    .option("-h, --host <host>", "broker host", "127.0.0.1")
    .option("-p, --port <port>", "broker port", integer(1, 65535), 1883)
    .option("--connections <n>", "number of connections", integer(1), 1)
    .option("--start-number <n>", "client index of the first connection (%i)", integer(0), 1)
    .option("--interval <ms>", "milliseconds between connection starts", seconds, 0)
    .option("--concurrency <n>", "handshakes in progress at once", integer(1), 64)
    .addOption(
      new Option("-V, --protocol-version <version>", "mqttv311 or mqttv31")
        .default(4, "mqttv311").argParser(protocolVersion),
    )
    .option("-k, --keep-alive <s>", "keepalive in CONNECT, seconds", integer(0, 65535), 300)
    .option("-c, --disable-clean-session", "keep the sessions (default: clean sessions)")
    .option("-u, --username <name>", "user name")
    .option("-P, --password <pass>", "password")
    .option("--pw-file <file>", `read the password from this file (else from $${PASSWORD_ENV})`)
    .option("-I, --id-prefix <prefix>", `client id prefix (default amqtt-bench-${kind}-<pid>-)`)
    .option("-S, --ssl", "connect with TLS", false)
    .option("--ca-file <file>", "PEM CA certificates to trust (also --cafile); implies --ssl")
    .option("-W, --duration <s>", "seconds to run (0: until the count or Ctrl-C)", seconds, 0)
    .option("--quiet", "no progress line", false)
    .option("--json", "print the summary as JSON", false)
    .addOption(new Option("--cafile <file>").hideHelp())
    .addOption(new Option("--keepalive <s>").hideHelp().argParser(integer(0, 65535)));
}

const qosOption = () =>
  new Option("-q, --qos <qos>", "QoS 0, 1 or 2").default(0).argParser(oneOf([0, 1, 2]));

/**
 * Runs `amqtt bench` with its arguments (the words after `bench`): `pub`, `sub` or `conn` and
 * their flags; `--help` lists them.
 *
 * @param args the command-line words after `bench`, e.g. `["pub", "-c", "8", "-t", "t/%i"]`
 * @returns the exit code: 0 when every connection worked and nothing was lost, 1 otherwise, 2 for
 *   unusable arguments
 */
export async function runBenchCommand(args: string[]): Promise<number> {
  let code = 0;
  // Subcommands inherit the output settings and the exit override: every failure, flags
  // included, is thrown and printed by reportError as one line.
  const program = new Command("amqtt bench")
    .description("MQTT load generator: publishers, subscribers or idle connections")
    .helpOption("--help", "show help")
    .version(VERSION, "--version", "show the version and exit")
    .exitOverride()
    .configureOutput({
      writeOut: (s) => Deno.stdout.writeSync(new TextEncoder().encode(s)),
      writeErr: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)),
      outputError: () => {},
    });
  common(program.command("pub").description("publish messages"), "pub")
    .requiredOption("-t, --topic <topic>", "topic; %i is the client index, %c the client id")
    .addOption(qosOption())
    .option("-r, --retain", "set the retain flag", false)
    .option("-C, --count <n>", "messages per connection (0: no limit)", integer(0), 0)
    .option("--size <bytes>", "payload size (at least 16)", integer(16, 268_435_000), 64)
    .option(
      "--rate <n>",
      "messages per second per connection (0: as fast as possible)",
      seconds,
      0,
    )
    .option("--inflight <n>", "QoS 1/2 messages in flight per connection", integer(1, 65535), 20)
    .action(async (flags: PubFlags) => {
      code = await pub(flags);
    });
  common(program.command("sub").description("subscribe and measure"), "sub")
    .requiredOption(
      "-t, --topic <filter>",
      "topic filter, repeat for more; %i is the client index, %c the client id",
      (value: string, previous: string[] | undefined) => [...previous ?? [], value],
    )
    .addOption(qosOption())
    .option("-C, --count <n>", "messages per connection, then stop (0: no limit)", integer(0), 0)
    .option("--idle <s>", "stop after this many seconds without a message (0: never)", seconds, 0)
    .action(async (flags: SubFlags) => {
      code = await sub(flags);
    });
  common(program.command("conn").description("open idle connections"), "conn")
    .action(async (flags: CommonFlags) => {
      code = await conn(flags);
    });
  if (args.length === 0) {
    // No command: the help on stderr and a usage error, as `amqtt` itself does.
    program.outputHelp({ error: true });
    return 2;
  }
  try {
    await program.parseAsync(args, { from: "user" });
  } catch (err) {
    const command = ["pub", "sub", "conn"].includes(args[0]) ? ` ${args[0]}` : "";
    return reportError(`amqtt bench${command}`, err);
  }
  return code;
}

async function readFile(flag: string, path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "it does not exist"
      : (error as Error).message;
    throw new CliError(`Cannot read ${flag} "${path}": ${reason}`, { cause: error });
  }
}

async function target(f: CommonFlags): Promise<BenchTarget> {
  const caFile = f.caFile ?? f.cafile;
  const password = await resolvePassword(f);
  return {
    host: f.host,
    port: f.port,
    tls: f.ssl || caFile !== undefined,
    caCerts: caFile === undefined ? undefined : [await readFile("--ca-file", caFile)],
    protocolVersion: f.protocolVersion,
    keepAlive: f.keepalive ?? f.keepAlive,
    clean: f.disableCleanSession !== true,
    username: f.username,
    password,
  };
}

async function group(f: CommonFlags, kind: string) {
  return {
    target: await target(f),
    connections: f.connections,
    startIndex: f.startNumber,
    clientIdPrefix: f.idPrefix ?? `amqtt-bench-${kind}-${Deno.pid}-`,
    concurrency: f.concurrency,
  };
}

/** Aborts on Ctrl-C (and SIGTERM) while `fn` runs. */
async function interruptible<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const stop = () => ac.abort();
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, stop);
  try {
    return await fn(ac.signal);
  } finally {
    for (const s of signals) Deno.removeSignalListener(s, stop);
  }
}

/** Prints `line()` to stderr once a second until the returned function is called. */
function progress(quiet: boolean, line: (elapsed: number) => string): () => void {
  if (quiet) return () => {};
  const t0 = performance.now();
  const timer = setInterval(() => {
    const text = line((performance.now() - t0) / 1000);
    Deno.stderr.writeSync(new TextEncoder().encode(text + "\n"));
  }, 1000);
  return () => clearInterval(timer);
}

function rate(count: number, secs: number): number {
  return secs > 0 ? Math.round(count / secs) : 0;
}

function ms(micros: number): string {
  return `${(micros / 1000).toFixed(micros < 10_000 ? 2 : 1)} ms`;
}

function latencyText(h: LatencyHistogram): string {
  if (h.count === 0) return "latency n/a";
  return `latency p50 ${ms(h.percentile(0.5))} p99 ${ms(h.percentile(0.99))} max ${ms(h.max)}`;
}

function latencyJson(h: LatencyHistogram) {
  return {
    samples: h.count,
    p50Ms: h.percentile(0.5) / 1000,
    p99Ms: h.percentile(0.99) / 1000,
    maxMs: h.max / 1000,
    meanMs: h.mean / 1000,
  };
}

async function pub(f: PubFlags): Promise<number> {
  // Neither a count nor a duration: publish until Ctrl-C, as the -W help says.
  const duration = f.count === 0 && f.duration === 0 ? Infinity : f.duration;
  const opts = {
    ...(await group(f, "pub")),
    topic: f.topic,
    qos: f.qos,
    retain: f.retain,
    size: f.size,
    rate: f.rate,
    limit: f.count,
    duration,
    inflight: f.inflight,
  };
  const pubs = await Publishers.connect(opts);
  let last = 0;
  const stopProgress = progress(f.quiet, (t) => {
    const sent = pubs.sent;
    const line = `pub ${t.toFixed(0)}s conns ${pubs.connections} sent ${sent} (${
      sent - last
    }/s) acked ${pubs.acked}`;
    last = sent;
    return line;
  });
  let report: PublishReport;
  try {
    report = await interruptible((signal) => {
      signal.addEventListener("abort", () => pubs.stop());
      return pubs.run();
    });
  } finally {
    stopProgress();
  }
  const failedConnections = report.failed;
  if (f.json) {
    console.log(
      JSON.stringify({ kind: "pub", ...report, msgPerSec: rate(report.sent, report.seconds) }),
    );
  } else {
    console.log(
      `pub: ${report.connections} connections (${failedConnections} failed), ${report.sent} sent, ` +
        `${report.acked} acknowledged in ${report.seconds.toFixed(2)} s: ` +
        `${rate(report.sent, report.seconds)} msg/s`,
    );
  }
  const unacked = f.qos > 0 && report.acked < report.sent;
  return failedConnections > 0 || unacked ? 1 : 0;
}

async function sub(f: SubFlags): Promise<number> {
  const subs = await Subscribers.connect({
    ...(await group(f, "sub")),
    topic: f.topic,
    qos: f.qos,
    limit: f.count,
    duration: f.duration,
  });
  let last = 0;
  const stopProgress = progress(f.quiet, (t) => {
    const got = subs.received;
    const h = subs.latency;
    const line = `sub ${t.toFixed(0)}s conns ${subs.connections} received ${got} (${
      got - last
    }/s) ${latencyText(h)}`;
    last = got;
    return line;
  });
  let report: SubscribeReport;
  try {
    report = await interruptible((signal) => subs.wait(signal, f.idle));
  } finally {
    stopProgress();
  }
  const lost = report.gaps +
    (f.count > 0 ? Math.max(0, f.count * report.connections - report.received) : 0);
  if (f.json) {
    const { latency, ...rest } = report;
    console.log(JSON.stringify({
      kind: "sub",
      ...rest,
      lost,
      msgPerSec: rate(report.received, report.seconds),
      latency: latencyJson(latency),
    }));
  } else {
    console.log(
      `sub: ${report.connections} connections (${report.failed} failed), ${report.received} ` +
        `received in ${report.seconds.toFixed(2)} s: ${rate(report.received, report.seconds)} ` +
        `msg/s, ${latencyText(report.latency)}, lost ${lost}, duplicates ${report.duplicates}`,
    );
  }
  return report.failed > 0 || lost > 0 ? 1 : 0;
}

async function conn(f: CommonFlags): Promise<number> {
  let connected = 0, failed = 0, last = 0;
  const stopProgress = progress(f.quiet, (t) => {
    const line = `conn ${t.toFixed(0)}s connected ${connected} (${
      connected - last
    }/s) failed ${failed}`;
    last = connected;
    return line;
  });
  let report: ConnectReport;
  try {
    report = await interruptible(async (signal) => {
      const idle = await openConnections(
        { ...(await group(f, "conn")), rate: f.interval > 0 ? 1000 / f.interval : 0 },
        (c, x) => {
          connected = c;
          failed = x;
        },
        signal,
      );
      // Hold the connections for the duration, or until Ctrl-C when none is given.
      const until = f.duration > 0 ? performance.now() + f.duration * 1000 : Infinity;
      while (!signal.aborted && performance.now() < until) {
        await new Promise((r) => setTimeout(r, 50));
      }
      await idle.close();
      return idle.report;
    });
  } finally {
    stopProgress();
  }
  const h = report.latency;
  if (f.json) {
    const { latency, ...rest } = report;
    console.log(JSON.stringify({
      kind: "conn",
      ...rest,
      connPerSec: rate(report.connections, report.seconds),
      latency: latencyJson(latency),
    }));
  } else {
    console.log(
      `conn: ${report.connections} connected, ${report.failed} failed in ` +
        `${report.seconds.toFixed(2)} s: ${rate(report.connections, report.seconds)} conn/s, ` +
        `CONNACK ${latencyText(h).replace("latency ", "")}` +
        (report.firstError ? ` (first failure: ${report.firstError})` : ""),
    );
  }
  return report.failed > 0 ? 1 : 0;
}
