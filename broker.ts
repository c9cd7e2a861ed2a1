/**
 * The amqtt broker: an embeddable MQTT 3.1 / 3.1.1 broker for Deno.
 *
 * @example
 * ```ts
 * import { Broker } from "./broker.ts";
 * import assert from "node:assert/strict";
 *
 * await using broker = new Broker({ listeners: { default: { bind: "127.0.0.1:0" } } });
 * await broker.start();
 * assert.equal(broker.listeners[0].hostname, "127.0.0.1");
 * ```
 *
 * @module
 */

export { Broker } from "./src/broker/broker.ts";
export type { BrokerEventMap, BrokerOptions, ClientSummary } from "./src/broker/broker.ts";
export type { BrokerStats } from "./src/broker/core.ts";
