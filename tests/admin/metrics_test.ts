// /metrics in the Prometheus text format, parsed with a real parser and checked against known
// traffic; /healthz and /readyz.
import assert from "node:assert/strict";
import parsePrometheus from "parse-prometheus-text-format";
import { PacketType } from "../../src/packet/constants.ts";
import type { BrokerPlugin } from "../../src/plugins/types.ts";
import { waitFor } from "../_helpers/broker.ts";
import { SqliteStore } from "../../src/store/sqlite_store.ts";
import { connectPacket, publishPacket, TestClient } from "../_helpers/test_client.ts";
import { asAlice, PASSWORDS, request, startAdminBroker } from "./_helpers.ts";
import { tempDir } from "../_helpers/temp_dir.ts";

interface Family {
  name: string;
  help: string;
  type: string;
  metrics: {
    value?: string;
    labels?: Record<string, string>;
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
  }[];
}

/** Parses with the npm parser, after strict checks of the text the parser is lenient about. */
function parse(text: string): Map<string, Family> {
  assert.ok(text.endsWith("\n"), "the exposition ends with a newline");
  const declared = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/.exec(line);
    if (type !== null) {
      assert.ok(!declared.has(type[1]!), `${type[1]} declared once`);
      declared.set(type[1]!, type[2]!);
      continue;
    }
    if (line.startsWith("# HELP ")) continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    assert.ok(sample !== null, `a well-formed sample line: ${line}`);
    const name = sample[1]!;
    const family = declared.has(name) ? name : name.replace(/_(bucket|sum|count)$/, "");
    assert.ok(declared.has(family), `${name} has a # TYPE line before it`);
    assert.ok(Number.isFinite(Number(sample[3])) || sample[3] === "+Inf", `${line}: a number`);
  }
  for (const [name, type] of declared) {
    assert.ok(name.startsWith("amqtt_") || /^(process|deno)_/.test(name), `${name} prefixed`);
    if (type === "counter") assert.ok(name.endsWith("_total"), `counter ${name} ends in _total`);
    else assert.ok(!name.endsWith("_total"), `${type} ${name} does not end in _total`);
  }
  const families = parsePrometheus(text) as Family[];
  return new Map(families.map((f) => [f.name, f]));
}

function value(families: Map<string, Family>, name: string, labels: Record<string, string> = {}) {
  const family = families.get(name);
  assert.ok(family !== undefined, `metric ${name} present`);
  const found = family.metrics.find((m) =>
    Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)
  );
  assert.ok(found !== undefined, `${name}${JSON.stringify(labels)} present`);
  return Number(found.value);
}

/** Sample lines, strictly: `name{a="x",b="y"} value`, with label escapes. */
function samples(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const out = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m !== null, line);
    const labels: Record<string, string> = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
    const body = m[2] ?? "";
    while (re.lastIndex < body.length) {
      const l = re.exec(body);
      assert.ok(l !== null, `labels of ${line}`);
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c) => c === "n" ? "\n" : c);
    }
    out.push({ name: m[1]!, labels, value: m[3] === "+Inf" ? Infinity : Number(m[3]) });
  }
  return out;
}

function histogram(text: string, name: string, labels: Record<string, string>) {
  const mine = samples(text).filter((s) =>
    Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  );
  const one = (suffix: string) => mine.find((s) => s.name === `${name}_${suffix}`)!.value;
  return {
    buckets: mine.filter((s) => s.name === `${name}_bucket`).map((s) =>
      [s.labels.le === "+Inf" ? Infinity : Number(s.labels.le), s.value] as const
    ),
    count: one("count"),
    sum: one("sum"),
  };
}

async function scrapeText(url: string): Promise<string> {
  const got = await asAlice(`${url}/metrics`);
  assert.equal(got.status, 200);
  return got.text;
}

