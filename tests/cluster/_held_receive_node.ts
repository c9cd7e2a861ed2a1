/**
 * A cluster node for tests whose receive authorization never answers for topics under `held/`
 * (a plugin waiting on a slow lookup), allows those under `slow/` half a second after it is asked,
 * and allows the rest at once: run as
 * `deno run -A tests/cluster/_held_receive_node.ts CONFIG.yaml`. It logs to stderr as `amqtt`
 * does (`Listener "default" bound to …`, then `amqtt test started`) and runs until killed.
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

const config = await loadBrokerConfigFile(Deno.args[0]!);
const broker = new Broker(config, {
  logger: log,
  plugins: [{
    name: "held-receive",
    authorizeReceive: (_client, topic) =>
      topic.startsWith("held/")
        ? new Promise<boolean>(() => {})
        : topic.startsWith("slow/")
        ? new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 500))
        : true,
  }],
});
await broker.start();
console.error("amqtt test started");
