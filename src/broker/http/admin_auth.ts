/**
 * Who may use the operator's endpoints: the users of a password file listed as `admins` on the
 * http listener. Two ways in: HTTP Basic on every request (for Prometheus and scripts), or a login
 * that yields a session cookie (`HttpOnly`, `SameSite=Strict`) plus a CSRF token the page sends
 * back in a header on every action.
 *
 * Passwords are checked on a worker thread (an argon2 check takes a fifth of a second); a
 * successful Basic login is remembered for a while, so a scrape does not hash every time. Failed
 * logins are limited per address and logged at WARNING with the user name and address, never the
 * password.
 *
 * @module
 */

import { parsePasswordFile } from "../../plugins/file_auth.ts";
import { PasswordVerifier } from "../../plugins/_verifier.ts";
import type { Logger } from "../policy.ts";

/** Options of {@linkcode AdminAuth}. */
export interface AdminAuthOptions {
  /** The listener's name, for log lines. */
  listener: string;
  /** User names allowed in. Empty: nobody. */
  admins: readonly string[];
  /** The password file they log in with; undefined: nobody can log in. */
  passwordFile: string | undefined;
  /** Where refusals and logins are logged. */
  logger: Logger;
  /**
   * Idle time after which a login session ends, ms.
   * @default 1800000 (30 minutes)
   */
  sessionIdleMs?: number;
}

/** An authenticated request's identity. */
export interface AdminIdentity {
  /** The administrator's user name. */
  user: string;
  /** The login session, when the request came with its cookie (not Basic). */
  session: LoginSession | undefined;
}

/** A login session (the dashboard's). */
export interface LoginSession {
  /** The cookie value. */
  readonly token: string;
  /** The value the page must send in `X-CSRF-Token` with every action. */
  readonly csrfToken: string;
  /** The administrator's user name. */
  readonly user: string;
  /** When it ends if unused, ms since the epoch. */
  expiresAt: number;
}

/** The outcome of a credential check. */
export type AuthResult =
  | { ok: true; identity: AdminIdentity }
  | { ok: false; status: 401 | 403 | 429; error: string };

/** The session cookie's name. */
export const SESSION_COOKIE = "amqtt_session";

const MAX_SESSIONS = 1000;
const BASIC_CACHE_MS = 5 * 60_000;
const FAILURE_WINDOW_MS = 60_000;
const MAX_FAILURES = 10;
const MAX_TRACKED_ADDRESSES = 10_000;

/** Checks administrators' credentials and keeps their login sessions. */
export class AdminAuth {
  readonly #options: AdminAuthOptions;
  readonly #admins: Set<string>;
  readonly #idleMs: number;
  #users = new Map<string, string>();
  #verifier: PasswordVerifier | undefined;
  readonly #sessions = new Map<string, LoginSession>();
  /** sha-256(user, password) of recent successful Basic logins -> expiry. */
  readonly #basicCache = new Map<string, number>();
  /** Failed logins per address (host only): count and window start. */
  readonly #failures = new Map<string, { count: number; since: number }>();
  #salt = crypto.getRandomValues(new Uint8Array(16));

  /** @param options admins, password file and logger */
  constructor(options: AdminAuthOptions) {
    this.#options = options;
    this.#admins = new Set(options.admins);
    this.#idleMs = options.sessionIdleMs ?? 30 * 60_000;
  }

  /** Why nobody can log in, when that is so (the configuration lacks admins or a password file). */
  get unconfigured(): string | undefined {
    const name = this.#options.listener;
    if (this.#admins.size === 0) {
      return `No administrators are configured: list users under "admins" on the http listener ` +
        `"${name}"`;
    }
    if (this.#options.passwordFile === undefined) {
      return `No password file is configured for the http listener "${name}": set its ` +
        `password_file or the auth_file plugin's`;
    }
    return undefined;
  }

  /** Reads the password file. Throws when it cannot be read. */
  async load(): Promise<void> {
    const path = this.#options.passwordFile;
    if (path === undefined) return;
    const { users, issues } = parsePasswordFile(await Deno.readTextFile(path));
    for (const issue of issues) {
      this.#options.logger.warning(`Password file "${path}" line ${issue.line}: ${issue.message}`);
    }
    this.#users = users;
    this.#basicCache.clear();
  }

