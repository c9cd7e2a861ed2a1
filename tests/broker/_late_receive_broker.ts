/**
 * A broker for tests whose receive authorization answers late: for topics under `late/` it is
 * allowed, and for those under `deny/` refused, only once the process gets SIGUSR1 (a plugin
 * waiting on a slow lookup, answered when the test says so); the rest is allowed at once. Run as
 * `deno run -A tests/broker/_late_receive_broker.ts CONFIG.yaml`. It logs to stderr as `amqtt`
 * does (`Listener "default" bound to …`, then `amqtt test started`), writes
 * `receive asked TOPIC` each time it is asked about such a topic, and runs until killed.
 *
 * @module
 */

import { Broker } from "../../broker.ts";
import { loadBrokerConfigFile } from "../../src/config/broker_config.ts";
import type { Logger } from "../../src/broker/policy.ts";

const log: Logger = {
  debug() {},
  info: (m) => console.error(`INFO - ${m}`),
  warning: (m) => console.error(`WARNING - ${m}`),
  error: (m) => console.error(`ERROR - ${m}`),
};

/** Answers waiting for SIGUSR1. */
let waiting: (() => void)[] = [];
Deno.addSignalListener("SIGUSR1", () => {
  const now = waiting;
  waiting = [];
  for (const answer of now) answer();
});

const config = await loadBrokerConfigFile(Deno.args[0]!);
const broker = new Broker(config, {
  logger: log,
  plugins: [{
    name: "late-receive",
    authorizeReceive: (_client, topic) => {
      if (!topic.startsWith("late/") && !topic.startsWith("deny/")) return true;
      console.error(`receive asked ${topic}`);
      return new Promise<boolean>((resolve) =>
        waiting.push(() => resolve(topic.startsWith("late/")))
      );
    },
  }],
});
await broker.start();
console.error("amqtt test started");
