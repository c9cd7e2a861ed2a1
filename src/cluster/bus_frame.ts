/**
 * What the cluster bus sends through Redis, as compact binary frames: a forwarded application
 * message (to one node's channel), a session takeover notice (to the old owner's channel), the old
 * owner's answer that the session's stored state is complete (to the new owner's channel), and
 * the control frames every node hears (interest changes, a node's full interest, a node left, a
 * retained message set or cleared).
 *
 * Every frame starts with a type byte and the sending node's id. Message frames carry the
 * publisher's client id and its sequence number, then the message record in the binary layout of
 * `record_codec.ts` (topic, QoS, retain, 5.0 properties, expiry, payload as raw bytes).
 *
 * @module
 */

import type { MessageRecord } from "../store/message_record.ts";
import { exceedsTopicLength } from "../topic/topic_length.ts";
import { validateTopicName } from "../topic/validate_topic_name.ts";
import { messageProblem, shareProblem, subscriptionProblem } from "./_record_problem.ts";
import {
  ByteReader,
  ByteWriter,
  readMessage,
  type TextSource,
  writeMessage,
} from "../store/record_codec.ts";

/**
 * 2: a message frame lists the shared groups its receiver serves. 3: and says whether it is for
 * those groups only (a message redirected to another node with members of a group). 4: a message
 * frame carries the origin's order across publishers, and a handoff the old owner's marks. 5: a
 * batch's frame count is 4 bytes, filled in when it is sent, so that frames are written as they
 * come; a message's order is a float64. The byte that says "only" is 1: one release wrote how
 * many times the message was passed on there (2 and more read as "not only" by the releases
 * before it, so a node passing on wrote a duplicate for their other subscribers); any value but 0
 * reads as "only". The count is kept in Redis instead (`ClusterBus.redirect`).
 */
const VERSION = 5;

/** A message forwarded from the node where it was published. */
export interface MessageFrame {
  type: "message";
  /** The node the message was published on. */
  origin: string;
  /** The publisher's client id; empty when the host program published it. */
  publisher: string;
  /** Sequence number per (origin, publisher), counting from 1: the publisher's order. */
  seq: number;
  /**
   * The shared groups (`$share/{group}/{filter}`) the receiving node delivers this message to:
   * the publishing node picked it for them. It delivers to no other group (absent: none).
   */
  shares?: string[];
  /**
   * For the groups in `shares` only, not the receiver's other subscriptions: a message a node
   * chosen for a group passes on to another node with members of it, having none left itself.
   */
  only?: boolean;
  /**
   * Grows with every message the origin node forwards, across its publishers (absent: 0), so
   * that a receiver can tell which of two messages of one origin was sent first.
   */
  order?: number;
  /** The message. */
  message: MessageRecord;
}

/** Another node took over a session this node owned. */
export interface TakeoverFrame {
  type: "takeover";
  /** The new owner. */
  origin: string;
  /** The client id. */
  clientId: string;
}

/**
 * The answer to a takeover: the old owner has let go of the session and everything it wrote of
 * it is committed to the shared store, so the new owner may load it.
 */
export interface HandoffFrame {
  type: "handoff";
  /** The old owner. */
  origin: string;
  /** The client id. */
  clientId: string;
  /**
   * Origin node → the highest `order` of its messages the old owner had routed when it let go
   * of the session (its own node: the last it forwarded): the new owner delivers to the session
   * only what came later (see `cluster_sessions.ts`). Absent: none.
   */
  marks?: Record<string, number>;
}

/**
 * How many local members a node has in one shared group, when more than one: the publishing
 * node weighs its choice of node by it, so that each member gets its share of the group's
 * messages wherever it is connected.
 */
export interface MembersFrame {
  type: "members";
  /** The node. */
  origin: string;
  /** The group, `$share/{group}/{filter}`. */
  filter: string;
  /** Its members on that node (1 when the node has no entry). */
  count: number;
}

/** A node added (`add`) or removed filters from its interest. */
export interface InterestFrame {
  type: "interest";
  origin: string;
  /** true: the filters were added; false: removed. */
  add: boolean;
  filters: string[];
}

/** A node's complete interest, replacing what others knew of it (sent after (re)connecting). */
export interface SyncFrame {
  type: "sync";
  origin: string;
  filters: string[];
}

/** A node left: stopped (`graceful`) or found dead by `origin`, which cleaned up after it. */
export interface LeftFrame {
  type: "left";
  origin: string;
  node: string;
  graceful: boolean;
  /** Client ids the node owned when it left. */
  clients: string[];
}

/**
 * A topic's retained message was set (`message`) or cleared (no `message`), announced to every
 * node so that each keeps the whole retained set.
 */
