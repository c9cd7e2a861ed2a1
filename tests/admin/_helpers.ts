/**
 * Fixtures for the http listener tests: a broker with an MQTT listener and an http listener on
 * 127.0.0.1 port 0, a password file with an administrator (alice) and a plain user (bob).
 *
 * @module
 */

import { Broker, type BrokerOptions } from "../../broker.ts";
import { hashPassword } from "../../src/plugins/password_hash.ts";
import { MemoryLogger } from "../_helpers/broker.ts";

/** Passwords of the users in the fixture's password file. */
export const PASSWORDS = { alice: "alice-pw", bob: "bob-pw" } as const;

/** A started broker with an http listener. */
export interface AdminBroker extends AsyncDisposable {
  broker: Broker;
  log: MemoryLogger;
  /** The MQTT listener's port. */
  mqttPort: number;
  /** `http://127.0.0.1:PORT` of the http listener. */
  url: string;
  /** The password file. */
  passwordFile: string;
}

/** Options of {@linkcode startAdminBroker}. */
export interface AdminBrokerOptions {
  /** The http listener's `admins`; default `["alice"]`. */
  admins?: string[];
  /** Extra top-level configuration. */
  config?: Record<string, unknown>;
  /** Extra keys of the http listener. */
  http?: Record<string, unknown>;
  /** Broker options (plugin objects); the logger is the fixture's. */
  brokerOptions?: BrokerOptions;
}

/**
 * Starts the fixture broker. Anonymous MQTT clients are allowed; users of the password file log in
 * with their passwords.
 *
 * @param options admins and extra configuration
 * @returns the broker and its addresses
 */
export async function startAdminBroker(options: AdminBrokerOptions = {}): Promise<AdminBroker> {
  const passwordFile = await Deno.makeTempFile({ suffix: ".passwd" });
  const lines = await Promise.all(
    Object.entries(PASSWORDS).map(async ([user, pw]) =>
      `${user}:${await hashPassword(pw, { rounds: 1000 })}`
    ),
  );
  await Deno.writeTextFile(passwordFile, lines.join("\n") + "\n");
  const log = new MemoryLogger();
  const broker = new Broker({
    listeners: {
      default: { bind: "127.0.0.1:0" },
      admin: {
        type: "http",
        bind: "127.0.0.1:0",
        ...(options.admins === undefined || options.admins.length > 0
          ? { admins: options.admins ?? ["alice"] }
          : {}),
        ...options.http,
      },
    },
    auth: {
      allow_anonymous: true,
      password_file: passwordFile,
      plugins: ["auth_anonymous", "auth_file"],
    },
    ...options.config,
  }, { ...options.brokerOptions, logger: log });
  try {
    await broker.start();
  } catch (error) {
    await Deno.remove(passwordFile);
    throw error;
  }
  const mqtt = broker.listeners.find((l) => l.name === "default")!;
  const http = broker.listeners.find((l) => l.name === "admin")!;
  return {
    broker,
    log,
    mqttPort: mqtt.port,
    url: `http://127.0.0.1:${http.port}`,
    passwordFile,
    async [Symbol.asyncDispose]() {
      await broker.shutdown();
      await Deno.remove(passwordFile);
    },
  };
}

/**
 * The `Authorization` header of HTTP Basic.
 *
 * @param user user name
 * @param password password
 * @returns the header value
 */
export function basic(user: string, password: string): string {
  return `Basic ${btoa(`${user}:${password}`)}`;
}

/** A response read whole. */
export interface Got {
  status: number;
  headers: Headers;
  text: string;
  // deno-lint-ignore no-explicit-any
  json: any;
}

/**
 * Sends a request and reads the whole response.
 *
 * @param url the URL
 * @param init the request
 * @returns status, headers, body text and (when JSON) the parsed body
 */
export async function request(url: string, init: RequestInit = {}): Promise<Got> {
  const response = await fetch(url, init);
  const text = await response.text();
  let json: unknown;
  if ((response.headers.get("content-type") ?? "").startsWith("application/json")) {
    json = JSON.parse(text);
  }
  return { status: response.status, headers: response.headers, text, json };
}

/**
 * Sends a request as alice with Basic authentication.
 *
 * @param url the URL
 * @param init the request; a JSON `body` object gets its content type
 * @returns the response read whole
 */
export function asAlice(url: string, init: RequestInit & { json?: unknown } = {}): Promise<Got> {
  const headers = new Headers(init.headers);
  headers.set("authorization", basic("alice", PASSWORDS.alice));
  let body = init.body;
  if (init.json !== undefined) {
    headers.set("content-type", "application/json");
    body = JSON.stringify(init.json);
  }
  return request(url, { ...init, headers, body });
}
