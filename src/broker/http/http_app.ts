/**
 * The http listener's request handler: health and readiness probes, `/metrics`, the admin JSON
 * API and the dashboard's files. Everything but `/healthz` and the dashboard's static files needs
 * an administrator (see `admin_auth.ts`); actions (POST, DELETE) also need a same-origin request
 * with a JSON body, and from a login session the session's CSRF token.
 *
 * @module
 */

import type { QoS } from "../../packet/constants.ts";
import type { SessionSummary } from "../broker.ts";
import type { BrokerStats } from "../core.ts";
import type { Logger } from "../policy.ts";
import { AdminAuth, type AdminIdentity, SESSION_COOKIE } from "./admin_auth.ts";
import type { DecisionHistograms } from "./decision_timer.ts";
import { EXPOSITION_CONTENT_TYPE } from "./_exposition.ts";
import { type MetricsInput, renderMetrics } from "./metrics.ts";
import { EventLoopMonitor, readProcessFigures } from "./process_figures.ts";
import { serveDashboardFile } from "./static_files.ts";

/** What the admin API works on: the broker's public embedding API. */
export interface AdminTarget {
  /** Whether the broker should get traffic (started, store writable, cluster connected). */
  readonly ready: boolean;
  /** Why it is not ready, one line each (empty when it is). */
  readonly notReady?: readonly string[];
  /** The broker's counters. */
  readonly stats: Readonly<BrokerStats>;
  /** When it started, ms since the epoch. */
  readonly startedAt: number;
  /** Every session, connected or offline. */
  clients(): SessionSummary[];
  /** Every subscription. */
  subscriptions(): { clientId: string; topic: string; qos: QoS }[];
  /** Every retained message. */
  retainedMessages(): { topic: string; payload: Uint8Array; qos: QoS }[];
  /** Publishes a message as the broker. */
  publish(
    topic: string,
    payload: Uint8Array | string,
    options?: { qos?: QoS; retain?: boolean },
  ): void;
  /** Closes a client's connection; false when it is not connected. */
  disconnect(clientId: string): boolean;
  /** Removes the retained message of a topic; false when there is none. */
  deleteRetained(topic: string): boolean;
}

/** Options of {@linkcode HttpApp}. */
export interface HttpAppOptions {
  /** The listener's name. */
  listener: string;
  /** Whether the listener serves TLS (the cookie gets `Secure`). */
  tls: boolean;
  /** The broker's version. */
  version: string;
  /** The broker. */
  target: AdminTarget;
  /** The broker's figures for `/metrics`, gathered at scrape time. */
  figures: () => Omit<MetricsInput, "process" | "eventLoopDelay" | "decisions" | "version">;
  /**
   * Why the broker, a cluster node, waits to join (nodes of another cluster protocol version are
   * live), or `undefined`: `/healthz` says it, the process being alive all the same.
   */
  waiting?: () => string | undefined;
  /** Plugin decision times. */
  decisions: DecisionHistograms;
  /** Administrators and their password file. */
  admins: readonly string[];
  passwordFile: string | undefined;
  /** Where actions, refusals and failures are logged. */
  logger: Logger;
}

/** A JSON body larger than this is refused (413). */
const MAX_BODY_BYTES = 1024 * 1024;
/** Lists answer at most this many entries unless `limit` asks for fewer. */
const DEFAULT_LIMIT = 1000;
const MAX_LIMIT = 100_000;
/** Payloads in listings are cut here. */
const PREVIEW_BYTES = 4096;

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "HttpError";
  }
}

/** The handler behind an http listener. */
export class HttpApp {
  readonly #o: HttpAppOptions;
  readonly #auth: AdminAuth;
  readonly #loop = new EventLoopMonitor();

