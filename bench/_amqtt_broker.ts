// Runs the amqtt broker for the throughput benchmark in its own process (so its CPU time can be
// read from /proc) and prints its port.
import { Broker } from "../broker.ts";

const broker = new Broker({ listeners: { default: { bind: "127.0.0.1:0" } } });
await broker.start();
console.log(`port ${broker.listeners[0]!.port}`);
Deno.addSignalListener("SIGTERM", async () => {
  await broker.shutdown();
  Deno.exit(0);
});
