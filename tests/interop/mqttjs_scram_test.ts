/**
 * Interop: MQTT.js (npm:mqtt, `protocolVersion: 5`) logs in by SCRAM-SHA-256 through its AUTH
 * support (`authenticationMethod` in CONNECT, the `handleAuth` hook) to a broker configured from
 * YAML with the `auth_scram` plugin and a password file written by `amqtt passwd`. The client's
 * SCRAM (RFC 5802) is written here with node:crypto, apart from the broker's code.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import mqtt from "mqtt";
import type { IConnackPacket, MqttClient } from "mqtt";
import { Broker } from "../../broker.ts";
import { runPasswd } from "../../cli/passwd.ts";
import { loadBrokerConfigFile } from "../../src/config/mod.ts";
import { MemoryLogger } from "../_helpers/broker.ts";
import { interopTest } from "./_peers.ts";

const test = (name: string, fn: () => Promise<void>) => interopTest(name, fn, { settleMs: 20 });

/** The client half of SCRAM-SHA-256 for MQTT.js: CONNECT data, the AUTH answer, the check. */
function scram(user: string, password: string) {
  const clientFirstBare = `n=${user},r=${randomBytes(18).toString("base64")}`;
  let expected = "";
  return {
    first: Buffer.from(`n,,${clientFirstBare}`),
    answer(serverFirst: string): Buffer {
      const attrs = new Map(serverFirst.split(",").map((a) => [a[0], a.slice(2)]));
      const salted = pbkdf2Sync(
        password,
        Buffer.from(attrs.get("s")!, "base64"),
        Number(attrs.get("i")),
        32,
        "sha256",
      );
      const clientKey = createHmac("sha256", salted).update("Client Key").digest();
      const storedKey = createHash("sha256").update(clientKey).digest();
      const withoutProof = `c=biws,r=${attrs.get("r")}`;
      const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
      const signature = createHmac("sha256", storedKey).update(authMessage).digest();
      const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i]!));
      const serverKey = createHmac("sha256", salted).update("Server Key").digest();
      expected = `v=${createHmac("sha256", serverKey).update(authMessage).digest("base64")}`;
      return Buffer.from(`${withoutProof},p=${proof.toString("base64")}`);
    },
    get expected() {
      return expected;
    },
  };
}

/** Connects MQTT.js with SCRAM; resolves with the CONNACK or rejects with the error. */
async function connect(
  url: string,
  user: string,
  password: string,
): Promise<{ client: MqttClient; connack: IConnackPacket; expected: string }> {
  const s = scram(user, password);
  const client = mqtt.connect(url, {
    protocolVersion: 5,
    clientId: `js-${user}`,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    username: user,
    properties: { authenticationMethod: "SCRAM-SHA-256", authenticationData: s.first },
  });
  client.handleAuth = (packet, callback) => {
    const data = packet.properties?.authenticationData?.toString() ?? "";
    callback(undefined, {
      cmd: "auth",
      reasonCode: 0x18,
      properties: { authenticationMethod: "SCRAM-SHA-256", authenticationData: s.answer(data) },
    });
  };
  try {
    const connack = await new Promise<IConnackPacket>((resolve, reject) => {
      client.once("connect", resolve);
      client.once("error", reject);
    });
    return { client, connack, expected: s.expected };
  } catch (error) {
    await client.endAsync(true);
    throw error;
  }
}

test("interop MQTT.js 5.0: SCRAM-SHA-256 through MQTT.js's AUTH support against auth_scram from YAML; a wrong password gets CONNACK 0x86", async () => {
  const dir = await Deno.makeTempDir();
  const log = new MemoryLogger();
  let broker: Broker | undefined;
  try {
    assert.equal(
      await runPasswd(["-c", "-H", "scram-sha-256", "-b", `${dir}/passwd`, "bob", "hunter2"]),
      0,
    );
    await Deno.writeTextFile(
      `${dir}/broker.yaml`,
      `listeners:\n  default:\n    bind: 127.0.0.1:0\nplugins:\n  auth_scram:\n    password_file: ${dir}/passwd\n`,
    );
    broker = new Broker(await loadBrokerConfigFile(`${dir}/broker.yaml`), { logger: log });
    await broker.start();
    const url = `mqtt://127.0.0.1:${broker.listeners[0]!.port}`;

    const { client, connack, expected } = await connect(url, "bob", "hunter2");
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.properties?.authenticationMethod, "SCRAM-SHA-256");
    // The server-final message proves the broker holds bob's keys.
    assert.equal(connack.properties?.authenticationData?.toString(), expected);
    const got = new Promise<string>((resolve) =>
      client.once("message", (_t, p) => resolve(p.toString()))
    );
    await client.subscribeAsync("js/scram", { qos: 1 });
    await client.publishAsync("js/scram", "by scram", { qos: 1 });
    assert.equal(await got, "by scram");
    await client.endAsync();

    const refused = await connect(url, "bob", "hunter3").then(() => undefined, (e) => e);
    assert.ok(refused instanceof Error, `expected a refusal, got ${refused}`);
    assert.equal((refused as { code?: number }).code, 0x86);
  } finally {
    await broker?.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
