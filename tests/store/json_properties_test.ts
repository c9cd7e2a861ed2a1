// The JSON-safe encoding of MQTT 5.0 message properties kept in stored message records.
import assert from "node:assert/strict";
import { propertiesFromJson, propertiesToJson } from "../../src/store/json_properties.ts";
import type { Properties } from "../../src/packet/types.ts";

Deno.test("propertiesToJson keeps the message properties and survives JSON text unchanged", () => {
  const properties: Properties = {
    payloadFormatIndicator: 1,
    contentType: "application/json; charset=utf-8",
    responseTopic: "replies/😀",
    correlationData: new Uint8Array([0, 1, 2, 253, 254, 255]),
    userProperties: [["k", "v"], ["k", "again"], ["", ""]],
  };
  const json = propertiesToJson(properties)!;
  assert.deepEqual(json, {
    payloadFormatIndicator: 1,
    contentType: "application/json; charset=utf-8",
    responseTopic: "replies/😀",
    correlationData: "AAEC/f7/",
    userProperties: [["k", "v"], ["k", "again"], ["", ""]],
  });
  assert.deepEqual(propertiesFromJson(JSON.parse(JSON.stringify(json))), properties);
});

Deno.test("propertiesToJson leaves out per-delivery and per-connection properties", () => {
  // Subscription identifiers and the topic alias belong to one delivery; the expiry interval is
  // kept as the record's absolute deadline instead.
  assert.equal(
    propertiesToJson({
      subscriptionIdentifier: [4],
      topicAlias: 3,
      messageExpiryInterval: 60,
      userProperties: [],
    }),
    undefined,
  );
  assert.equal(propertiesToJson(undefined), undefined);
  assert.deepEqual(propertiesToJson({ topicAlias: 3, contentType: "t" }), { contentType: "t" });
});

Deno.test("propertiesFromJson of an empty correlation data gives empty bytes", () => {
  const json = propertiesToJson({ correlationData: new Uint8Array(0) })!;
  assert.deepEqual(json, { correlationData: "" });
  assert.deepEqual(propertiesFromJson(json).correlationData, new Uint8Array(0));
});
