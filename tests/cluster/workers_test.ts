// `amqtt --workers N`: N broker processes share one port (SO_REUSEPORT) and act as one broker
// through the cluster section; without `cluster:` it refuses with a clear message.
import assert from "node:assert/strict";
import { freePort, RedisServer } from "../_helpers/redis.ts";
import { runCli, spawnCli, tempDir } from "../cli/_helpers.ts";
import { Inbox, routeReady, until } from "./_nodes.ts";
import { loadBrokerConfigFile } from "../../src/config/mod.ts";

const opts = { sanitizeOps: true, sanitizeResources: true };

Deno.test(
  "amqtt --workers 2: two cluster nodes share the port; clients of either receive what any client publishes; SIGTERM stops both, exit 0",
  opts,
  async () => {
    await using redis = await RedisServer.start();
    await using dir = await tempDir();
    const port = freePort();
    const config = `${dir.path}/workers.yaml`;
    await Deno.writeTextFile(
      config,
      [
        "listeners:",
        "  default:",
        `    bind: 127.0.0.1:${port}`,
        "cluster:",
        "  node_id: wk",
        `  redis: ${redis.url}`,
        '  key_prefix: "w1:"',
        "",
      ].join("\n"),
    );
    await using supervisor = spawnCli("amqtt.ts", ["-c", config, "--workers", "2"], {
      timeoutMs: 180_000,
    });
    await supervisor.waitForStderr(/Supervising 2 workers/, 60_000);
    await supervisor.waitForStderr(/worker 1: Cluster: joined as node wk-w1/, 60_000);
    await supervisor.waitForStderr(/worker 2: Cluster: joined as node wk-w2/, 60_000);
    await until(
      () => (supervisor.stderr().match(/amqtt \S+ started/g) ?? []).length === 2,
      "both workers listening",
    );
    // One release: started together, neither waits for the other nor takes it for another version.
    assert.doesNotMatch(supervisor.stderr(), /not joining|joined running cluster protocol/);
    // Connections are spread by the kernel: with six subscribers, messages must cross workers to
    // reach them all whichever worker took each.
    const url = `mqtt://127.0.0.1:${port}`;
    const subs: Inbox[] = [];
    try {
      for (let i = 0; i < 6; i++) {
        const sub = await Inbox.connect(url, `sub${i}`);
        subs.push(sub);
        await sub.client.subscribe([["w/#", 1]]);
      }
      await using pub = await Inbox.connect(url, "pub");
      for (const sub of subs) await routeReady(pub.client, sub, "w/probe");
      await pub.client.publish("w/data", "hello", { qos: 1 });
      for (const sub of subs) {
        await until(() => sub.on("w/data").length === 1, "the message on every subscriber");
        assert.deepEqual(sub.on("w/data"), [{ payload: "hello", qos: 1, retain: false }]);
      }
    } finally {
      for (const sub of subs) await sub[Symbol.asyncDispose]();
    }
    supervisor.kill("SIGTERM");
    const result = await supervisor.done;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /Workers stopped/);
    assert.equal((result.stderr.match(/Broker stopped/g) ?? []).length, 2);
  },
);

Deno.test(
  "amqtt --workers without a cluster: section exits 1 with a clear message; a bad count exits 2",
  opts,
  async () => {
    await using dir = await tempDir();
    const config = `${dir.path}/single.yaml`;
    await Deno.writeTextFile(
      config,
      ["listeners:", "  default:", "    bind: 127.0.0.1:0", ""].join("\n"),
    );
    const noCluster = await runCli("amqtt.ts", ["-c", config, "--workers", "2"]);
    assert.equal(noCluster.code, 1, noCluster.stderr);
    assert.match(noCluster.stderr, /--workers needs a cluster: section in the configuration/);
    assert.doesNotMatch(noCluster.stderr, /at .*\.ts:\d+/); // no stack trace
    const zero = await runCli("amqtt.ts", ["-c", config, "--workers", "0"]);
    assert.equal(zero.code, 2, zero.stderr);
    assert.match(zero.stderr, /Invalid --workers "0": expected 1 to 1024/);
  },
);

Deno.test("README: the cluster sample is a configuration the broker accepts, as a cluster node", async () => {
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  const block = [...readme.matchAll(/^```yaml\n([\s\S]*?)^```$/gm)].find((m) =>
    m[1]!.includes("cluster:")
  );
  assert.ok(block, "the cluster sample");
  await using dir = await tempDir();
  const file = `${dir.path}/cluster.yaml`;
  await Deno.writeTextFile(file, block[1]!);
  const config = await loadBrokerConfigFile(file);
  assert.equal(config.cluster.enabled, true);
  assert.deepEqual(config.cluster.redis, ["redis://10.0.0.5:6379"]);
  assert.deepEqual(config.warnings, []);
});

Deno.test(
  "amqtt with cluster: and no reachable Redis exits 1 with one line naming the Redis and why",
  opts,
  async () => {
    await using dir = await tempDir();
    const config = `${dir.path}/unreachable.yaml`;
    const port = freePort(); // nothing listens there
    await Deno.writeTextFile(
      config,
      [
        "listeners:",
        "  default:",
        "    bind: 127.0.0.1:0",
        "cluster:",
        "  node_id: lonely",
        `  redis: redis://:secret@127.0.0.1:${port}`,
        "",
      ].join("\n"),
    );
    const result = await runCli("amqtt.ts", ["-c", config]);
    assert.equal(result.code, 1, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(
        `Cannot start the broker: Cannot start cluster node "lonely": no Redis reachable at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port} \\(connect ECONNREFUSED`,
      ),
    );
    assert.doesNotMatch(result.stderr, /secret/); // the password stays out of the log
    assert.doesNotMatch(result.stderr, /at .*\.ts:\d+/);
  },
);
