/**
 * The writes a store accepts: small mutations, applied in batches, each batch atomically. The
 * broker core's journal actions map one-to-one onto them:
 *
 * | Protocol event                                   | Mutations                                    |
 * | ------------------------------------------------ | -------------------------------------------- |
 * | CONNECT of a persistent session, DISCONNECT      | `putSession` (new settings, `offlineSince`)  |
 * | clean start, session expiry                      | `deleteSession`                              |
 * | SUBSCRIBE granted, UNSUBSCRIBE                   | `putSubscription`, `deleteSubscription`      |
 * | QoS 1/2 PUBLISH routed to persistent sessions    | `putMessage` + one `queueOutbound` each      |
 * | ... received at QoS 2                            | + `putInbound` (then PUBREC after commit)    |
 * | PUBLISH sent from the queue                      | `sendOutbound`                               |
 * | PUBACK or PUBCOMP received, queue overflow drop  | `deleteOutbound`                             |
 * | PUBREC received (PUBREL sent)                    | `pubrelOutbound`                             |
 * | PUBREL received                                  | `deleteInbound`                              |
 * | retained message set or cleared                  | `putRetained`, `deleteRetained`              |
 * | `$SYS` maximum changes                           | `setCounter`                                 |
 * | shutdown with `clear_on_shutdown`                | `clear`                                      |
 *
 * @module
 */

import type { QoS } from "../packet/constants.ts";
import type { MessageRecord } from "./message_record.ts";
import type { SessionRecord, SubscriptionRecord } from "./session_record.ts";

/**
 * One write to a store. Mutations that name something the store does not hold (a session, a
 * message id, an outbound entry) are ignored, so that one stale write never fails the others
 * committed with it.
 *
 * Outbound entries are addressed by `(clientId, seq)`: `seq` is chosen by the caller, strictly
 * increasing per session, and is the delivery order. An entry moves `queued` → `publish` (PUBLISH
 * sent with a packet id) → for QoS 2 `pubrel` (PUBREC received, PUBREL sent; the message itself
 * is no longer needed) and is deleted when acknowledged or dropped.
 *
 * Messages (`putMessage`) are stored once and referenced by outbound entries; a message is deleted
 * as soon as its last reference goes, and one put but referenced by no entry at the end of its
 * batch is not kept at all.
 */
export type StoreMutation =
  /** Creates or replaces a session's settings; its subscriptions and queues stay. */
  | { type: "putSession"; session: SessionRecord }
  /** Deletes a session with its subscriptions, outbound entries and inbound ids. */
  | { type: "deleteSession"; clientId: string }
  /** Adds or replaces the subscription to `subscription.filter`. */
  | { type: "putSubscription"; clientId: string; subscription: SubscriptionRecord }
  /** Removes a subscription. */
  | { type: "deleteSubscription"; clientId: string; filter: string }
  /** Stores a message under a caller-chosen id, unique among stored messages. */
  | { type: "putMessage"; id: number; message: MessageRecord }
  /**
   * Queues message `messageId` for a session at delivery QoS `qos`; with `packetId` (QoS 1/2)
   * it is sent at once: the same as `queueOutbound` then `sendOutbound`, in one write.
   */
  | {
    type: "queueOutbound";
    clientId: string;
    seq: number;
    messageId: number;
    qos: QoS;
    packetId?: number;
  }
  /** A queued QoS 1/2 entry was sent with `packetId` and now awaits PUBACK/PUBREC. */
  | { type: "sendOutbound"; clientId: string; seq: number; packetId: number }
  /** PUBREC received for a QoS 2 entry and PUBREL sent: it now awaits PUBCOMP. */
  | { type: "pubrelOutbound"; clientId: string; seq: number }
  /** An outbound entry is done (PUBACK, PUBCOMP) or dropped. */
  | { type: "deleteOutbound"; clientId: string; seq: number }
  /** An incoming QoS 2 packet id was received and awaits PUBREL [MQTT-4.3.3-2]. */
  | { type: "putInbound"; clientId: string; packetId: number }
  /** PUBREL received for an incoming QoS 2 packet id. */
  | { type: "deleteInbound"; clientId: string; packetId: number }
  /** Sets the retained message of `message.topic`. */
  | { type: "putRetained"; message: MessageRecord }
  /** Clears the retained message of a topic. */
  | { type: "deleteRetained"; topic: string }
  /** Sets a counter that must survive restarts (e.g. `clients/maximum` for `$SYS`). */
  | { type: "setCounter"; name: string; value: number }
  /** Deletes every session, message and retained message; counters stay. */
  | { type: "clear" };

