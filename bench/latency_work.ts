/**
 * The work per message on the latency path, measured so that the machine's other work does not
 * change it: one 64-byte PUBLISH at a time (sent, received by the subscriber, at QoS 1 acknowledged
 * both ways, then the next), so every message is its own read and its own write, as at 5k msg/s on
 * a quiet machine. A client and the program under test share one process: amqtt (this checkout,
 * or `--base DIR`, another checkout) or `_latency_floor_server.ts`, the smallest Deno QoS 0/1
 * forwarder. Each run is a process of its own with a young generation large enough that no
 * scavenge falls inside a window of 1000 messages, so the heap's growth over a window is what
 * they allocated. Figures per message, client included (the same client for every program):
 * bytes allocated on the JS heap, and CPU time of the process (`/proc/self/stat`).
 *
 * With `--mallocs`, the runs also count the native allocations per message (calls of glibc's
 * malloc, calloc and realloc in every thread of the process, and those of 1,008 bytes or more,
 * which make glibc merge its freed small chunks first), through a preloaded counter
 * (`loadgen/malloc_count.c`, built with the machine's C compiler).
 *
 * With `--shape`, amqtt alone (no floor) at another shape of delivery than QoS n to a QoS n
 * subscription at 3.1.1: `qos1to0` (published at QoS 1, subscribed at QoS 0), `id0` (QoS 0 to
 * a 5.0 subscriber whose subscription has a Subscription Identifier, so each delivery is a copy
 * of the message) or `id1` (the same at QoS 1, acknowledged).
 *
 * Usage: deno run -A bench/latency_work.ts [--base DIR] [--reps 3] [--mallocs]
 *        [--shape qos1to0|id0|id1]
 *
 * @module
 */

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const WARMUP = 20_000;
const WINDOW = 1000;
const WINDOWS = 40;