  /** @param options the broker, its figures and the administrators */
  constructor(options: HttpAppOptions) {
    this.#o = options;
    this.#auth = new AdminAuth({
      listener: options.listener,
      admins: options.admins,
      passwordFile: options.passwordFile,
      logger: options.logger,
    });
  }

  /** Reads the password file and starts the event-loop monitor. */
  async start(): Promise<void> {
    const problem = this.#auth.unconfigured;
    if (problem !== undefined) {
      this.#o.logger.warning(`${problem}; only /healthz is served until then`);
    }
    await this.#auth.load();
    this.#loop.start();
  }

  /** Re-reads the password file (SIGHUP). */
  reload(): Promise<void> {
    return this.#auth.reload();
  }

  /** Stops the monitor and the password worker. */
  close(): void {
    this.#loop.stop();
    this.#auth.close();
  }

  /**
   * Answers one request.
   *
   * @param request the request
   * @param remoteAddress `host:port` of the peer
   * @returns the response
   */
  async handle(request: Request, remoteAddress: string): Promise<Response> {
    try {
      return withSecurityHeaders(await this.#route(request, remoteAddress));
    } catch (error) {
      if (error instanceof HttpError) {
        return withSecurityHeaders(json({ error: error.message }, error.status));
      }
      this.#o.logger.error(`HTTP request ${request.method} ${request.url} failed: ${text(error)}`);
      return withSecurityHeaders(json({ error: "Internal error" }, 500));
    }
  }

  async #route(request: Request, remoteAddress: string): Promise<Response> {
    const url = new URL(request.url);
    const path = url.pathname;
    const method = request.method;
    if (path === "/healthz") {
      expectMethod(method, "GET", "HEAD");
      // Alive (200) while it waits to join a cluster, which may last a whole upgrade: a liveness
      // probe restarting it would make the wait a restart loop. Not ready (`/readyz`) meanwhile.
      const waiting = this.#o.waiting?.();
      return new Response(waiting === undefined ? "ok\n" : `ok, not ready: ${waiting}\n`, {
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
    if (path === "/" || path === "/dashboard") {
      return new Response(null, { status: 302, headers: { location: "/dashboard/" } });
    }
    if (path.startsWith("/dashboard/")) {
      expectMethod(method, "GET", "HEAD");
      const file = await serveDashboardFile(path.slice("/dashboard/".length) || "index.html");
      if (file === undefined) throw new HttpError(404, "Not found");
      return file;
    }
    if (path === "/api/login") {
      expectMethod(method, "POST");
      this.#checkOrigin(request);
      return await this.#login(request, remoteAddress);
    }
    const auth = await this.#auth.authenticate(request, remoteAddress);
    if (!auth.ok) {
      const headers: Record<string, string> = {};
      // A browser's own login prompt would keep the credentials and send them on its own (and so
      // on cross-site requests): scripts that say they are scripts get a plain 401.
      if (auth.status === 401 && request.headers.get("x-requested-with") === null) {
        headers["www-authenticate"] = 'Basic realm="amqtt", charset="UTF-8"';
      }
      return json({ error: auth.error }, auth.status, headers);
    }
    const who = auth.identity;
    if (method !== "GET" && method !== "HEAD") this.#checkAction(request, who);
    if (path === "/readyz") return this.#readyz();
    if (path === "/metrics") {
      expectMethod(method, "GET", "HEAD");
      return new Response(this.#metrics(), {
        headers: { "content-type": EXPOSITION_CONTENT_TYPE, "cache-control": "no-store" },
      });
    }
    if (path.startsWith("/api/")) {
      return await this.#api(
        request,
        url,
        path.slice(5).split("/").map(decode),
        who,
        remoteAddress,
      );
    }
    throw new HttpError(404, "Not found");
  }

  #readyz(): Response {
    const target = this.#o.target;
    if (target.ready) return json({ ready: true }, 200);
    return json({ ready: false, reasons: target.notReady ?? [] }, 503);
  }

  #metrics(): string {
    return renderMetrics({
      ...this.#o.figures(),
      version: this.#o.version,
      decisions: this.#o.decisions,
      process: readProcessFigures(),
      eventLoopDelay: { last: this.#loop.last, max: this.#loop.takeMax() },
    });
  }

  async #login(request: Request, remoteAddress: string): Promise<Response> {
    const body = await readJson(request);
    const user = body.username;
    const password = body.password;
    if (typeof user !== "string" || typeof password !== "string" || user === "") {
      throw new HttpError(400, "Expected a JSON object with username and password");
    }
    const result = await this.#auth.check(user, password, remoteAddress);
    if (!result.ok) return json({ error: result.error }, result.status);
    const session = this.#auth.openSession(user);
    this.#o.logger.info(`Administrator "${user}" logged in from ${remoteAddress}`, {
      event: "admin_login",
      username: user,
      remoteAddress,
      listener: this.#o.listener,
    });
    const cookie = `${SESSION_COOKIE}=${session.token}; Path=/; HttpOnly; SameSite=Strict` +
      (this.#o.tls ? "; Secure" : "");
    return json({ user, csrfToken: session.csrfToken }, 200, { "set-cookie": cookie });
  }

  /** Unsafe methods: same origin, JSON body, and from a login session its CSRF token. */
  #checkAction(request: Request, who: AdminIdentity): void {
    this.#checkOrigin(request);
    if (who.session !== undefined) {
      const token = request.headers.get("x-csrf-token");
      if (token === null || !timingSafeEqual(token, who.session.csrfToken)) {
        throw new HttpError(403, "Missing or wrong X-CSRF-Token header");
      }
    }
  }

  #checkOrigin(request: Request): void {
    const origin = request.headers.get("origin");
    if (origin !== null) {
      // The request URL carries the Host header or, over HTTP/2, the :authority.
      const expected = new URL(request.url).origin;
      if (origin !== expected) throw new HttpError(403, `Cross-origin request from ${origin}`);
    }
    const site = request.headers.get("sec-fetch-site");
    if (site !== null && site !== "same-origin" && site !== "none") {
      throw new HttpError(403, `Cross-site request (${site})`);
    }
    if (request.method === "POST") {
      const type = request.headers.get("content-type") ?? "";
      if (!/^application\/json\s*(;|$)/i.test(type)) {
        // A form cannot send this type across sites without a preflight, which is never allowed.
        throw new HttpError(415, "Expected Content-Type: application/json");
      }
    }
  }

  async #api(
    request: Request,
    url: URL,
    parts: string[],
    who: AdminIdentity,
    remoteAddress: string,
  ): Promise<Response> {
    const method = request.method;
    const t = this.#o.target;
    const limit = readLimit(url);
    const log = (message: string, event: string, extra: Record<string, string> = {}) =>
      this.#o.logger.info(`Administrator "${who.user}" ${message}`, {
        event,
        username: who.user,
        remoteAddress,
        listener: this.#o.listener,
        ...extra,
      });
    const [head, id, action] = parts;
    switch (head) {
      case "session":
        if (method === "GET") {
          return json({ user: who.user, csrfToken: who.session?.csrfToken });
        }
        break;
      case "logout":
        if (method === "POST") {
          if (who.session !== undefined) this.#auth.closeSession(who.session);
          return json({ ok: true }, 200, {
            "set-cookie": `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`,
          });
        }
        break;
      case "overview":
        if (method === "GET" && id === undefined) return json(this.#overview());
        break;
      case "clients":
      case "sessions": {
        const onlyConnected = head === "clients";
        if (id === undefined && method === "GET") {
          const search = (url.searchParams.get("search") ?? "").toLowerCase();
          const list = t.clients().filter((c) =>
            (!onlyConnected || c.connected) &&
            (search === "" || c.clientId.toLowerCase().includes(search) ||
              (c.remoteAddress ?? "").includes(search))
          );
          return json({ total: list.length, items: list.slice(0, limit) });
        }
        if (id !== undefined && action === undefined && method === "GET") {
          const found = t.clients().find((c) => c.clientId === id);
          if (found === undefined || (onlyConnected && !found.connected)) {
            throw new HttpError(
              404,
              `No ${onlyConnected ? "connected client" : "session"} "${id}"`,
            );
          }
          return json(found);
        }
        if (id !== undefined && action === "kick" && method === "POST") {
          if (!t.disconnect(id)) throw new HttpError(404, `No connected client "${id}"`);
          log(`disconnected client "${id}"`, "admin_kick", { clientId: id });
          return json({ kicked: id });
        }
        break;
      }
      case "subscriptions":
        if (method === "GET" && id === undefined) {
          const list = t.subscriptions();
          return json({ total: list.length, items: list.slice(0, limit) });
        }
        break;
      case "retained":
        if (id !== undefined) break;
        if (method === "GET") {
          const prefix = url.searchParams.get("prefix") ?? "";
          const list = t.retainedMessages().filter((m) => m.topic.startsWith(prefix))
            .sort((a, b) => a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0);
          return json({ total: list.length, items: list.slice(0, limit).map(describeMessage) });
        }
        if (method === "DELETE") {
          const topic = url.searchParams.get("topic");
          if (topic === null) throw new HttpError(400, "Expected ?topic=");
          if (!t.deleteRetained(topic)) {
            throw new HttpError(404, `No retained message on "${topic}"`);
          }
          log(`deleted the retained message of "${topic}"`, "admin_retained_deleted", { topic });
          return json({ deleted: topic });
        }
        break;
      case "publish":
        if (method === "POST" && id === undefined) {
          const body = await readJson(request);
          const { topic, qos, retain } = body;
          const encoding = body.encoding ?? "utf8";
          if (typeof topic !== "string") throw new HttpError(400, "Expected a string topic");
          if (typeof body.payload !== "string") {
            throw new HttpError(400, "Expected a string payload");
          }
          if (encoding !== "utf8" && encoding !== "base64") {
            throw new HttpError(400, 'Expected encoding "utf8" or "base64"');
          }
          if (retain !== undefined && typeof retain !== "boolean") {
            throw new HttpError(400, "Expected retain to be true or false");
          }
          let payload: Uint8Array | string = body.payload;
          if (encoding === "base64") {
            try {
              payload = Uint8Array.from(atob(body.payload), (c) => c.charCodeAt(0));
            } catch {
              throw new HttpError(400, "The payload is not valid base64");
            }
          }
          try {
            t.publish(topic, payload, { qos: (qos ?? 0) as QoS, retain: retain ?? false });
          } catch (error) {
            if (error instanceof TypeError || error instanceof RangeError) {
              throw new HttpError(400, error.message);
            }
            throw error;
          }
          log(`published to "${topic}"`, "admin_publish", { topic });
          return json({ published: topic });
        }
        break;
    }
    throw new HttpError(404, "Not found");
  }

  #overview(): unknown {
    const f = this.#o.figures();
    const st = this.#o.target.stats;
    return {
      version: this.#o.version,
      now: Date.now(),
      startedAt: f.startedAt,
      ready: this.#o.target.ready,
      clientsConnected: st.clientsConnected,
      sessionsOnline: f.sessionsOnline,
      sessionsOffline: f.sessionsOffline,
      subscriptions: f.subscriptions,
      retainedCount: f.retainedCount,
      retainedBytes: f.retainedBytes,
      inflight: f.inflight,
      queued: f.queued,
      // Counters: the dashboard turns their differences into rates.
      connectsTotal: st.clientsTotal,
      messagesReceived: st.publishReceived,
      messagesSent: st.publishSent,
      bytesReceived: st.bytesReceived,
      bytesSent: st.bytesSent,
      dropped: st.dropped,
      listeners: f.listeners,
    };
  }
}

