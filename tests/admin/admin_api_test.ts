// The admin JSON API: inspection, kick, retained delete and publish seen by real clients; login
// sessions, CSRF protection, and what happens without configuration.
import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/constants.ts";
import { userRetained, waitFor } from "../_helpers/broker.ts";
import { publishPacket, TestClient, text } from "../_helpers/test_client.ts";
import { asAlice, PASSWORDS, request, startAdminBroker } from "./_helpers.ts";

const enc = new TextEncoder();

Deno.test("admin API lists clients, sessions and subscriptions, with search and lookup", async () => {
  await using b = await startAdminBroker();
  await using kitchen = await TestClient.connect(b.mqttPort, { clientId: "sensor/kitchen" });
  await kitchen.subscribe({ "home/+/temp": 1 });
  await using porch = await TestClient.connect(b.mqttPort, { clientId: "porch", clean: false });
  await porch.subscribe({ "home/#": 0 });
  await porch.disconnect();
  await waitFor(() => b.broker.clients().some((c) => c.clientId === "porch" && !c.connected));

  const clients = await asAlice(`${b.url}/api/clients`);
  assert.equal(clients.status, 200);
  assert.deepEqual(clients.json.items.map((c: { clientId: string }) => c.clientId), [
    "sensor/kitchen",
  ]);
  const sessions = await asAlice(`${b.url}/api/sessions`);
  assert.equal(sessions.json.total, 2);
  const search = await asAlice(`${b.url}/api/sessions?search=KITCH`);
  assert.deepEqual(search.json.items.map((c: { clientId: string }) => c.clientId), [
    "sensor/kitchen",
  ]);
  const one = await asAlice(`${b.url}/api/clients/${encodeURIComponent("sensor/kitchen")}`);
  assert.equal(one.status, 200);
  assert.deepEqual(one.json.subscriptions, [{ topic: "home/+/temp", qos: 1 }]);
  assert.equal((await asAlice(`${b.url}/api/clients/porch`)).status, 404, "offline: no client");
  assert.equal((await asAlice(`${b.url}/api/sessions/porch`)).json.connected, false);
  const subs = await asAlice(`${b.url}/api/subscriptions`);
  assert.deepEqual(
    subs.json.items.sort((x: { topic: string }, y: { topic: string }) =>
      x.topic.localeCompare(y.topic)
    ),
    [
      { clientId: "porch", topic: "home/#", qos: 0 },
      { clientId: "sensor/kitchen", topic: "home/+/temp", qos: 1 },
    ],
  );
  const limited = await asAlice(`${b.url}/api/sessions?limit=1`);
  assert.equal(limited.json.items.length, 1);
  assert.equal(limited.json.total, 2);
  assert.equal((await asAlice(`${b.url}/api/sessions?limit=-1`)).status, 400);
});

Deno.test("admin API kick: the client's connection is closed and its will published", async () => {
  await using b = await startAdminBroker();
  await using watcher = await TestClient.connect(b.mqttPort, { clientId: "watcher" });
  await watcher.subscribe({ "wills/#": 0 });
  await using victim = await TestClient.connect(b.mqttPort, {
    clientId: "victim",
    will: { topic: "wills/victim", payload: enc.encode("gone"), qos: 0, retain: false },
  });
  const kicked = await asAlice(`${b.url}/api/clients/victim/kick`, { method: "POST", json: {} });
  assert.equal(kicked.status, 200);
  assert.deepEqual(kicked.json, { kicked: "victim" });
  await waitFor(() => victim.socketEnded, 2000, "the kicked client's connection to close");
  const will = await watcher.expect(PacketType.PUBLISH);
  assert.equal(text(will), "gone");
  assert.ok(!watcher.socketEnded);
  assert.equal(
    (await asAlice(`${b.url}/api/clients/victim/kick`, { method: "POST", json: {} })).status,
    404,
  );
  assert.ok(b.log.has('Administrator "alice" disconnected client "victim"'));
});

