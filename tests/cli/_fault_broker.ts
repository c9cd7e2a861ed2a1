// `amqtt` with one addition for fault_test.ts: SIGUSR1 makes a promise rejection nobody handles
// (as a bug in the broker would), so that the test sees what the CLI does with one.
import { runBroker } from "../../cli/amqtt.ts";

Deno.addSignalListener("SIGUSR1", () => {
  Promise.reject(new Error("injected fault"));
});
Deno.exit(await runBroker(Deno.args));
