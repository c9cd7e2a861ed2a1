/**
 * MQTT 5.0 message properties in a JSON-safe form, so a stored message record can be written as
 * text (SQLite, Redis, a log) and read back unchanged.
 *
 * @module
 */

import type { Properties } from "../packet/types.ts";

/**
 * The properties a stored application message keeps, JSON-safe: binary fields are base64 text.
 * Per-delivery properties (subscription identifiers, topic alias) and the expiry interval (kept
 * as an absolute deadline in the record instead) are not part of it.
 */
export interface JsonProperties {
  /** 0 unspecified bytes, 1 UTF-8 payload. */
  payloadFormatIndicator?: number;
  /** MIME type of the payload. */
  contentType?: string;
  /** Topic name for a response message. */
  responseTopic?: string;
  /** Correlation data, base64. */
  correlationData?: string;
  /** Name/value pairs, in order; names may repeat. */
  userProperties?: [string, string][];
}

/**
 * Encodes the message properties of a PUBLISH or will for storage. Returns `undefined` when none
 * of them is set, so records of MQTT 3.1.1 messages carry no properties at all.
 *
 * @param properties the properties as decoded from the packet
 * @returns the JSON-safe form, or `undefined` when there is nothing to keep
 *
 * @example
 * ```ts
 * import { propertiesFromJson, propertiesToJson } from "./json_properties.ts";
 * import assert from "node:assert/strict";
 *
 * const json = propertiesToJson({ correlationData: new Uint8Array([1, 2]), contentType: "a/b" });
 * assert.deepEqual(json, { contentType: "a/b", correlationData: "AQI=" });
 * assert.deepEqual(propertiesFromJson(JSON.parse(JSON.stringify(json))).correlationData, new Uint8Array([1, 2]));
 * ```
 */
export function propertiesToJson(properties: Properties | undefined): JsonProperties | undefined {
  if (properties === undefined) return undefined;
  const out: JsonProperties = {};
  let any = false;
  if (properties.payloadFormatIndicator !== undefined) {
    out.payloadFormatIndicator = properties.payloadFormatIndicator;
    any = true;
  }
  if (properties.contentType !== undefined) {
    out.contentType = properties.contentType;
    any = true;
  }
  if (properties.responseTopic !== undefined) {
    out.responseTopic = properties.responseTopic;
    any = true;
  }
  if (properties.correlationData !== undefined) {
    out.correlationData = properties.correlationData.toBase64();
    any = true;
  }
  if (properties.userProperties !== undefined && properties.userProperties.length > 0) {
    out.userProperties = properties.userProperties.map(([name, value]) => [name, value]);
    any = true;
  }
  return any ? out : undefined;
}

/**
 * Decodes stored properties back into packet properties.
 *
 * @param json the stored form
 * @returns the properties, with binary fields as bytes again
 *
 * @example
 * ```ts
 * import { propertiesFromJson } from "./json_properties.ts";
 * import assert from "node:assert/strict";
 *
 * const props = propertiesFromJson({ userProperties: [["k", "v"]] });
 * assert.deepEqual(props.userProperties, [["k", "v"]]);
 * ```
 */
export function propertiesFromJson(json: JsonProperties): Properties {
  const out: Properties = {};
  if (json.payloadFormatIndicator !== undefined) {
    out.payloadFormatIndicator = json.payloadFormatIndicator;
  }
  if (json.contentType !== undefined) out.contentType = json.contentType;
  if (json.responseTopic !== undefined) out.responseTopic = json.responseTopic;
  if (json.correlationData !== undefined) {
    out.correlationData = Uint8Array.fromBase64(json.correlationData);
  }
  if (json.userProperties !== undefined) {
    out.userProperties = json.userProperties.map(([name, value]) => [name, value]);
  }
  return out;
}