function describeMessage(m: { topic: string; payload: Uint8Array; qos: QoS }): unknown {
  const cut = m.payload.subarray(0, PREVIEW_BYTES);
  let payload: string | undefined;
  try {
    payload = new TextDecoder("utf-8", { fatal: true }).decode(cut);
  } catch {
    payload = undefined;
  }
  return {
    topic: m.topic,
    qos: m.qos,
    bytes: m.payload.length,
    payload,
    payloadBase64: payload === undefined ? btoa(String.fromCharCode(...cut)) : undefined,
    truncated: m.payload.length > PREVIEW_BYTES,
  };
}

function readLimit(url: URL): number {
  const raw = url.searchParams.get("limit");
  if (raw === null) return DEFAULT_LIMIT;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > MAX_LIMIT) {
    throw new HttpError(400, `limit must be an integer from 0 to ${MAX_LIMIT}`);
  }
  return n;
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, "Malformed URL");
  }
}

function expectMethod(method: string, ...allowed: string[]): void {
  if (!allowed.includes(method)) throw new HttpError(405, `Method ${method} not allowed`);
}

async function readJson(request: Request): Promise<Record<string, unknown>> {
  const length = Number(request.headers.get("content-length") ?? "0");
  if (length > MAX_BODY_BYTES) throw new HttpError(413, "Request body too large");
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (request.body !== null) {
    for await (const chunk of request.body) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) throw new HttpError(413, "Request body too large");
      chunks.push(chunk);
    }
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    bytes.set(c, offset);
    offset += c.length;
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new HttpError(400, "The body is not valid JSON");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new HttpError(400, "Expected a JSON object");
  }
  return value as Record<string, unknown>;
}

function json(value: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(value), {
    status,
    headers: {
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store",
      ...headers,
    },
  });
}

function withSecurityHeaders(response: Response): Response {
  const h = response.headers;
  h.set("x-content-type-options", "nosniff");
  h.set("referrer-policy", "no-referrer");
  h.set("x-frame-options", "DENY");
  h.set(
    "content-security-policy",
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
  );
  return response;
}

function timingSafeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

function text(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
