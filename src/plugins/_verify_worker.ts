/**
 * Worker side of the password verifier: checks one password against one stored hash per message,
 * off the broker's thread. Internal to src/plugins (see `_verifier.ts`).
 *
 * @module
 */

import { verifyPassword } from "./password_hash.ts";

/** A request: verify `password` against `hash`, answer with the same `id`. */
export interface VerifyRequest {
  id: number;
  password: Uint8Array;
  hash: string;
}

/** The answer, with the reasons `verifyPassword` would have logged. */
export interface VerifyResponse {
  id: number;
  ok: boolean;
  warnings: string[];
}

// `self` is the worker's global scope here; this module is only ever loaded as a worker.
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<VerifyRequest>) => void) | null;
  postMessage(message: VerifyResponse): void;
};

scope.onmessage = async (event) => {
  const { id, password, hash } = event.data;
  const warnings: string[] = [];
  const note = (msg: string) => void warnings.push(msg);
  const logger = { debug: note, info: note, warning: note, error: note };
  let ok = false;
  try {
    ok = await verifyPassword(password, hash, { logger });
  } catch (error) {
    // verifyPassword never throws; this guards the worker's one promise against surprises.
    warnings.push(`Cannot verify password: ${error instanceof Error ? error.message : error}`);
  }
  scope.postMessage({ id, ok, warnings });
};
