// Runs Aedes (npm:aedes, in-memory persistence) on node:net for bench/compare.ts, in its own
// process so its CPU time and memory can be read from /proc, and prints its port. Set up the way
// Aedes' README shows it, with its defaults (no socket options of our own).
import { Aedes } from "aedes";
import net from "node:net";

const aedes = await Aedes.createBroker();
const server = net.createServer(aedes.handle);
server.listen(0, "127.0.0.1", () => {
  console.log(`port ${(server.address() as net.AddressInfo).port}`);
});
Deno.addSignalListener("SIGTERM", () => {
  server.close();
  aedes.close(() => Deno.exit(0));
});
