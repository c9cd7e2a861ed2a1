/**
 * Retained QoS 1 publishes to distinct topics of one length, each PUBACK awaited, by one client
 * over TCP: the per-message time at the longest topic taken (16,383 characters) stays flat, and a
 * topic one character longer is refused (V8 hashes longer strings by length alone: one Map bucket
 * for all of them; `src/topic/topic_length.ts`).
 *
 * Run: deno run -A bench/long_topics.ts [count]
 *
 * @module
 */

import { Broker } from "../broker.ts";
import { MQTTClient } from "../client.ts";
import { MAX_TOPIC_LENGTH } from "../src/topic/mod.ts";

const count = Number(Deno.args[0] ?? 1000);

async function run(length: number): Promise<void> {
  await using broker = new Broker({ listeners: { default: { bind: "127.0.0.1:0" } } });
  await broker.start();
  await using client = new MQTTClient();
  await client.connect(`mqtt://127.0.0.1:${broker.listeners[0].port}`);
  const fill = "a".repeat(length);
  const topic = (i: number) => `${i}/`.concat(fill).slice(0, length);
  const start = performance.now();
  let lastHundred = start;
  try {
    for (let i = 0; i < count; i++) {
      if (i === count - 100) lastHundred = performance.now();
      await client.publish(topic(i), "x", { qos: 1, retain: true });
    }
  } catch (error) {
    console.log(`${length} characters: refused (${(error as Error).message.slice(-60)})`);
    return;
  }
  const end = performance.now();
  console.log(
    `${length} characters: ${count} in ${(end - start).toFixed(0)} ms, the last 100 ${
      ((end - lastHundred) / 100).toFixed(2)
    } ms each`,
  );
}

for (const length of [1_000, 16_006, MAX_TOPIC_LENGTH, 20_006]) await run(length);
