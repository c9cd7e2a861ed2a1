/**
 * Timing of plugin decisions (authentication and the publish, subscribe and receive checks) for
 * the `amqtt_plugin_decision_duration_seconds` histogram. The broker wraps its policy with
 * {@linkcode timePolicy} only when an http listener is configured, so a broker without one pays
 * nothing for it.
 *
 * @module
 */

import type { QoS } from "../../packet/constants.ts";
import type { Properties } from "../../packet/types.ts";
import type { ClientInfo, PolicyHost } from "../policy.ts";

/** Bucket upper bounds in seconds: 50 µs to 5 s. */
export const DECISION_BUCKETS: readonly number[] = [
  0.00005,
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
];

/** A latency histogram with fixed buckets. */
export class Histogram {
  /** Upper bounds, ascending. */
  readonly bounds: readonly number[];
  /** Observations per bucket (not cumulative); the last slot is past the largest bound. */
  readonly #counts: number[];
  /** Every observation. */
  count = 0;
  /** The sum of the observations. */
  sum = 0;

  /** @param bounds upper bounds, ascending */
  constructor(bounds: readonly number[] = DECISION_BUCKETS) {
    this.bounds = bounds;
    this.#counts = new Array(bounds.length + 1).fill(0);
  }

  /**
   * Records one observation.
   *
   * @param value the value (seconds)
   */
  observe(value: number): void {
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]!) i++;
    this.#counts[i]!++;
    this.count++;
    this.sum += value;
  }

  /** @returns cumulative counts per bound (the Prometheus `le` buckets, `+Inf` excluded) */
  cumulative(): number[] {
    const out: number[] = [];
    let running = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      running += this.#counts[i]!;
      out.push(running);
    }
    return out;
  }
}

/** The decisions timed, one histogram each. */
export type DecisionKind = "authenticate" | "publish" | "subscribe" | "receive";

/** One histogram per decision kind. */
export type DecisionHistograms = Record<DecisionKind, Histogram>;

/** @returns empty histograms for every decision kind */
export function newDecisionHistograms(): DecisionHistograms {
  return {
    authenticate: new Histogram(),
    publish: new Histogram(),
    subscribe: new Histogram(),
    receive: new Histogram(),
  };
}

/**
 * Wraps a policy so that each decision's time (until its promise settles, for asynchronous
 * ones) is recorded.
 *
 * @param policy the plugin host's combined policy
 * @param histograms where the times go
 * @returns a policy that answers as `policy` does
 */
export function timePolicy(policy: PolicyHost, histograms: DecisionHistograms): PolicyHost {
  const time = <T>(kind: DecisionKind, decide: () => T | Promise<T>): T | Promise<T> => {
    const start = performance.now();
    const done = () => histograms[kind].observe((performance.now() - start) / 1000);
    let result: T | Promise<T>;
    try {
      result = decide();
    } catch (error) {
      done();
      throw error;
    }
    if (result instanceof Promise) return result.finally(done);
    done();
    return result;
  };
  return {
    get hasPublishHooks() {
      return policy.hasPublishHooks;
    },
    get hasSubscribeHooks() {
      return policy.hasSubscribeHooks;
    },
    get hasReceiveHooks() {
      return policy.hasReceiveHooks;
    },
    authenticate: (client: ClientInfo) => time("authenticate", () => policy.authenticate(client)),
    authorizePublish: (
      client: ClientInfo,
      topic: string,
      qos: QoS,
      retain: boolean,
      properties?: Properties,
    ) => time("publish", () => policy.authorizePublish(client, topic, qos, retain, properties)),
    authorizeSubscribe: (client: ClientInfo, topic: string, qos: QoS) =>
      time("subscribe", () => policy.authorizeSubscribe(client, topic, qos)),
    authorizeReceive: (client: ClientInfo, topic: string) =>
      time("receive", () => policy.authorizeReceive(client, topic)),
  };
}