function fail(index: number, what: string): never {
  throw new TypeError(`Cannot apply mutation ${index}: ${what}`);
}

function checkString(value: unknown, index: number, name: string): void {
  if (typeof value !== "string") fail(index, `${name} must be a string`);
}

function checkId(value: unknown, index: number, name: string): void {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    fail(index, `${name} must be a non-negative safe integer`);
  }
}

function checkQos(value: unknown, index: number, name = "qos"): void {
  if (value !== 0 && value !== 1 && value !== 2) {
    throw new RangeError(`Cannot apply mutation ${index}: ${name} must be 0, 1 or 2`);
  }
}

function checkPacketId(value: unknown, index: number): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw new RangeError(`Cannot apply mutation ${index}: packetId must be 1..65535`);
  }
}

function checkOptionalTime(value: unknown, index: number, name: string): void {
  if (value !== undefined && (typeof value !== "number" || !Number.isFinite(value))) {
    fail(index, `${name} must be a finite number or undefined`);
  }
}

function checkMessage(message: MessageRecord | undefined, index: number, name: string): void {
  if (typeof message !== "object" || message === null) fail(index, `${name} must be a record`);
  checkString(message.topic, index, `${name}.topic`);
  if (!(message.payload instanceof Uint8Array)) {
    fail(index, `${name}.payload must be a Uint8Array`);
  }
  checkQos(message.qos, index, `${name}.qos`);
  if (typeof message.retain !== "boolean") fail(index, `${name}.retain must be a boolean`);
  if (message.origin !== undefined) checkString(message.origin, index, `${name}.origin`);
  checkOptionalTime(message.expiresAt, index, `${name}.expiresAt`);
  if (message.properties !== undefined && typeof message.properties !== "object") {
    fail(index, `${name}.properties must be an object`);
  }
  if (message.retainOut !== undefined && typeof message.retainOut !== "boolean") {
    fail(index, `${name}.retainOut must be a boolean`);
  }
  const ids = message.subscriptionIdentifiers;
  if (ids !== undefined) {
    if (!Array.isArray(ids)) fail(index, `${name}.subscriptionIdentifiers must be an array`);
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 1 || id > 268_435_455) {
        throw new RangeError(
          `Cannot apply mutation ${index}: ${name}.subscriptionIdentifiers must be 1..268435455`,
        );
      }
    }
  }
}

function checkSession(session: SessionRecord | undefined, index: number): void {
  if (typeof session !== "object" || session === null) fail(index, "session must be a record");
  checkString(session.clientId, index, "session.clientId");
  if (![3, 4, 5].includes(session.protocolVersion)) {
    throw new RangeError(
      `Cannot apply mutation ${index}: session.protocolVersion must be 3, 4 or 5`,
    );
  }
  if (typeof session.clean !== "boolean") fail(index, "session.clean must be a boolean");
  if (session.expiryInterval !== undefined) {
    checkId(session.expiryInterval, index, "session.expiryInterval");
  }
  checkOptionalTime(session.offlineSince, index, "session.offlineSince");
  if (session.username !== undefined) checkString(session.username, index, "session.username");
  if (session.will !== undefined) {
    checkMessage(session.will.message, index, "session.will.message");
    checkId(session.will.delayInterval, index, "session.will.delayInterval");
  }
}