function flag(name: string): string | undefined {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

/** A forwarder listening on a free port in this process, and how to stop it. */
async function startTarget(
  target: string,
): Promise<{ port: number; stop: () => Promise<void> }> {
  if (target === "floor") {
    const { serve } = await import("./_latency_floor_server.ts");
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const accepting = (async () => {
      for await (const conn of listener) serve(conn);
    })();
    return {
      port: listener.addr.port,
      stop: async () => {
        listener.close();
        await accepting.catch(() => {});
      },
    };
  }
  const { Broker } = await import(`${target}/broker.ts`);
  const broker = new Broker({ listeners: { default: { bind: "127.0.0.1:0" } }, sys_interval: 0 });
  await broker.start();
  return { port: broker.listeners[0]!.port, stop: () => broker.shutdown() };
}

/** Shapes of delivery (`--shape`): the publisher's QoS, and the subscription's QoS and options. */
const SHAPES: Record<string, { pubQos: 0 | 1; subQos: 0 | 1; identifier: boolean }> = {
  qos1to0: { pubQos: 1, subQos: 0, identifier: false },
  id0: { pubQos: 0, subQos: 0, identifier: true },
  id1: { pubQos: 1, subQos: 1, identifier: true },
};

/** The child: measures one program at one QoS (or `--shape`) and prints one JSON line. */
async function child(target: string, level: 0 | 1, shapeName: string): Promise<void> {
  const shape = SHAPES[shapeName] ?? { pubQos: level, subQos: level, identifier: false };
  const qos = shape.pubQos;
  const { port, stop } = await startTarget(target);
  const enc = new TextEncoder();
  const str = (s: string) => {
    const b = enc.encode(s);
    return [b.length >> 8, b.length & 255, ...b];
  };
  const packet = (type: number, body: number[]) => new Uint8Array([type, body.length, ...body]);
  const open = async (id: string, v5 = false) => {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    c.setNoDelay(true);
    const version = v5 ? [5, 2, 0, 60, 0] : [4, 2, 0, 60];
    await c.write(packet(0x10, [...str("MQTT"), ...version, ...str(id)]));
    await c.read(new Uint8Array(v5 ? 256 : 4));
    return c;
  };
  const sub = await open("work-sub", shape.identifier), pub = await open("work-pub");
  // A 5.0 SUBSCRIBE with Subscription Identifier 1 (property 0x0b).
  const properties = shape.identifier ? [2, 0x0b, 1] : [];
  await sub.write(packet(0x82, [0, 1, ...properties, ...str("t/a"), shape.subQos]));
  await sub.read(new Uint8Array(shape.identifier ? 256 : 5));
  const payload = new Array(64).fill(7);
  const publish = packet(qos ? 0x32 : 0x30, [...str("t/a"), ...(qos ? [0, 1] : []), ...payload]);
  const buf = new Uint8Array(4096);
  const puback = new Uint8Array([0x40, 2, 0, 0]);
  const ack = new Uint8Array(4);
  // One message, allocating nothing of its own but the promises of the socket calls.
  const one = async (i: number) => {
    if (qos) {
      const id = (i % 60000) + 1;
      publish[7] = id >> 8;
      publish[8] = id & 255;
    }
    await pub.write(publish);
    // The whole PUBLISH delivered (its length is under 128: one byte of remaining length).
    let got = 0;
    while (got < 2 || got < 2 + buf[1]!) got += (await sub.read(buf.subarray(got)))!;
    if (shape.subQos) {
      puback[2] = buf[7]!;
      puback[3] = buf[8]!;
      await sub.write(puback);
    }
    if (qos) await pub.read(ack);
  };
  for (let i = 0; i < WARMUP; i++) await one(i);
  const cpu = () => {
    const f = Deno.readTextFileSync("/proc/self/stat").split(") ")[1]!.split(" ");
    return (Number(f[11]) + Number(f[12])) * 10_000; // µs at 100 ticks per second
  };
  const bytes: number[] = [];
  // Native allocations: the preloaded counter appends its totals to the file on SIGUSR2.
  const mallocFile = Deno.env.get("AMQTT_MALLOC_FILE");
  const mallocs = async () => {
    if (mallocFile === undefined) return [0, 0];
    Deno.kill(Deno.pid, "SIGUSR2");
    await new Promise((resolve) => setTimeout(resolve, 50));
    return Deno.readTextFileSync(mallocFile).trim().split("\n").at(-1)!.split(" ").map(Number);
  };
  const mallocs0 = await mallocs();
  const cpu0 = cpu();
  for (let w = 0; w < WINDOWS; w++) {
    const before = Deno.memoryUsage().heapUsed;
    for (let i = 0; i < WINDOW; i++) await one(w * WINDOW + i);
    const after = Deno.memoryUsage().heapUsed;
    // A window with a scavenge in it shrank the heap: left out.
    if (after > before) bytes.push((after - before) / WINDOW);
  }
  const cpuPerMessage = (cpu() - cpu0) / (WINDOWS * WINDOW);
  const mallocs1 = await mallocs();
  const perMessage = (i: number) => (mallocs1[i]! - mallocs0[i]!) / (WINDOWS * WINDOW);
  bytes.sort((a, b) => a - b);
  sub.close();
  pub.close();
  await stop();
  console.log(JSON.stringify({
    bytes: bytes[bytes.length >> 1],
    cpu: cpuPerMessage,
    mallocs: perMessage(0),
    large: perMessage(1),
  }));
}

interface Measured {
  bytes: number;
  cpu: number;
  mallocs: number;
  large: number;
}

/** Builds the native allocation counter; returns the environment that preloads it. */
async function mallocCounter(): Promise<Record<string, string>> {
  const dir = await Deno.makeTempDir({ prefix: "amqtt-malloc-" });
  const lib = `${dir}/malloc_count.so`;
  const source = new URL("./loadgen/malloc_count.c", import.meta.url).pathname;
  const r = await new Deno.Command("cc", {
    args: ["-O2", "-Wall", "-shared", "-fPIC", "-o", lib, source, "-ldl"],
  }).output();
  if (!r.success) {
    throw new Error(`Cannot compile ${source}: ${new TextDecoder().decode(r.stderr)}`);
  }
  return { LD_PRELOAD: lib, AMQTT_MALLOC_FILE: `${dir}/counts` };
}
const mallocEnv = Deno.args.includes("--mallocs") ? await mallocCounter() : undefined;

async function measure(target: string, qos: 0 | 1, shape: string): Promise<Measured> {
  const root = target === "floor" ? ROOT : target;
  const out = await new Deno.Command(Deno.execPath(), {
    env: mallocEnv,
    args: [
      "run",
      "-A",
      `--config=${root}/deno.json`,
      "--v8-flags=--min-semi-space-size=64,--max-semi-space-size=64",
      new URL(import.meta.url).pathname,
      "--child",
      target,
      String(qos),
      shape,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`the run of ${target} failed`);
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
}

if (Deno.args[0] === "--child") {
  await child(Deno.args[1]!, Number(Deno.args[2]) as 0 | 1, Deno.args[3] ?? "");
} else {
  const base = flag("--base");
  const reps = Number(flag("--reps") ?? 3);
  const shape = flag("--shape") ?? "";
  if (shape !== "" && SHAPES[shape] === undefined) {
    console.error(`Unknown shape ${shape}: one of ${Object.keys(SHAPES).join(", ")}`);
    Deno.exit(2);
  }
  const programs: [string, string, (0 | 1)[]][] = [
    // The floor forwarder knows one shape, the plain one.
    ...(shape === "" ? [["deno floor", "floor", [0, 1]]] as [string, string, (0 | 1)[]][] : []),
    ...(base === undefined ? [] : [[`amqtt ${base}`, base.replace(/\/$/, ""), [0, 1]]] as [
      string,
      string,
      (0 | 1)[],
    ][]),
    ["amqtt (this checkout)", ROOT, [0, 1]],
  ].map(([name, target, levels]) => [name, target, shape === "" ? levels : [0]]) as [
    string,
    string,
    (0 | 1)[],
  ][];
  const rows = new Map<
    string,
    { bytes: number[]; cpu: number[]; mallocs: number[]; large: number[] }
  >();
  for (let rep = 1; rep <= reps; rep++) {
    for (const [name, target, levels] of programs) {
      for (const qos of levels) {
        const r = await measure(target, qos, shape);
        const row = rows.get(`${name}|${qos}`) ?? { bytes: [], cpu: [], mallocs: [], large: [] };
        row.bytes.push(r.bytes);
        row.cpu.push(r.cpu);
        row.mallocs.push(r.mallocs);
        row.large.push(r.large);
        rows.set(`${name}|${qos}`, row);
        console.error(`[${rep}/${reps}] ${name} QoS ${qos}: ${r.bytes} B, ${r.cpu.toFixed(1)} µs`);
      }
    }
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!;
  const cell = (v: number[], digits: number) =>
    `${median(v).toFixed(digits)} (${Math.min(...v).toFixed(digits)}–${
      Math.max(...v).toFixed(digits)
    })`;
  console.log(
    `One 64-byte PUBLISH at a time, client and program in one process, ${reps} runs` +
      (shape === "" ? "" : `, shape ${shape} (the QoS column does not apply)`),
  );
  const native = mallocEnv === undefined
    ? ["", ""]
    : [" native allocations per message | of them ≥ 1,008 B |", " --- | --- |"];
  console.log(
    `| program | QoS | JS heap allocated per message, B | CPU per message, µs |${native[0]}`,
  );
  console.log(`| --- | --- | --- | --- |${native[1]}`);
  for (const [key, r] of rows) {
    const [name, qos] = key.split("|");
    const counts = mallocEnv === undefined ? "" : ` ${cell(r.mallocs, 2)} | ${cell(r.large, 3)} |`;
    console.log(`| ${name} | ${qos} | ${cell(r.bytes, 0)} | ${cell(r.cpu, 1)} |${counts}`);
  }
}
