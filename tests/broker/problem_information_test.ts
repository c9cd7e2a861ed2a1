// mayCarryProblemInformation: Request Problem Information 0 keeps Reason Strings and User
// Properties off every packet but PUBLISH, CONNACK and DISCONNECT.

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/constants.ts";
import { mayCarryProblemInformation } from "../../src/broker/problem_information.ts";

Deno.test("mayCarryProblemInformation (MQTT 5) allows only PUBLISH, CONNACK and DISCONNECT when the client asked for none [MQTT-3.1.2-29]", () => {
  const allowed = [PacketType.PUBLISH, PacketType.CONNACK, PacketType.DISCONNECT];
  const others = [
    PacketType.PUBACK,
    PacketType.PUBREC,
    PacketType.PUBREL,
    PacketType.PUBCOMP,
    PacketType.SUBACK,
    PacketType.UNSUBACK,
    PacketType.AUTH,
  ];
  for (const type of allowed) assert.equal(mayCarryProblemInformation(type, 0), true);
  for (const type of others) {
    assert.equal(mayCarryProblemInformation(type, 0), false);
    assert.equal(mayCarryProblemInformation(type, 1), true);
    assert.equal(mayCarryProblemInformation(type, undefined), true);
  }
});
