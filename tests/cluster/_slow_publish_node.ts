/**
 * A cluster node for tests whose publish authorization answers later for topics under `t/` (a
 * plugin waiting on a lookup): after 0 to 12 ms, varying from one question to the next, so that
 * the answers for several publishers come in another order than their PUBLISHes; it refuses
 * topics with an `x` level, and allows the rest at once. Run as
 * `deno run -A tests/cluster/_slow_publish_node.ts CONFIG.yaml`. It logs to stderr as `amqtt`
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

let asked = 0;
const config = await loadBrokerConfigFile(Deno.args[0]!);
const broker = new Broker(config, {
  logger: log,
  plugins: [{
    name: "slow-publish",
    authorizePublish: (_client, topic) => {
      if (!topic.startsWith("t/")) return true;
      const allowed = !topic.includes("/x/");
      const ms = (asked++ * 7) % 13;
      return new Promise<boolean>((resolve) => setTimeout(() => resolve(allowed), ms));
    },
  }],
});
await broker.start();
console.error("amqtt test started");