export interface RetainedFrame {
  type: "retained";
  origin: string;
  topic: string;
  /** The new retained message; absent when the topic's retained message was cleared. */
  message?: MessageRecord;
}

/**
 * A node's script found Redis gone back to older data and emptied the cluster's keys
 * (`_bus_scripts.ts`, `rolled_back`): every other node runs its heartbeat at once, which finds
 * the epoch gone and registers it again, rather than at its next turn. (A node's stream reader
 * sees the emptying too when Redis unblocks its read as its stream goes, Redis 7 and later. A
 * node of an older release counts the frame as malformed and learns at its heartbeat.)
 */
export interface EmptiedFrame {
  type: "emptied";
  /** The node whose script emptied the cluster. */
  origin: string;
}

/** Any frame of the bus. */
/**
 * A subscription the client was granted (its options, and its 5.0 Subscription Identifier),
 * as a `subscribed` frame carries it.
 */
export interface SubscribedEntry {
  /** The topic filter. */
  topic: string;
  /** The maximum QoS granted. */
  qos: 0 | 1 | 2;
  /** 5.0 No Local. */
  noLocal?: boolean;
  /** 5.0 Retain As Published. */
  retainAsPublished?: boolean;
  /** 5.0 Retain Handling. */
  retainHandling?: 0 | 1 | 2;
  /** 5.0 Subscription Identifier. */
  identifier?: number;
}

/**
 * To the node holding a client's session: a provisional session of its client on the sending
 * node (served while Redis was away there) gave way to that session, and left the subscriptions
 * its client made in it in Redis (`ClusterBus.pendSubscriptions`). The node adds what Redis holds
 * for the session (`ClusterSessions`), without moving it: its client may be connected there.
 * Since cluster protocol 3 the list is empty (Redis holds them); a list is still read.
 */
export interface SubscribedFrame {
  type: "subscribed";
  /** The node whose provisional session gave way. */
  origin: string;
  /** The client id. */
  clientId: string;
  /** The subscriptions granted (none since cluster protocol 3: Redis holds them). */
  subscriptions: SubscribedEntry[];
}

export type BusFrame =
  | MessageFrame
  | TakeoverFrame
  | SubscribedFrame
  | HandoffFrame
  | MembersFrame
  | InterestFrame
  | SyncFrame
  | LeftFrame
  | RetainedFrame
  | FenceFrame
  | EmptiedFrame;

/**
 * A fence: on the control channel, a node asks every other node to answer `id` in its stream;
 * the answer (`origin` the answering node) comes after every message that node had queued for
 * it, so once it is read, so is everything that node sent before it heard the question.
 */
export interface FenceFrame {
  type: "fence";
  /** The asking node (question) or the answering node (answer). */
  origin: string;
  /** The question's number, per asking node. */
  id: number;
}

const TYPES = [
  "message",
  "takeover",
  "interest",
  "sync",
  "left",
  "retained",
  "handoff",
  "members",
  "fence",
  "emptied",
  "subscribed",
] as const;
/** Type byte of a batch: several frames for one node in one Redis message. */
const BATCH = 255;

/**
 * The subscriptions of a `subscribed` frame, or of those left in Redis for a session
 * (`ClusterBus.pendingSubscriptions`, as a list), checked.
 *
 * @param json a JSON list of subscriptions
 * @returns the subscriptions
 * @throws {RangeError} If it is not JSON, or a subscription is malformed.
 */
export function subscribedEntries(json: string): SubscribedEntry[] {
  let list: unknown;
  try {
    list = JSON.parse(json);
  } catch {
    throw new RangeError("Cannot decode bus frame: subscriptions are not JSON");
  }
  if (
    !Array.isArray(list) ||
    !list.every((e) =>
      typeof e === "object" && e !== null &&
      // A filter and an identifier the subscription tree takes: it throws on others, and the
      // node adding them (`BrokerCore.mergeSubscriptions`) would die of it.
      subscriptionProblem(e.topic, e) === undefined
    )
  ) {
    throw new RangeError("Cannot decode bus frame: malformed subscriptions");
  }
  return list as SubscribedEntry[];
}

/**
 * A frame's field the receiving node cannot use: the frame is refused as malformed (counted,
 * logged), never handed on to the core, which would throw on it, or to clients.
 */
function refuse(what: string, problem: string | undefined): void {
  if (problem !== undefined) throw new RangeError(`Cannot decode bus frame: ${what}: ${problem}`);
}

function writeList(w: ByteWriter, list: readonly string[]): void {
  w.varint(list.length);
  for (const item of list) w.text(item);
}

function readList(r: ByteReader): string[] {
  const n = r.varint();
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(r.text());
  return out;
}

