/**
 * Password verification off the broker's thread. One argon2id check with aMQTT 0.12's parameters
 * (64 MiB, 3 passes) took about 220 ms, and a sha512-crypt one 10-25 ms, all of it with the event
 * loop blocked: a client sending CONNECTs with wrong passwords could stall every other client.
 * A worker does the hashing; the broker's thread only waits. Internal to src/plugins.
 *
 * @module
 */

import { AuthUnavailableError } from "./auth_unavailable.ts";
import { verifyPassword } from "./password_hash.ts";
import type { Logger } from "./types.ts";
import type { VerifyRequest, VerifyResponse } from "./_verify_worker.ts";

/**
 * Checks waiting for the worker beyond this are not made: a flood only costs refusals, answered
 * "server unavailable" since the password was never checked.
 */
export const MAX_PENDING_CHECKS = 256;

interface Pending {
  resolve: (ok: boolean) => void;
  password: Uint8Array;
  hash: string;
  logger: Logger | undefined;
}

/**
 * Verifies passwords on a worker thread, one at a time, in arrival order. The worker starts on
 * the first check. If it cannot start or fails, checks fall back to the calling thread (and that
 * is logged once), so authentication keeps working, only slower for everyone else.
 */
export class PasswordVerifier {
  #worker: Worker | undefined;
  #broken = false;
  #closed = false;
  #nextId = 1;
  #pending = new Map<number, Pending>();
  #logger: Logger | undefined;

  /**
   * @param logger receives the fallback notice
   */
  constructor(logger?: Logger) {
    this.#logger = logger;
  }

  /** Checks waiting for an answer. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Checks a password against a stored hash, as `verifyPassword` does.
   *
   * @param password the password bytes
   * @param hash the stored hash
   * @param logger receives the reason when the hash is unsupported or malformed
   * @returns whether the password matches; false once closed
   * @throws {AuthUnavailableError} (as a rejection) when too many checks wait: not checked
   */
  verify(password: Uint8Array, hash: string, logger?: Logger): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    if (this.#broken) return verifyPassword(password, hash, { logger });
    if (this.#pending.size >= MAX_PENDING_CHECKS) {
      // Not checked: the broker answers "server unavailable" and counts it in its summary (one
      // log line per refusal would turn a flood into a flood of log lines).
      return Promise.reject(
        new AuthUnavailableError(`${MAX_PENDING_CHECKS} password checks are already waiting`),
      );
    }
    const worker = this.#start();
    if (worker === undefined) return verifyPassword(password, hash, { logger });
    const id = this.#nextId++;
    return new Promise<boolean>((resolve) => {
      this.#pending.set(id, { resolve, password, hash, logger });
      const request: VerifyRequest = { id, password, hash };
      worker.postMessage(request);
    });
  }

  /**
   * Starts the worker and resolves once it answers (or checks fell back to this thread). Loading
   * it takes from half a second to seconds on a busy machine (under `deno test`, its modules are
   * type-checked first): a broker calls this at start, so that its first logins do not wait for
   * it, counted against the plugins' hook timeout.
   *
   * @returns a promise that resolves when checks can be made; it never rejects
   */
  async ready(): Promise<void> {
    // An empty hash is no hash format: the worker answers false at once, with nothing to log.
    await this.verify(new Uint8Array(0), "").catch(() => false);
  }

  /** Stops the worker; checks still waiting are answered `false`. Idempotent. */
  close(): void {
    this.#closed = true;
    this.#worker?.terminate();
    this.#worker = undefined;
    for (const p of this.#pending.values()) p.resolve(false);
    this.#pending.clear();
  }

  #start(): Worker | undefined {
    if (this.#worker !== undefined) return this.#worker;
    let worker: Worker;
    try {
      worker = new Worker(new URL("./_verify_worker.ts", import.meta.url), { type: "module" });
    } catch (error) {
      this.#fallBack(error);
      return undefined;
    }
    worker.onmessage = (event: MessageEvent<VerifyResponse>) => {
      const { id, ok, warnings } = event.data;
      const p = this.#pending.get(id);
      if (p === undefined) return;
      this.#pending.delete(id);
      for (const w of warnings) p.logger?.warning(w);
      p.resolve(ok);
    };
    worker.onerror = (event: ErrorEvent) => {
      // Handled here: an unhandled worker error would end the whole process.
      event.preventDefault();
      this.#fallBack(event.error ?? event.message);
    };
    this.#worker = worker;
    return worker;
  }

  /** The worker is unusable: finish what waits, and everything after, on this thread. */
  #fallBack(error: unknown): void {
    this.#broken = true;
    this.#worker?.terminate();
    this.#worker = undefined;
    this.#logger?.warning(
      "Password checks run on the broker's thread: the verification worker failed: " +
        (error instanceof Error ? error.message : String(error)),
    );
    const waiting = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of waiting) {
      verifyPassword(p.password, p.hash, { logger: p.logger }).then(
        p.resolve,
        () => p.resolve(false),
      );
    }
  }
}
