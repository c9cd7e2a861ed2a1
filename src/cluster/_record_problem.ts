/**
 * Checks of what a node reads from another node through Redis (bus frames, retained records)
 * before it reaches the broker core: a message record whose topic, properties or identifiers the
 * core, the subscription tree or the packet encoder would throw on (or send on to clients as a
 * protocol error) is refused here, as malformed, instead. Another node's bug, an older release or
 * a hand-written key must never end this node (a throw in a promise callback is an unhandled
 * rejection) nor reach its clients.
 *
 * @module
 */

import type { MessageRecord } from "../store/message_record.ts";
import { validateTopicFilter } from "../topic/validate_topic_filter.ts";
import { validateTopicName } from "../topic/validate_topic_name.ts";
import { parseSharedFilter } from "../topic/shared_filter.ts";

/** The largest Subscription Identifier, a Variable Byte Integer (5.0 section 3.8.2.1.2). */
const MAX_IDENTIFIER = 268_435_455;

function isText(v: unknown): v is string {
  return typeof v === "string";
}

/** Why stored 5.0 properties (`JsonProperties`) cannot be used, or undefined. */
function propertiesProblem(p: unknown): string | undefined {
  if (typeof p !== "object" || p === null || Array.isArray(p)) return "properties not an object";
  const o = p as Record<string, unknown>;
  const pfi = o.payloadFormatIndicator;
  if (pfi !== undefined && pfi !== 0 && pfi !== 1) return "bad payload format indicator";
  if (o.contentType !== undefined && !isText(o.contentType)) return "bad content type";
  // A Response Topic is a topic name [MQTT-3.3.2-14].
  if (
    o.responseTopic !== undefined &&
    (!isText(o.responseTopic) || validateTopicName(o.responseTopic) !== undefined)
  ) {
    return "bad response topic";
  }
  if (o.correlationData !== undefined) {
    try {
      if (!isText(o.correlationData)) throw new TypeError();
      Uint8Array.fromBase64(o.correlationData);
    } catch {
      return "bad correlation data";
    }
  }
  const user = o.userProperties;
  if (
    user !== undefined &&
    (!Array.isArray(user) ||
      !user.every((pair) =>
        Array.isArray(pair) && pair.length === 2 && isText(pair[0]) && isText(pair[1])
      ))
  ) {
    return "bad user properties";
  }
  return undefined;
}

/**
 * Why a message record read from another node cannot be routed, or undefined when it can: its
 * topic must be a topic name (no wildcard, not empty) [MQTT-3.3.2-2] [MQTT-4.7.3-1], its
 * properties of the stored shape, its subscription identifiers in range.
 *
 * @param m the record
 * @returns the problem, or undefined
 */
export function messageProblem(m: MessageRecord): string | undefined {
  const topic = validateTopicName(m.topic);
  if (topic !== undefined) return topic;
  if (m.properties !== undefined) {
    const problem = propertiesProblem(m.properties);
    if (problem !== undefined) return problem;
  }
  if (m.expiresAt !== undefined && Number.isNaN(m.expiresAt)) return "expiry is not a number";
  if (
    m.subscriptionIdentifiers !== undefined &&
    !m.subscriptionIdentifiers.every((id) => id > 0 && id <= MAX_IDENTIFIER)
  ) {
    return "subscription identifier out of range";
  }
  return undefined;
}

/**
 * Why a subscription read from another node (a `subscribed` frame's entry, a stored subscription
 * row) cannot be added to a session, or undefined: its filter must be one the subscription tree
 * takes [MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.3-1] (it throws on others), its QoS and options in range, its
 * identifier 1 to 268,435,455 (5.0 section 3.8.2.1.2).
 *
 * @param filter the topic filter (`topic` in a frame, `filter` in a row)
 * @param s the subscription's fields
 * @returns the problem, or undefined
 */
export function subscriptionProblem(
  filter: unknown,
  s: Record<string, unknown>,
): string | undefined {
  if (!isText(filter)) return "filter is not text";
  const problem = validateTopicFilter(filter);
  if (problem !== undefined) return `"${filter}": ${problem}`;
  const level = (v: unknown) => v === 0 || v === 1 || v === 2;
  const optional = (v: unknown, ok: (v: unknown) => boolean) => v === undefined || ok(v);
  const bool = (v: unknown) => typeof v === "boolean";
  if (!level(s.qos)) return `"${filter}": bad QoS`;
  if (
    !optional(s.noLocal, bool) || !optional(s.retainAsPublished, bool) ||
    !optional(s.retainHandling, level)
  ) {
    return `"${filter}": bad options`;
  }
  const id = s.identifier;
  if (
    !optional(
      id,
      (v) => Number.isInteger(v) && (v as number) > 0 && (v as number) <= MAX_IDENTIFIER,
    )
  ) {
    return `"${filter}": subscription identifier out of range`;
  }
  return undefined;
}

/**
 * Why a shared group's name (`$share/{group}/{filter}`) read from another node is not one, or
 * undefined.
 *
 * @param filter the group
 * @returns the problem, or undefined
 */
export function shareProblem(filter: string): string | undefined {
  if (parseSharedFilter(filter) === undefined) return `not a shared subscription: "${filter}"`;
  return validateTopicFilter(filter);
}