async function scrape(url: string): Promise<Map<string, Family>> {
  const got = await asAlice(`${url}/metrics`);
  assert.equal(got.status, 200);
  assert.equal(got.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  return parse(got.text);
}

Deno.test("http /metrics: counts known traffic by QoS, listener and reason", async () => {
  await using b = await startAdminBroker();
  const before = await scrape(b.url);
  assert.equal(value(before, "amqtt_clients_connected"), 0);
  assert.equal(value(before, "amqtt_build_info", { version: "0.1.0" }), 1);

  await using sub = await TestClient.connect(b.mqttPort, { clientId: "sub" });
  await sub.subscribe({ "m/#": 1 });
  await using pub = await TestClient.connect(b.mqttPort, { clientId: "pub" });
  const enc = new TextEncoder();
  for (let i = 0; i < 3; i++) await pub.send(publishPacket("m/a", enc.encode("12345"), { qos: 0 }));
  for (let i = 1; i <= 2; i++) {
    await pub.send(publishPacket("m/b", enc.encode("1234567890"), { qos: 1, packetId: i }));
    await pub.expect(PacketType.PUBACK);
  }
  await pub.send(publishPacket("m/r", enc.encode("abc"), { qos: 0, retain: true }));
  for (let i = 0; i < 6; i++) {
    const p = await sub.expect(PacketType.PUBLISH);
    if (p.qos > 0) await sub.send({ type: PacketType.PUBACK, packetId: p.packetId! });
  }
  // A refused login: alice's wrong password.
  await using bad = await TestClient.open(b.mqttPort);
  // The first password check starts a worker: wait long for its answer.
  await bad.send(connectPacket({
    clientId: "intruder",
    username: "alice",
    password: enc.encode("Xyzzy77"),
  }));
  const connack = await bad.expect(PacketType.CONNACK, 20_000);
  assert.equal(connack.reasonCode, 4);

  const m = await scrape(b.url);
  assert.equal(value(m, "amqtt_clients_connected"), 2);
  await waitFor(() => bad.socketEnded, 2000, "the refused connection to close");
  const m2 = await scrape(b.url);
  assert.equal(value(m2, "amqtt_connections", { listener: "default" }), 2);
  assert.equal(value(m, "amqtt_connections_accepted_total", { listener: "default" }), 3);
  assert.equal(
    value(m, "amqtt_connections_refused_total", {
      listener: "default",
      reason: "bad_username_or_password",
    }),
    1,
  );
  assert.equal(value(m, "amqtt_messages_received_total", { qos: "0" }), 4);
  assert.equal(value(m, "amqtt_messages_received_total", { qos: "1" }), 2);
  assert.equal(value(m, "amqtt_messages_received_total", { qos: "2" }), 0);
  assert.equal(value(m, "amqtt_message_payload_received_bytes_total", { qos: "0" }), 18);
  assert.equal(value(m, "amqtt_message_payload_received_bytes_total", { qos: "1" }), 20);
  assert.equal(value(m, "amqtt_messages_sent_total", { qos: "0" }), 4);
  assert.equal(value(m, "amqtt_messages_sent_total", { qos: "1" }), 2);
  assert.equal(value(m, "amqtt_message_payload_sent_bytes_total", { qos: "1" }), 20);
  assert.equal(value(m, "amqtt_sessions", { state: "online" }), 2);
  assert.equal(value(m, "amqtt_subscriptions"), 1);
  assert.equal(value(m, "amqtt_shared_subscription_groups"), 0);
  assert.ok(value(m, "amqtt_retained_messages") >= 1);
  assert.ok(value(m, "amqtt_retained_payload_bytes") >= 3);
  assert.equal(value(m, "amqtt_messages_inflight"), 0);
  // Every drop reason is its own series, at zero for this well-behaved traffic.
  for (const reason of ["queue_full", "outbound_full", "not_authorized", "session_expired"]) {
    assert.equal(value(m, "amqtt_messages_dropped_total", { reason }), 0, reason);
  }
  // No subscriber's queue filled: no publisher was paused.
  assert.equal(value(m, "amqtt_publishers_paused_total"), 0);
  assert.equal(value(m, "amqtt_publisher_pause_timeouts_total"), 0);
  for (const limit of ["topic_levels", "subscriptions", "sessions", "retained", "memory"]) {
    assert.equal(value(m, "amqtt_limit_refusals_total", { limit }), 0, limit);
  }
  assert.ok(value(m, "process_resident_memory_bytes") > 0);
  assert.ok(value(m, "process_cpu_seconds_total") > 0);
  assert.ok(value(m, "deno_heap_used_bytes") > 0);
  assert.ok(value(m, "deno_event_loop_delay_seconds") >= 0);
  // The failed and the successful logins were timed. The npm parser flattens labelled
  // histograms into one series, so their samples are read with a strict sample parser.
  assert.equal(m.get("amqtt_plugin_decision_duration_seconds")!.type, "HISTOGRAM");
  const auth = histogram(await scrapeText(b.url), "amqtt_plugin_decision_duration_seconds", {
    decision: "authenticate",
  });
  assert.equal(auth.count, 3);
  assert.equal(auth.buckets.at(-1)![0], Infinity);
  assert.equal(auth.buckets.at(-1)![1], 3, "+Inf bucket = count");
  const bounds = auth.buckets.map(([le]) => le);
  const counts = auth.buckets.map(([, n]) => n);
  assert.deepEqual(bounds, [...bounds].sort((x, y) => x - y), "buckets ascend");
  assert.deepEqual(counts, [...counts].sort((x, y) => x - y), "bucket counts are cumulative");
  assert.ok(auth.sum > 0);
  assert.ok(b.log.has('Refused client "intruder" from 127.0.0.1:'));
  assert.ok(!b.log.lines.some((l) => l.message.includes("Xyzzy77")), "no password in the log");
});

Deno.test("http /metrics: refusals past max_connections are counted per listener", async () => {
  await using b = await startAdminBroker({
    config: {
      listeners: {
        default: { bind: "127.0.0.1:0", max_connections: 1 },
        admin: { type: "http", bind: "127.0.0.1:0", admins: ["alice"] },
      },
    },
  });
  await using first = await TestClient.connect(b.mqttPort, { clientId: "first" });
  await using second = await TestClient.open(b.mqttPort);
  await waitFor(() => second.socketEnded, 2000, "the second connection to be closed");
  const m = await scrape(b.url);
  assert.equal(
    value(m, "amqtt_connections_refused_total", { listener: "default", reason: "max_connections" }),
    1,
  );
  assert.ok(!first.socketEnded);
});

Deno.test("http /healthz answers without credentials; /readyz needs them", async () => {
  await using b = await startAdminBroker();
  const health = await request(`${b.url}/healthz`);
  assert.equal(health.status, 200);
  assert.equal(health.text, "ok\n");
  assert.equal((await request(`${b.url}/readyz`)).status, 401);
  const ready = await asAlice(`${b.url}/readyz`);
  assert.equal(ready.status, 200);
  assert.deepEqual(ready.json, { ready: true });
});

Deno.test("http /readyz: 503 once the broker is shutting down, /healthz still 200", async () => {
  const hold = Promise.withResolvers<void>();
  const entered = Promise.withResolvers<void>();
  const holder: BrokerPlugin = {
    name: "hold_shutdown",
    async onBrokerPreShutdown() {
      entered.resolve();
      await hold.promise;
    },
  };
  await using b = await startAdminBroker({ brokerOptions: { plugins: [holder] } });
  assert.equal((await asAlice(`${b.url}/readyz`)).status, 200);
  const stopping = b.broker.shutdown();
  await entered.promise;
  const during = await asAlice(`${b.url}/readyz`);
  assert.equal(during.status, 503);
  assert.deepEqual(during.json, { ready: false, reasons: ["shutting down"] });
  assert.equal((await request(`${b.url}/healthz`)).status, 200);
  hold.resolve();
  await stopping;
  await assert.rejects(fetch(`${b.url}/healthz`), "nothing listens after shutdown");
});

Deno.test("http /metrics needs an administrator: 401 without, 403 for a non-admin", async () => {
  await using b = await startAdminBroker();
  const none = await request(`${b.url}/metrics`);
  assert.equal(none.status, 401);
  assert.match(none.headers.get("www-authenticate") ?? "", /^Basic realm="amqtt"/);
  const bob = await request(`${b.url}/metrics`, {
    headers: { authorization: `Basic ${btoa(`bob:${PASSWORDS.bob}`)}` },
  });
  assert.equal(bob.status, 403);
  assert.equal(bob.json.error, '"bob" is not an administrator');
  const wrong = await request(`${b.url}/metrics`, {
    headers: { authorization: `Basic ${btoa("alice:nope")}` },
  });
  assert.equal(wrong.status, 401);
  assert.ok(b.log.has('Refused the admin login of "alice" from 127.0.0.1:'));
  assert.ok(!b.log.lines.some((l) => l.message.includes("nope")), "no password in the log");
});

Deno.test("http /metrics: shared subscription groups are counted once per group and filter", async () => {
  await using b = await startAdminBroker();
  await using one = await TestClient.connect(b.mqttPort, { clientId: "one" });
  await using two = await TestClient.connect(b.mqttPort, { clientId: "two" });
  assert.deepEqual((await one.subscribe({ "$share/g/x": 0, "$share/h/x": 0 })).reasonCodes, [0, 0]);
  assert.deepEqual((await two.subscribe({ "$share/g/x": 0 })).reasonCodes, [0]);
  const m = await scrape(b.url);
  assert.equal(value(m, "amqtt_shared_subscription_groups"), 2);
  assert.equal(value(m, "amqtt_subscriptions"), 3);
});

Deno.test("http /metrics: whether the store can be written, and its failed commits", async () => {
  await using dir = await tempDir("amqtt-metrics-");
  await using b = await startAdminBroker({
    brokerOptions: { store: SqliteStore.open(`${dir.path}/state.db`, { maxBytes: 256 * 1024 }) },
  });
  let families = parse((await asAlice(`${b.url}/metrics`)).text);
  assert.equal(value(families, "amqtt_store_writable"), 1);
  assert.equal(value(families, "amqtt_store_write_failures_total"), 0);
  // A persistent session's queue fills the file until a commit fails.
  const sub = await TestClient.connect(b.mqttPort, { clientId: "sub", clean: false });
  await sub.subscribe({ "t/#": 1 });
  await sub.disconnect();
  await using pub = await TestClient.connect(b.mqttPort, { clientId: "pub" });
  for (let i = 1; i <= 100 && !pub.socketEnded; i++) {
    await pub.send(publishPacket("t/a", new Uint8Array(16 * 1024), { qos: 1, packetId: i }));
    await pub.poll(10_000);
  }
  assert.ok(pub.socketEnded, "the publisher was closed when its message could not be stored");
  families = parse((await asAlice(`${b.url}/metrics`)).text);
  assert.ok(value(families, "amqtt_store_write_failures_total") >= 1);
});