Deno.test("admin API retained: list, delete (a new subscriber gets nothing), publish", async () => {
  await using b = await startAdminBroker();
  await using pub = await TestClient.connect(b.mqttPort, { clientId: "pub" });
  await pub.send(publishPacket("a/b", enc.encode("hello"), { retain: true }));
  await pub.send(publishPacket("a/c", new Uint8Array([0xff, 0x00]), { retain: true }));
  await waitFor(() => userRetained(b.broker).length === 2);
  const list = await asAlice(`${b.url}/api/retained?prefix=a/`);
  assert.deepEqual(list.json.items, [
    { topic: "a/b", qos: 0, bytes: 5, payload: "hello", truncated: false },
    { topic: "a/c", qos: 0, bytes: 2, payloadBase64: "/wA=", truncated: false },
  ]);
  const deleted = await asAlice(`${b.url}/api/retained?topic=a/b`, { method: "DELETE" });
  assert.equal(deleted.status, 200);
  assert.equal(
    (await asAlice(`${b.url}/api/retained?topic=a/b`, { method: "DELETE" })).status,
    404,
  );
  await using late = await TestClient.connect(b.mqttPort, { clientId: "late" });
  await late.subscribe({ "a/#": 0 });
  const only = await late.expect(PacketType.PUBLISH);
  assert.equal(only.topic, "a/c", "the deleted topic's message is not delivered");

  const published = await asAlice(`${b.url}/api/publish`, {
    method: "POST",
    json: { topic: "a/new", payload: "from the API", qos: 1, retain: true },
  });
  assert.equal(published.status, 200);
  const got = await late.expect(PacketType.PUBLISH);
  assert.equal(got.topic, "a/new");
  assert.equal(text(got), "from the API");
  assert.equal(got.qos, 0, "delivered at the subscription's QoS");
  await late.send({ type: PacketType.DISCONNECT });
  assert.ok(userRetained(b.broker).some((m) => m.topic === "a/new"));
  const bad = await asAlice(`${b.url}/api/publish`, {
    method: "POST",
    json: { topic: "a/+", payload: "x" },
  });
  assert.equal(bad.status, 400);
  assert.match(bad.json.error, /wildcard|\+/);
  const badQos = await asAlice(`${b.url}/api/publish`, {
    method: "POST",
    json: { topic: "a", payload: "x", qos: 3 },
  });
  assert.equal(badQos.status, 400);
});

Deno.test("admin API login: cookie session, CSRF token required for actions, logout", async () => {
  await using b = await startAdminBroker();
  await using victim = await TestClient.connect(b.mqttPort, { clientId: "victim" });
  const wrong = await request(`${b.url}/api/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: "alice", password: "nope" }),
  });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.json.error, "Wrong user name or password");
  const login = await request(`${b.url}/api/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: "alice", password: PASSWORDS.alice }),
  });
  assert.equal(login.status, 200);
  const cookie = login.headers.get("set-cookie")!;
  assert.match(cookie, /^amqtt_session=[\w-]{43}; Path=\/; HttpOnly; SameSite=Strict$/);
  const session = cookie.split(";")[0]!;
  const csrf = login.json.csrfToken as string;

  const me = await request(`${b.url}/api/session`, { headers: { cookie: session } });
  assert.deepEqual(me.json, { user: "alice", csrfToken: csrf });
  const kick = (headers: Record<string, string>) =>
    request(`${b.url}/api/clients/victim/kick`, {
      method: "POST",
      headers: { cookie: session, "content-type": "application/json", ...headers },
      body: "{}",
    });
  assert.equal((await kick({})).status, 403, "no CSRF token");
  assert.equal((await kick({ "x-csrf-token": "x".repeat(43) })).status, 403, "wrong token");
  assert.equal(
    (await kick({ "x-csrf-token": csrf, origin: "http://evil.example" })).status,
    403,
    "another origin",
  );
  assert.ok(!victim.socketEnded, "no refused action closed anything");
  assert.equal((await kick({ "x-csrf-token": csrf })).status, 200);
  await waitFor(() => victim.socketEnded);

  const logout = await request(`${b.url}/api/logout`, {
    method: "POST",
    headers: { cookie: session, "content-type": "application/json", "x-csrf-token": csrf },
    body: "{}",
  });
  assert.equal(logout.status, 200);
  const after = await request(`${b.url}/api/session`, {
    headers: { cookie: session, "x-requested-with": "fetch" },
  });
  assert.equal(after.status, 401);
  assert.equal(after.headers.get("www-authenticate"), null, "scripts get no Basic prompt");
});

