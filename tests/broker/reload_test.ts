// Broker.reload (SIGHUP in the CLI): ACL rules from a new configuration, TLS certificates re-read
// from their files, and failures that keep what was in effect.
import assert from "node:assert/strict";
import tls from "node:tls";
import { certFiles, testCerts } from "../_helpers/certs.ts";
import { startBroker } from "../_helpers/broker.ts";
import { TestClient } from "../_helpers/test_client.ts";
import { tempDir } from "../_helpers/temp_dir.ts";

const acl = (topics: string[]) => ({
  auth: { allow_anonymous: true, plugins: ["auth_anonymous"] },
  topic_check: { enabled: true, plugins: ["topic_acl"], acl: { anonymous: topics } },
});

Deno.test("reload applies new ACL rules to new SUBSCRIBEs", async () => {
  await using b = await startBroker(acl(["a/#"]));
  await using c = await TestClient.connect(b.port, { clientId: "c" });
  assert.deepEqual((await c.subscribe({ "a/1": 0, "b/1": 0 })).reasonCodes, [0, 0x80]);
  assert.ok(b.log.lines.some((l) => l.level === "warning" && l.message.includes("b/1")));
  await b.broker.reload({ listeners: { default: { bind: "127.0.0.1:0" } }, ...acl(["b/#"]) });
  assert.deepEqual((await c.subscribe({ "a/2": 0, "b/2": 0 }, 2)).reasonCodes, [0x80, 0]);
  assert.ok(b.log.has("ACL rules reloaded"));
});

Deno.test("reload with a bad ACL keeps the rules in effect", async () => {
  await using b = await startBroker(acl(["a/#"]));
  await b.broker.reload({ listeners: { default: { bind: "127.0.0.1:0" } }, ...acl(["a/#/b"]) });
  assert.ok(b.log.has("keeping the previous ACL rules"));
  await assert.rejects(
    b.broker.reload({ listeners: { default: { bind: "127.0.0.1:0" } }, max_inflight: -1 }),
    /max_inflight/,
    "an invalid configuration is refused whole",
  );
  await using c = await TestClient.connect(b.port, { clientId: "c" });
  assert.deepEqual((await c.subscribe({ "a/1": 0, "b/1": 0 })).reasonCodes, [0, 0x80]);
});

async function peerFingerprint(port: number, ca: string): Promise<string> {
  const socket = tls.connect({ host: "127.0.0.1", port, ca: [ca], servername: "localhost" });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("secureConnect", () => resolve());
      socket.once("error", reject);
    });
    return socket.getPeerCertificate().fingerprint256;
  } finally {
    socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Writes the server certificate and key of `files` into `dir`; returns their paths. */
async function writeServerCert(
  dir: string,
  files: { serverCert: string; serverKey: string },
): Promise<{ certfile: string; keyfile: string }> {
  const certfile = `${dir}/server.pem`;
  const keyfile = `${dir}/server.key`;
  await Deno.writeTextFile(certfile, files.serverCert);
  await Deno.writeTextFile(keyfile, files.serverKey);
  return { certfile, keyfile };
}

Deno.test("reload re-reads a TLS listener's certificate; a broken one is refused", async () => {
  await using files = await certFiles();
  await using dir = await tempDir();
  const { certfile, keyfile } = await writeServerCert(dir.path, files);
  await using b = await startBroker({
    listeners: { default: { bind: "127.0.0.1:0", ssl: true, certfile, keyfile } },
  });
  const first = await peerFingerprint(b.port, files.ca);
  const renewed = await testCerts({ serverNames: "DNS:localhost,DNS:renewed,IP:127.0.0.1" });
  assert.notEqual(renewed.serverCert, files.serverCert);
  await Deno.writeTextFile(certfile, renewed.serverCert);
  await Deno.writeTextFile(keyfile, renewed.serverKey);
  await b.broker.reload();
  const second = await peerFingerprint(b.port, files.ca);
  assert.notEqual(second, first, "new handshakes get the new certificate");
  assert.ok(b.log.has('Listener "default": TLS certificate reloaded'));

  await Deno.writeTextFile(keyfile, files.clientKey); // not the certificate's key
  await b.broker.reload();
  assert.ok(b.log.has("keeps its previous certificate"));
  assert.equal(await peerFingerprint(b.port, files.ca), second);
});

Deno.test("reload re-reads an https listener's certificate; /healthz still answers", async () => {
  await using files = await certFiles();
  await using dir = await tempDir();
  const { certfile, keyfile } = await writeServerCert(dir.path, files);
  await using b = await startBroker({
    listeners: {
      default: { bind: "127.0.0.1:0" },
      admin: { type: "http", bind: "127.0.0.1:0", ssl: true, certfile, keyfile },
    },
  });
  const https = b.broker.listeners.find((l) => l.name === "admin")!;
  assert.equal(https.transport, "https");
  const first = await peerFingerprint(https.port, files.ca);
  const renewed = await testCerts({ serverNames: "DNS:localhost,DNS:renewed,IP:127.0.0.1" });
  await Deno.writeTextFile(certfile, renewed.serverCert);
  await Deno.writeTextFile(keyfile, renewed.serverKey);
  await b.broker.reload();
  assert.notEqual(await peerFingerprint(https.port, files.ca), first);
  assert.ok(b.log.has('Listener "admin": TLS certificate reloaded'));
  // Served over the new certificate: the web's fetch trusting the test CA.
  using client = Deno.createHttpClient({ caCerts: [files.ca] });
  const response = await fetch(`https://localhost:${https.port}/healthz`, { client });
  assert.equal(response.status, 200);
  assert.equal((await response.text()).trim(), "ok");
});
