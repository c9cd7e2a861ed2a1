/**
 * The scenarios of bench/compare.ts: which generator run each one is, and which figures (rows of
 * bench/RESULTS.md) it reports. See bench/README.md for what each row means.
 *
 * @module
 */

import type { LoadgenReport } from "./loadgen/run.ts";

/** Settings of one comparison run. */
export interface Settings {
  /** Seconds of each measured phase. */
  seconds: number;
  /** Seconds of load before each measured phase, not counted. */
  warmup: number;
  /**
   * Seconds of load before the latency scenarios' measured phase (default: `warmup`, at least
   * {@linkcode LATENCY_WARMUP}).
   */
  latencyWarmup?: number;
  /** Idle connections for the two RSS readings of the memory slope. */
  n1: number;
  n2: number;
  /** Seconds to wait before each RSS reading. */
  settle: number;
  /** Concurrent handshakes per burst in the connection-rate scenario. */
  burst: number;
  /** Total offered msg/s in the overload scenario (split over 8 publishers). */
  overloadRate: number;
}

/** One row of the table: a figure read from each run's report. */
export interface Metric {
  label: string;
  unit: string;
  lowerIsBetter?: boolean;
  value(r: LoadgenReport): number | undefined;
}

/** One generator run per broker and repetition, and the rows it yields. */
export interface Scenario {
  key: string;
  title: string;
  args(s: Settings): string[];
  metrics: Metric[];
  /** Whether lost or duplicated messages are a fault to flag in every row (not a figure). */
  flagLoss?: boolean;
}

const num = (r: LoadgenReport, k: string): number | undefined => {
  const v = r[k];
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : undefined;
};

const perCpu = (r: LoadgenReport, count: string): number | undefined => {
  const c = num(r, count), cpu = num(r, "brokerCpu");
  return c !== undefined && cpu !== undefined && cpu > 0 ? c / cpu : undefined;
};

const timed = (s: Settings) => ["--warmup", String(s.warmup), "--seconds", String(s.seconds)];

/**
 * The least warm-up of the latency scenarios, in seconds. At 5,000 msg/s V8 goes on compiling a
 * Deno program's hot path for several seconds after the load starts (amqtt: about 110 compile
 * jobs, 285 ms of compiler time, until 7–10 s in; the floor forwarder: until about 4 s in), on a
 * helper thread that shares the broker's CPU when it is pinned to one and preempts the main thread
 * for up to a few ms per job: a phase measured before then shows the compiler's warm-up in p99
 * (bench/RESULTS.md, "The latency tail: what it is made of").
 */
export const LATENCY_WARMUP = 10;

function throughput(
  key: string,
  title: string,
  shape: { pubs: number; subs: number; qos: number; level?: 5 },
): Scenario {
  const unit = shape.subs > 1 ? "deliveries/s" : "msg/s";
  return {
    key,
    title,
    flagLoss: true,
    args: (s) => [
      "pubsub",
      "--pubs",
      String(shape.pubs),
      "--subs",
      String(shape.subs),
      "--qos",
      String(shape.qos),
      "--size",
      "64",
      ...(shape.level === 5 ? ["--level", "5"] : []),
      ...timed(s),
    ],
    metrics: [
      { label: "throughput", unit, value: (r) => num(r, "msgPerSecond") },
      {
        label: "per broker CPU-second",
        unit: shape.subs > 1 ? "deliveries/CPU-s" : "msg/CPU-s",
        value: (r) => perCpu(r, "windowReceived"),
      },
    ],
  };
}

function latency(key: string, qos: number): Scenario {
  return {
    key,
    title: `latency @ 5k msg/s QoS ${qos}`,
    flagLoss: true,
    args: (s) => [
      "pubsub",
      "--pubs",
      "1",
      "--subs",
      "1",
      "--qos",
      String(qos),
      "--size",
      "64",
      "--rate",
      "5000",
      "--warmup",
      String(s.latencyWarmup ?? Math.max(s.warmup, LATENCY_WARMUP)),
      "--seconds",
      String(s.seconds),
    ],
    metrics: [
      { label: "p50", unit: "µs", lowerIsBetter: true, value: (r) => num(r, "p50us") },
      { label: "p99", unit: "µs", lowerIsBetter: true, value: (r) => num(r, "p99us") },
      {
        label: "generator send lateness p99",
        unit: "µs",
        lowerIsBetter: true,
        value: (r) => num(r, "latenessP99us"),
      },
    ],
  };
}

/**
 * Bursts of concurrent handshakes. Small bursts (64, below every listen backlog here) measure
 * what a handshake costs; large ones add the tail and the accept-queue overflows of a storm.
 */
