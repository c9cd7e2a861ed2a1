/**
 * Checks the MQTT 5.0 options of the client API and turns them into packet properties.
 *
 * @module
 */

import type { Properties, Subscription, UserProperty } from "../packet/types.ts";
import { validateTopicName } from "../topic/validate_topic_name.ts";
import type { ConnectOptions, SubscribeRequest } from "./mqtt_client.ts";
import type { PublishProperties, SubscribeOptions } from "./v5_options.ts";

const MAX_VBI = 268_435_455;

/** Throws a RangeError unless `value` is a whole number 0..2^32-1. */
export function checkUint32(value: number, operation: string, name: string): void {
  if (!(Number.isInteger(value) && value >= 0 && value <= 0xffffffff)) {
    throw new RangeError(`Cannot ${operation}: ${name} ${value} is not 0-4294967295`);
  }
}

function checkUint16(value: number, min: number, operation: string, name: string): void {
  if (!(Number.isInteger(value) && value >= min && value <= 65535)) {
    throw new RangeError(`Cannot ${operation}: ${name} ${value} is not ${min}-65535`);
  }
}

/** Checks user properties: an array of [name, value] string pairs. */
export function checkUserProperties(list: unknown, operation: string): UserProperty[] {
  if (!Array.isArray(list)) {
    throw new TypeError(`Cannot ${operation}: userProperties must be an array of [name, value]`);
  }
  for (const pair of list) {
    if (
      !Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== "string" ||
      typeof pair[1] !== "string"
    ) {
      throw new TypeError(
        `Cannot ${operation}: a user property is not a [name, value] string pair`,
      );
    }
  }
  return list as UserProperty[];
}

/** The CONNECT properties of the 5.0 connect options. */
export function connectProperties(
  options: ConnectOptions,
  maxPacketSize: number | undefined,
): Properties {
  const p: Properties = {};
  if (options.sessionExpiryInterval !== undefined) {
    checkUint32(options.sessionExpiryInterval, "connect", "sessionExpiryInterval");
    p.sessionExpiryInterval = options.sessionExpiryInterval;
  }
  if (options.receiveMaximum !== undefined) {
    // 0 is a Protocol Error (§3.1.2.11.3).
    checkUint16(options.receiveMaximum, 1, "connect", "receiveMaximum");
    p.receiveMaximum = options.receiveMaximum;
  }
  if (options.topicAliasMaximum !== undefined) {
    checkUint16(options.topicAliasMaximum, 0, "connect", "topicAliasMaximum");
    if (options.topicAliasMaximum > 0) p.topicAliasMaximum = options.topicAliasMaximum;
  }
  // The server must not send us anything larger [MQTT-3.1.2-24].
  if (maxPacketSize !== undefined) p.maximumPacketSize = Math.min(maxPacketSize, 0xffffffff);
  if (options.requestResponseInformation) p.requestResponseInformation = 1;
  if (options.requestProblemInformation === false) p.requestProblemInformation = 0;
  if (options.userProperties !== undefined) {
    p.userProperties = checkUserProperties(options.userProperties, "connect");
  }
  if (options.auth !== undefined) {
    if (typeof options.auth.method !== "string" || options.auth.method === "") {
      throw new TypeError("Cannot connect: auth.method must be a non-empty string");
    }
    if (typeof options.auth.challenge !== "function") {
      throw new TypeError("Cannot connect: auth.challenge must be a function");
    }
    p.authenticationMethod = options.auth.method;
  }
  return p;
}

/** The PUBLISH properties an application may set, checked and copied. */
export function publishProperties(given: PublishProperties | undefined): Properties | undefined {
  if (given === undefined) return undefined;
  const p: Properties = {};
  if (given.payloadFormatIndicator !== undefined) {
    if (given.payloadFormatIndicator !== 0 && given.payloadFormatIndicator !== 1) {
      throw new RangeError(
        `Cannot publish: payloadFormatIndicator ${given.payloadFormatIndicator} is not 0 or 1`,
      );
    }
    p.payloadFormatIndicator = given.payloadFormatIndicator;
  }
  if (given.messageExpiryInterval !== undefined) {
    checkUint32(given.messageExpiryInterval, "publish", "messageExpiryInterval");
    p.messageExpiryInterval = given.messageExpiryInterval;
  }
  if (given.contentType !== undefined) p.contentType = given.contentType;
  if (given.responseTopic !== undefined) {
    // The Response Topic is a topic name: no wildcards [MQTT-3.3.2-14].
    const problem = validateTopicName(given.responseTopic);
    if (problem !== undefined) {
      throw new TypeError(
        `Cannot publish: response topic "${given.responseTopic}": ${problem} [MQTT-3.3.2-14]`,
      );
    }
    p.responseTopic = given.responseTopic;
  }
  if (given.correlationData !== undefined) {
    if (!(given.correlationData instanceof Uint8Array)) {
      throw new TypeError("Cannot publish: correlationData must be a Uint8Array");
    }
    p.correlationData = given.correlationData;
  }
  if (given.userProperties !== undefined) {
    p.userProperties = checkUserProperties(given.userProperties, "publish");
  }
  return Object.keys(p).length > 0 ? p : undefined;
}

/** Copies the 5.0 subscription options of a request onto the subscription. */
export function subscriptionOptions(
  request: Exclude<SubscribeRequest, unknown[]>,
  sub: Subscription,
): void {
  if (request.noLocal !== undefined) sub.noLocal = request.noLocal === true;
  if (request.retainAsPublished !== undefined) {
    sub.retainAsPublished = request.retainAsPublished === true;
  }
  if (request.retainHandling !== undefined) {
    const rh = request.retainHandling;
    if (rh !== 0 && rh !== 1 && rh !== 2) {
      throw new RangeError(`Cannot subscribe: retainHandling ${rh} is not 0, 1 or 2`);
    }
    sub.retainHandling = rh;
  }
}

/** The SUBSCRIBE properties of the subscribe options. */
export function subscribeProperties(options: SubscribeOptions): Properties | undefined {
  const p: Properties = {};
  const id = options.subscriptionIdentifier;
  if (id !== undefined) {
    if (!(Number.isInteger(id) && id >= 1 && id <= MAX_VBI)) {
      throw new RangeError(`Cannot subscribe: subscriptionIdentifier ${id} is not 1-268435455`);
    }
    p.subscriptionIdentifier = [id];
  }
  if (options.userProperties !== undefined) {
    p.userProperties = checkUserProperties(options.userProperties, "subscribe");
  }
  return Object.keys(p).length > 0 ? p : undefined;
}
