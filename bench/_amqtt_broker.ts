// Runs the amqtt broker for the throughput benchmark in its own process (so its CPU time can be
// read from /proc) and prints its port. `--cluster REDIS_URL` makes it a node of a cluster on that
// Redis (node id `idle`, heartbeat every 5 s, a node taken for dead after 120 s: a busy machine's
// starved node is not what is measured); `--root DIR` takes the broker from another checkout;
// `--persistence FILE` keeps its state in that SQLite file (`sync: normal`).
const i = Deno.args.indexOf("--cluster");
const redis = i >= 0 ? Deno.args[i + 1] : undefined;
const p = Deno.args.indexOf("--persistence");
const stateFile = p >= 0 ? Deno.args[p + 1] : undefined;
const r = Deno.args.indexOf("--root");
const root = r >= 0
  ? `file://${Deno.args[r + 1]!.replace(/\/$/, "")}`
  : new URL("..", import.meta.url).href.replace(/\/$/, "");
const { Broker } = await import(`${root}/broker.ts`);

const broker = new Broker({
  listeners: { default: { bind: "127.0.0.1:0" } },
  ...(stateFile === undefined ? {} : { persistence: { path: stateFile, sync: "normal" } }),
  ...(redis === undefined ? {} : {
    cluster: {
      node_id: "idle",
      redis,
      key_prefix: `idle${Deno.pid}:`,
      heartbeat_interval: 5,
      node_timeout: 120,
    },
  }),
});
await broker.start();
console.log(`port ${broker.listeners[0]!.port}`);
Deno.addSignalListener("SIGTERM", async () => {
  await broker.shutdown();
  Deno.exit(0);
});