Deno.test("admin API refuses form posts and cross-site requests even with Basic", async () => {
  await using b = await startAdminBroker();
  await using victim = await TestClient.connect(b.mqttPort, { clientId: "victim" });
  const form = await asAlice(`${b.url}/api/clients/victim/kick`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: "a=b",
  });
  assert.equal(form.status, 415);
  const crossSite = await asAlice(`${b.url}/api/retained?topic=x`, {
    method: "DELETE",
    headers: { "sec-fetch-site": "cross-site" },
  });
  assert.equal(crossSite.status, 403);
  assert.ok(!victim.socketEnded);
});

Deno.test("http listener without admins serves /healthz only and says why", async () => {
  await using b = await startAdminBroker({ admins: [] });
  assert.equal((await request(`${b.url}/healthz`)).status, 200);
  const metrics = await asAlice(`${b.url}/metrics`);
  assert.equal(metrics.status, 403);
  assert.match(metrics.json.error, /No administrators are configured/);
  const login = await request(`${b.url}/api/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: "alice", password: PASSWORDS.alice }),
  });
  assert.equal(login.status, 403);
  assert.ok(b.log.has("No administrators are configured"));
});

Deno.test("admin logins: too many failures from one address get 429", async () => {
  await using b = await startAdminBroker();
  const attempt = () =>
    request(`${b.url}/metrics`, { headers: { authorization: `Basic ${btoa("alice:bad")}` } });
  for (let i = 0; i < 10; i++) assert.equal((await attempt()).status, 401);
  assert.equal((await attempt()).status, 429);
  assert.equal((await asAlice(`${b.url}/metrics`)).status, 429, "even the right password waits");
});

Deno.test("admin password file is re-read on reload", async () => {
  await using b = await startAdminBroker({ admins: ["alice", "carol"] });
  const { hashPassword } = await import("../../src/plugins/password_hash.ts");
  await Deno.writeTextFile(
    b.passwordFile,
    `carol:${await hashPassword("carol-pw", { rounds: 1000 })}\n`,
    { append: true },
  );
  const carol = () =>
    request(`${b.url}/metrics`, { headers: { authorization: `Basic ${btoa("carol:carol-pw")}` } });
  assert.equal((await carol()).status, 401);
  await b.broker.reload();
  assert.equal((await carol()).status, 200);
});

Deno.test("http listener serves the dashboard's files with a strict CSP, and nothing else", async () => {
  await using b = await startAdminBroker();
  const root = await fetch(`${b.url}/`, { redirect: "manual" });
  await root.body?.cancel();
  assert.equal(root.status, 302);
  assert.equal(root.headers.get("location"), "/dashboard/");
  const page = await request(`${b.url}/dashboard/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type")!, /^text\/html/);
  assert.match(page.text, /<script type="module" src="app.js"><\/script>/);
  assert.match(page.headers.get("content-security-policy")!, /default-src 'self'/);
  assert.equal(page.headers.get("x-frame-options"), "DENY");
  const js = await request(`${b.url}/dashboard/app.js`);
  assert.match(js.headers.get("content-type")!, /^text\/javascript/);
  for (const path of ["/dashboard/nope.js", "/dashboard/..%2Fdeno.json", "/dashboard/style.css/"]) {
    assert.equal((await request(`${b.url}${path}`)).status, 404, path);
  }
  assert.equal((await request(`${b.url}/nowhere`)).status, 401, "unknown paths need a login too");
  assert.equal((await asAlice(`${b.url}/nowhere`)).status, 404);
});

Deno.test("http listener with ssl serves https and marks the session cookie Secure", async () => {
  const { certFiles } = await import("../_helpers/certs.ts");
  await using certs = await certFiles();
  await using b = await startAdminBroker({
    http: { ssl: true, certfile: certs.serverCertFile, keyfile: certs.serverKeyFile },
  });
  const url = b.url.replace("http:", "https:");
  using client = Deno.createHttpClient({ caCerts: [certs.ca] });
  const health = await fetch(`${url}/healthz`, { client });
  assert.equal(await health.text(), "ok\n");
  const login = await fetch(`${url}/api/login`, {
    client,
    method: "POST",
    headers: { "content-type": "application/json", origin: url },
    body: JSON.stringify({ username: "alice", password: PASSWORDS.alice }),
  });
  const body = await login.text();
  assert.equal(login.status, 200, body);
  assert.match(login.headers.get("set-cookie")!, /; Secure$/);
  assert.equal(b.broker.listeners.find((l) => l.name === "admin")!.transport, "https");
});
