/**
 * MQTT 5.0 request/response for one client: a response topic of its own, a correlation id per
 * request, and the matching of responses to the requests that wait for them.
 *
 * @module
 */

import type { ApplicationMessage } from "../session/client_session.ts";

interface Waiting {
  resolve: (message: ApplicationMessage) => void;
  reject: (error: unknown) => void;
}

/**
 * The requests of one client that wait for a response.
 *
 * @example
 * ```ts
 * import { Requests } from "./_requests.ts";
 * import assert from "node:assert/strict";
 *
 * const requests = new Requests("amqtt/responses/c1/x");
 * const { correlationData, response } = requests.open();
 * assert.equal(requests.match({
 *   topic: "amqtt/responses/c1/x",
 *   payload: new Uint8Array(),
 *   qos: 0,
 *   retain: false,
 *   dup: false,
 *   properties: { correlationData },
 * }), true);
 * assert.equal((await response).topic, "amqtt/responses/c1/x");
 * ```
 */
export class Requests {
  /** The topic every response of this client is sent to. */
  readonly topic: string;
  #waiting = new Map<string, Waiting>();

  /**
   * @param topic the response topic
   */
  constructor(topic: string) {
    this.topic = topic;
  }

  /** Requests waiting for a response. */
  get size(): number {
    return this.#waiting.size;
  }

  /**
   * Starts waiting for the response to a new request.
   *
   * @returns fresh correlation data for the request, and the response once it arrives
   */
  open(): { correlationData: Uint8Array; response: Promise<ApplicationMessage> } {
    const correlationData = crypto.getRandomValues(new Uint8Array(16));
    const response = new Promise<ApplicationMessage>((resolve, reject) => {
      this.#waiting.set(key(correlationData), { resolve, reject });
    });
    return { correlationData, response };
  }

  /**
   * Stops waiting for a request (timed out or aborted), failing its response.
   *
   * @param correlationData the request's correlation data
   * @param error what its response rejects with
   */
  cancel(correlationData: Uint8Array, error: unknown): void {
    const id = key(correlationData);
    const waiting = this.#waiting.get(id);
    this.#waiting.delete(id);
    waiting?.reject(error);
  }

  /**
   * Hands a received message to the request it answers.
   *
   * @param message a received message
   * @returns whether it was the response to a waiting request (and is consumed)
   */
  match(message: ApplicationMessage): boolean {
    const data = message.properties?.correlationData;
    if (message.topic !== this.topic || data === undefined) return false;
    const id = key(data);
    const waiting = this.#waiting.get(id);
    if (waiting === undefined) return false;
    this.#waiting.delete(id);
    waiting.resolve(message);
    return true;
  }

  /**
   * Fails every waiting request.
   *
   * @param error what their responses reject with
   */
  failAll(error: unknown): void {
    const all = [...this.#waiting.values()];
    this.#waiting.clear();
    for (const w of all) w.reject(error);
  }
}

function key(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}