/**
 * Encodes a frame.
 *
 * @param frame the frame
 * @returns its bytes
 *
 * @example
 * ```ts
 * import { decodeFrame, encodeFrame } from "./bus_frame.ts";
 * import assert from "node:assert/strict";
 *
 * const frame = {
 *   type: "message" as const, origin: "n1", publisher: "c1", seq: 7,
 *   message: { topic: "a/b", payload: new Uint8Array([0, 1, 255]), qos: 1 as const, retain: false },
 * };
 * assert.deepEqual(decodeFrame(encodeFrame(frame)), frame);
 * ```
 */
export function encodeFrame(frame: BusFrame): Uint8Array {
  return writeFrame(new ByteWriter(), frame).finish();
}

/**
 * Appends a frame's encoding to a writer (what {@linkcode encodeFrame} returns): a bus encodes
 * each forwarded message into one reused writer, without a buffer of its own.
 *
 * @param w the writer
 * @param frame the frame
 * @returns `w`
 */
export function writeFrame(w: ByteWriter, frame: BusFrame): ByteWriter {
  w.u8(VERSION).u8(TYPES.indexOf(frame.type)).text(frame.origin);
  switch (frame.type) {
    case "message":
      w.text(frame.publisher).varint(frame.seq);
      writeList(w, frame.shares ?? []);
      // The order as a float64 (exact below 2^53): cheaper to write than its 8-byte varint.
      w.u8(frame.only === true ? 1 : 0).f64(frame.order ?? 0);
      writeMessage(w, frame.message);
      break;
    case "takeover":
      w.text(frame.clientId);
      break;
    case "subscribed":
      w.text(frame.clientId).text(JSON.stringify(frame.subscriptions));
      break;
    case "handoff":
      w.text(frame.clientId);
      writeList(w, Object.entries(frame.marks ?? {}).flatMap(([node, n]) => [node, String(n)]));
      break;
    case "members":
      w.text(frame.filter).varint(frame.count);
      break;
    case "fence":
      w.varint(frame.id);
      break;
    case "emptied":
      break;
    case "interest":
      w.u8(frame.add ? 1 : 0);
      writeList(w, frame.filters);
      break;
    case "sync":
      writeList(w, frame.filters);
      break;
    case "left":
      w.text(frame.node).u8(frame.graceful ? 1 : 0);
      writeList(w, frame.clients);
      break;
    case "retained":
      w.text(frame.topic).u8(frame.message === undefined ? 0 : 1);
      if (frame.message !== undefined) writeMessage(w, frame.message);
      break;
  }
  return w;
}

/**
 * Decodes a frame.
 *
 * @param bytes what {@linkcode encodeFrame} wrote
 * @param texts decodes its text fields (default: each decoded anew)
 * @returns the frame; a message frame's payload is a view into `bytes`
 * @throws {RangeError} If the bytes are truncated, of another version or of an unknown type.
 * @throws {TypeError} If a text field is not UTF-8.
 */
export function decodeFrame(bytes: Uint8Array, texts?: TextSource): BusFrame {
  const r = new ByteReader(bytes, texts);
  const version = r.u8();
  if (version !== VERSION) throw new RangeError(`Cannot decode bus frame: version ${version}`);
  const type = TYPES[r.u8()];
  const origin = r.text();
  switch (type) {
    case "message": {
      const publisher = r.text();
      const seq = r.varint();
      const shares = readList(r);
      const only = r.u8();
      const order = r.f64();
      // The payload stays a view into the bytes read from Redis (a fresh buffer per read): the
      // broker copies it out when it keeps the message, as for a PUBLISH it read.
      const message = readMessage(r, { view: true });
      refuse("message", messageProblem(message));
      for (const share of shares) refuse("shared group", shareProblem(share));
      const frame: MessageFrame = { type, origin, publisher, seq, message };
      if (shares.length > 0) frame.shares = shares;
      // A pass count (2 and more) from the one release that wrote it there reads as "only".
      if (only > 0 && shares.length > 0) frame.only = true;
      if (order > 0) frame.order = order;
      return frame;
    }
    case "takeover":
      return { type, origin, clientId: r.text() };
    case "subscribed": {
      const clientId = r.text();
      return { type, origin, clientId, subscriptions: subscribedEntries(r.text()) };
    }
    case "handoff": {
      const clientId = r.text();
      const list = readList(r);
      if (list.length === 0) return { type, origin, clientId };
      const marks: Record<string, number> = {};
      for (let i = 0; i + 1 < list.length; i += 2) {
        const mark = Number(list[i + 1]);
        if (!(mark >= 0)) refuse("handoff mark", `"${list[i + 1]}" is not an order`);
        marks[list[i]!] = mark;
      }
      return { type, origin, clientId, marks };
    }
    case "members": {
      const filter = r.text();
      refuse("members", shareProblem(filter));
      return { type, origin, filter, count: r.varint() };
    }
    case "fence":
      return { type, origin, id: r.varint() };
    case "emptied":
      return { type, origin };
    case "interest": {
      const add = r.u8() === 1;
      return { type, origin, add, filters: fitAll(readList(r)) };
    }
    case "sync":
      return { type, origin, filters: fitAll(readList(r)) };
    case "left": {
      const node = r.text();
      const graceful = r.u8() === 1;
      return { type, origin, node, graceful, clients: readList(r) };
    }
    case "retained": {
      const topic = r.text();
      // Retained messages are kept by topic name [MQTT-3.3.1-5]; a wildcard one would match
      // subscriptions it must not.
      refuse("retained topic", validateTopicName(topic));
      if (r.u8() === 0) return { type, origin, topic };
      const message = readMessage(r);
      refuse("retained message", messageProblem(message));
      if (message.topic !== topic) refuse("retained message", "topic differs from the frame's");
      return { type, origin, topic, message };
    }
    default:
      throw new RangeError("Cannot decode bus frame: unknown type");
  }
}