function checkSubscription(sub: SubscriptionRecord | undefined, index: number): void {
  if (typeof sub !== "object" || sub === null) fail(index, "subscription must be a record");
  checkString(sub.filter, index, "subscription.filter");
  checkQos(sub.qos, index, "subscription.qos");
  if (typeof sub.noLocal !== "boolean" || typeof sub.retainAsPublished !== "boolean") {
    fail(index, "subscription.noLocal and retainAsPublished must be booleans");
  }
  if (sub.retainHandling !== 0 && sub.retainHandling !== 1 && sub.retainHandling !== 2) {
    throw new RangeError(`Cannot apply mutation ${index}: retainHandling must be 0, 1 or 2`);
  }
  if (
    sub.identifier !== undefined &&
    (!Number.isInteger(sub.identifier) || sub.identifier < 1 || sub.identifier > 268_435_455)
  ) {
    throw new RangeError(
      `Cannot apply mutation ${index}: subscription.identifier must be 1..268435455`,
    );
  }
}

/**
 * Checks the shape of every mutation of a batch, so that a store can reject a malformed batch
 * as a whole before applying any of it.
 *
 * @param batch the mutations
 * @throws {TypeError} If a mutation has an unknown type or a field of the wrong type.
 * @throws {RangeError} If a QoS, packet id, protocol level or identifier is out of range.
 *
 * @example
 * ```ts
 * import { validateBatch } from "./mutation.ts";
 * import assert from "node:assert/strict";
 *
 * validateBatch([{ type: "putInbound", clientId: "c", packetId: 7 }]);
 * assert.throws(() => validateBatch([{ type: "putInbound", clientId: "c", packetId: 0 }]), RangeError);
 * ```
 */
export function validateBatch(batch: readonly StoreMutation[]): void {
  if (!Array.isArray(batch)) throw new TypeError("Cannot apply: the batch must be an array");
  for (let index = 0; index < batch.length; index++) {
    const m: StoreMutation = batch[index]!;
    if (typeof m !== "object" || m === null) fail(index, "not a mutation object");
    switch (m.type) {
      case "putSession":
        checkSession(m.session, index);
        break;
      case "deleteSession":
        checkString(m.clientId, index, "clientId");
        break;
      case "putSubscription":
        checkString(m.clientId, index, "clientId");
        checkSubscription(m.subscription, index);
        break;
      case "deleteSubscription":
        checkString(m.clientId, index, "clientId");
        checkString(m.filter, index, "filter");
        break;
      case "putMessage":
        checkId(m.id, index, "id");
        checkMessage(m.message, index, "message");
        break;
      case "queueOutbound":
        checkString(m.clientId, index, "clientId");
        checkId(m.seq, index, "seq");
        checkId(m.messageId, index, "messageId");
        checkQos(m.qos, index);
        if (m.packetId !== undefined) {
          checkPacketId(m.packetId, index);
          if (m.qos === 0) {
            throw new RangeError(`Cannot apply mutation ${index}: a QoS 0 entry has no packetId`);
          }
        }
        break;
      case "sendOutbound":
        checkString(m.clientId, index, "clientId");
        checkId(m.seq, index, "seq");
        checkPacketId(m.packetId, index);
        break;
      case "pubrelOutbound":
      case "deleteOutbound":
        checkString(m.clientId, index, "clientId");
        checkId(m.seq, index, "seq");
        break;
      case "putInbound":
      case "deleteInbound":
        checkString(m.clientId, index, "clientId");
        checkPacketId(m.packetId, index);
        break;
      case "putRetained":
        checkMessage(m.message, index, "message");
        if (!m.message.retain) fail(index, "a retained message must have retain set");
        break;
      case "deleteRetained":
        checkString(m.topic, index, "topic");
        break;
      case "setCounter":
        checkString(m.name, index, "name");
        if (typeof m.value !== "number" || !Number.isFinite(m.value)) {
          fail(index, "value must be a finite number");
        }
        break;
      case "clear":
        break;
      default:
        fail(index, `unknown type ${JSON.stringify((m as { type: unknown }).type)}`);
    }
  }
}
