// Runs Aedes (npm:aedes, in-memory persistence) on node:net for bench/compare.ts, in its own
// process so its CPU time and memory can be read from /proc, and prints its port.
import { Aedes } from "aedes";
import net from "node:net";

const aedes = await Aedes.createBroker();
const server = net.createServer((socket) => {
  // The same as the other brokers under test: no Nagle delay on small packets.
  socket.setNoDelay(true);
  aedes.handle(socket);
});
server.listen(0, "127.0.0.1", () => {
  console.log(`port ${(server.address() as net.AddressInfo).port}`);
});
Deno.addSignalListener("SIGTERM", () => {
  server.close();
  aedes.close(() => Deno.exit(0));
});