  /** Re-reads the password file; on failure keeps the users loaded before and logs why. */
  async reload(): Promise<void> {
    try {
      await this.load();
    } catch (error) {
      this.#options.logger.error(
        `Cannot reload the admins' password file: ${(error as Error).message}`,
      );
    }
  }

  /** Stops the password worker and forgets every session. */
  close(): void {
    this.#verifier?.close();
    this.#sessions.clear();
  }

  /**
   * Authenticates a request by its session cookie or its Basic credentials.
   *
   * @param request the request
   * @param remoteAddress `host:port` of the peer, for the log and the failure limit
   * @returns the identity, or the status and message to answer with
   */
  async authenticate(request: Request, remoteAddress: string): Promise<AuthResult> {
    const problem = this.unconfigured;
    if (problem !== undefined) return { ok: false, status: 403, error: problem };
    const token = cookieValue(request.headers.get("cookie"), SESSION_COOKIE);
    if (token !== undefined) {
      const session = this.#sessions.get(token);
      const now = Date.now();
      if (session !== undefined && session.expiresAt > now) {
        session.expiresAt = now + this.#idleMs;
        return { ok: true, identity: { user: session.user, session } };
      }
      if (session !== undefined) this.#sessions.delete(token);
    }
    const basic = parseBasic(request.headers.get("authorization"));
    if (basic === undefined) {
      return {
        ok: false,
        status: 401,
        error: token !== undefined ? "The login session has ended" : "Authentication required",
      };
    }
    return await this.check(basic.user, basic.password, remoteAddress);
  }

  /**
   * Checks a user name and password (a login form or Basic credentials).
   *
   * @param user the user name
   * @param password the password
   * @param remoteAddress `host:port` of the peer
   * @returns the identity (without session), or the status and message to answer with
   */
  async check(user: string, password: string, remoteAddress: string): Promise<AuthResult> {
    const problem = this.unconfigured;
    if (problem !== undefined) return { ok: false, status: 403, error: problem };
    const host = hostOf(remoteAddress);
    const now = Date.now();
    const failures = this.#failures.get(host);
    if (failures !== undefined && now - failures.since < FAILURE_WINDOW_MS) {
      if (failures.count >= MAX_FAILURES) {
        return { ok: false, status: 429, error: "Too many failed logins: try again in a minute" };
      }
    }
    const key = await this.#cacheKey(user, password);
    const cached = this.#basicCache.get(key);
    let valid = cached !== undefined && cached > now;
    if (!valid) {
      const hash = this.#users.get(user);
      this.#verifier ??= new PasswordVerifier(this.#options.logger);
      const bytes = new TextEncoder().encode(password);
      // An unknown user costs a real check too, so a refusal does not tell which users exist.
      const ok = await this.#verifier.verify(bytes, hash ?? this.#anyHash());
      valid = ok && hash !== undefined;
      if (valid) {
        if (this.#basicCache.size >= MAX_SESSIONS) this.#basicCache.clear();
        this.#basicCache.set(key, now + BASIC_CACHE_MS);
      }
    }
    if (!valid) {
      this.#failed(host, now);
      this.#options.logger.warning(
        `Refused the admin login of "${user}" from ${remoteAddress} on listener ` +
          `"${this.#options.listener}": wrong user name or password`,
        {
          event: "admin_login_refused",
          username: user,
          remoteAddress,
          listener: this.#options.listener,
          reason: "bad user name or password",
        },
      );
      return { ok: false, status: 401, error: "Wrong user name or password" };
    }
    if (!this.#admins.has(user)) {
      this.#options.logger.warning(
        `Refused the admin login of "${user}" from ${remoteAddress}: not an administrator`,
        {
          event: "admin_login_refused",
          username: user,
          remoteAddress,
          listener: this.#options.listener,
          reason: "not an administrator",
        },
      );
      return { ok: false, status: 403, error: `"${user}" is not an administrator` };
    }
    this.#failures.delete(host);
    return { ok: true, identity: { user, session: undefined } };
  }

  /**
   * Opens a login session for an authenticated administrator.
   *
   * @param user the administrator
   * @returns the session (its token goes into the cookie)
   */
  openSession(user: string): LoginSession {
    const now = Date.now();
    for (const [token, s] of this.#sessions) {
      if (s.expiresAt <= now) this.#sessions.delete(token);
    }
    if (this.#sessions.size >= MAX_SESSIONS) {
      // The oldest session makes room (Map keeps insertion order).
      this.#sessions.delete(this.#sessions.keys().next().value!);
    }
    const session: LoginSession = {
      token: randomToken(),
      csrfToken: randomToken(),
      user,
      expiresAt: now + this.#idleMs,
    };
    this.#sessions.set(session.token, session);
    return session;
  }

  /**
   * Ends a login session.
   *
   * @param session the session
   */
  closeSession(session: LoginSession): void {
    this.#sessions.delete(session.token);
  }

  #failed(host: string, now: number): void {
    const f = this.#failures.get(host);
    if (f === undefined || now - f.since >= FAILURE_WINDOW_MS) {
      if (this.#failures.size >= MAX_TRACKED_ADDRESSES) this.#failures.clear();
      this.#failures.set(host, { count: 1, since: now });
    } else {
      f.count++;
    }
  }

  #anyHash(): string {
    return this.#users.values().next().value ??
      // A well-formed sha512-crypt hash nobody's password matches.
      "$6$AmqttDummySalt00$hr0CUNpae7IwNPg9/jpfuToOCoIjxaJVPssjA6T1d1zXXPuHY.kxh3N2YeFLA/uOKjgTSXp/ngSyBxgQ43oyl.";
  }

  async #cacheKey(user: string, password: string): Promise<string> {
    const data = new TextEncoder().encode(`${user}\0${password}`);
    const salted = new Uint8Array(this.#salt.length + data.length);
    salted.set(this.#salt);
    salted.set(data, this.#salt.length);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", salted));
    return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  }
}

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

/**
 * Reads one cookie from a `Cookie` header.
 *
 * @param header the header value
 * @param name the cookie name
 * @returns its value, when present
 */
export function cookieValue(header: string | null, name: string): string | undefined {
  if (header === null) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function parseBasic(header: string | null): { user: string; password: string } | undefined {
  if (header === null) return undefined;
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (m === null) return undefined;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(atob(m[1]!), (c) => c.charCodeAt(0)),
    );
  } catch {
    return undefined;
  }
  const colon = text.indexOf(":");
  if (colon < 0) return undefined;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

function hostOf(address: string): string {
  const i = address.lastIndexOf(":");
  return i < 0 ? address : address.slice(0, i);
}