/**
 * A topic or filter of a frame, refused past `MAX_TOPIC_LENGTH` as malformed: this release
 * never writes one (every entry point refuses it), and no map of the broker may hold one
 * (topic_length.ts).
 */
function fit(topic: string): string {
  if (exceedsTopicLength(topic)) throw new RangeError("Cannot decode bus frame: topic too long");
  return topic;
}

function fitAll(topics: string[]): string[] {
  for (const topic of topics) fit(topic);
  return topics;
}

/**
 * Packs frames for one node into one batch, so that the messages of one event-loop turn cost one
 * Redis command instead of one each. Their order is kept.
 *
 * @param frames encoded frames
 * @returns the batch's bytes
 *
 * @example
 * ```ts
 * import { decodeFrames, encodeBatch, encodeFrame } from "./bus_frame.ts";
 * import assert from "node:assert/strict";
 *
 * const a = { type: "takeover" as const, origin: "n1", clientId: "a" };
 * const b = { type: "takeover" as const, origin: "n1", clientId: "b" };
 * assert.deepEqual(decodeFrames(encodeBatch([encodeFrame(a), encodeFrame(b)])), [a, b]);
 * assert.deepEqual(decodeFrames(encodeFrame(a)), [a]);
 * ```
 */
export function encodeBatch(frames: readonly Uint8Array[]): Uint8Array {
  const batch = new FrameBatch();
  for (const frame of frames) batch.add(frame);
  return batch.finish();
}

/**
 * A batch of frames for one node being written: frames are appended as they come (each a
 * length and its bytes), and the batch's bytes are one copy at the end, its count filled in.
 */
export class FrameBatch {
  readonly #w = new ByteWriter().u8(VERSION).u8(BATCH).u8(0).u8(0).u8(0).u8(0);
  #count = 0;

  /** Frames added. */
  get count(): number {
    return this.#count;
  }

  /** Bytes so far. */
  get length(): number {
    return this.#w.length;
  }

  /**
   * Appends an encoded frame.
   *
   * @param frame its bytes (copied)
   */
  add(frame: Uint8Array): void {
    this.#w.bytes(frame);
    this.#count++;
  }

  /**
   * The batch's bytes: the only frame alone when there is one.
   *
   * @returns the bytes
   */
  finish(): Uint8Array {
    if (this.#count === 1) {
      const r = new ByteReader(this.#w.view().subarray(6));
      return r.view().slice();
    }
    const out = this.#w.finish();
    new DataView(out.buffer).setUint32(2, this.#count);
    return out;
  }
}

/**
 * Decodes a frame or a batch of frames.
 *
 * @param bytes what {@linkcode encodeFrame} or {@linkcode encodeBatch} wrote
 * @param texts decodes their text fields (default: each decoded anew)
 * @returns the frames, in order; a message frame's payload is a view into `bytes`
 * @throws {RangeError} If the bytes are truncated, of another version or of an unknown type.
 * @throws {TypeError} If a text field is not UTF-8.
 */
export function decodeFrames(bytes: Uint8Array, texts?: TextSource): BusFrame[] {
  if (bytes.length < 2 || bytes[1] !== BATCH) return [decodeFrame(bytes, texts)];
  const r = new ByteReader(bytes);
  const version = r.u8();
  if (version !== VERSION) throw new RangeError(`Cannot decode bus frame: version ${version}`);
  r.u8();
  const count = (r.u8() << 24 | r.u8() << 16 | r.u8() << 8 | r.u8()) >>> 0;
  const out: BusFrame[] = [];
  for (let i = 0; i < count; i++) out.push(decodeFrame(r.view(), texts));
  return out;
}