function connections(key: string, title: string, burst: (s: Settings) => number): Scenario {
  return {
    key,
    title,
    args: (s) => ["connect", "--burst", String(burst(s)), ...timed(s)],
    metrics: [
      { label: "rate", unit: "conn/s", value: (r) => num(r, "connPerSecond") },
      {
        label: "per broker CPU-second",
        unit: "conn/CPU-s",
        value: (r) => perCpu(r, "connections"),
      },
      {
        label: "CONNECT→CONNACK p50",
        unit: "ms",
        lowerIsBetter: true,
        value: (r) => us2ms(num(r, "p50us")),
      },
      {
        label: "CONNECT→CONNACK p99",
        unit: "ms",
        lowerIsBetter: true,
        value: (r) => us2ms(num(r, "p99us")),
      },
      {
        label: "handshakes that needed a TCP retransmission",
        unit: "% of handshakes",
        lowerIsBetter: true,
        value: (r) => share(num(r, "retransmitted"), num(r, "connections")),
      },
      {
        label: "failed handshakes",
        unit: "count",
        lowerIsBetter: true,
        value: (r) => num(r, "failed"),
      },
    ],
  };
}

/** Every scenario, in the order they run and appear. */
export const SCENARIOS: Scenario[] = [
  throughput("fanin", "fan-in 8→1 QoS 0", { pubs: 8, subs: 1, qos: 0 }),
  throughput("fanout", "fan-out 1→32 QoS 0", { pubs: 1, subs: 32, qos: 0 }),
  throughput("qos1", "1→1 QoS 1", { pubs: 1, subs: 1, qos: 1 }),
  throughput("qos2", "1→1 QoS 2", { pubs: 1, subs: 1, qos: 2 }),
  // The same four at MQTT 5.0 (every connection level 5, no properties): to compare with 3.1.1.
  throughput("fanin5", "MQTT 5.0 fan-in 8→1 QoS 0", { pubs: 8, subs: 1, qos: 0, level: 5 }),
  throughput("fanout5", "MQTT 5.0 fan-out 1→32 QoS 0", { pubs: 1, subs: 32, qos: 0, level: 5 }),
  throughput("qos1_5", "MQTT 5.0 1→1 QoS 1", { pubs: 1, subs: 1, qos: 1, level: 5 }),
  throughput("qos2_5", "MQTT 5.0 1→1 QoS 2", { pubs: 1, subs: 1, qos: 2, level: 5 }),
  latency("lat0", 0),
  latency("lat1", 1),
  connections("connect", "connections (bursts of 64 handshakes)", () => 64),
  connections("storm", "connection storm (bursts of --burst, see Settings)", (s) => s.burst),
  {
    key: "idle",
    title: "idle connections",
    args: (s) => ["idle", "--n1", String(s.n1), "--n2", String(s.n2), "--settle", String(s.settle)],
    metrics: [
      {
        label: "memory per connection (RSS slope)",
        unit: "KB",
        lowerIsBetter: true,
        value: (r) => kb(num(r, "bytesPerConnection")),
      },
      {
        label: "broker RSS before connections",
        unit: "MB",
        lowerIsBetter: true,
        value: (r) => mb(num(r, "rssBaseKiB")),
      },
      {
        label: "RSS kept after all closed",
        unit: "MB",
        lowerIsBetter: true,
        value: (r) => {
          const after = num(r, "rssAfterCloseKiB"), base = num(r, "rssBaseKiB");
          return after !== undefined && base !== undefined ? (after - base) / 1024 : undefined;
        },
      },
      {
        label: "failed connections",
        unit: "count",
        lowerIsBetter: true,
        value: (r) => num(r, "failed"),
      },
    ],
  },
  {
    key: "overload",
    title: "overload: fan-in 8→1 QoS 0, open loop",
    args: (s) => [
      "pubsub",
      "--pubs",
      "8",
      "--subs",
      "1",
      "--qos",
      "0",
      "--size",
      "64",
      "--rate",
      String(Math.round(s.overloadRate / 8)),
      "--bp-cap",
      "65536",
      ...timed(s),
    ],
    metrics: [
      { label: "delivered", unit: "msg/s", value: (r) => num(r, "msgPerSecond") },
      {
        label: "max queueing delay, worst connection",
        unit: "ms",
        lowerIsBetter: true,
        value: (r) => us2ms(num(r, "worstConnectionMaxDelayUs")),
      },
      {
        label: "max queueing delay, best connection",
        unit: "ms",
        lowerIsBetter: true,
        value: (r) => us2ms(num(r, "bestConnectionMaxDelayUs")),
      },
      {
        label: "broker peak RSS",
        unit: "MB",
        lowerIsBetter: true,
        value: (r) => mb(num(r, "brokerRssPeakKiB")),
      },
      {
        label: "dropped by the broker",
        unit: "% of sent",
        lowerIsBetter: true,
        value: (r) => share(num(r, "lost"), num(r, "sent")),
      },
      {
        label: "held back by TCP backpressure",
        unit: "% of offered",
        value: (r) => {
          const refused = num(r, "refused"), sent = num(r, "sent");
          return refused === undefined || sent === undefined
            ? undefined
            : share(refused, sent + refused);
        },
      },
    ],
  },
];

function us2ms(us: number | undefined): number | undefined {
  return us === undefined ? undefined : us / 1000;
}

function kb(bytes: number | undefined): number | undefined {
  return bytes === undefined ? undefined : bytes / 1024;
}

function mb(kib: number | undefined): number | undefined {
  return kib === undefined ? undefined : kib / 1024;
}

function share(part: number | undefined, whole: number | undefined): number | undefined {
  return part === undefined || whole === undefined || whole === 0 ? undefined : 100 * part / whole;
}
