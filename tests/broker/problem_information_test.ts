// mayCarryProblemInformation: Request Problem Information 0 keeps Reason Strings and User
// Properties off every packet but PUBLISH, CONNACK and DISCONNECT.

import assert from "node:assert/strict";
import { PacketType } from "../../src/packet/constants.ts";
import {
  mayCarryProblemInformation,
  withProblemInformation,
} from "../../src/broker/problem_information.ts";
import { encodePacket, type SubackPacket } from "../../src/packet/mod.ts";

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

Deno.test("withProblemInformation (MQTT 5) keeps a SUBACK's Reason String and User Properties within the client's Maximum Packet Size [MQTT-3.9.2-1] [MQTT-3.9.2-2]", () => {
  const suback: SubackPacket = { type: PacketType.SUBACK, packetId: 3, reasonCodes: [0x87] };
  const info = { reasonString: "r".repeat(40), userProperties: [["a", "b".repeat(40)]] } as {
    reasonString: string;
    userProperties: [string, string][];
  };
  assert.equal(withProblemInformation(suback, info, { maximumPacketSize: 20 }), suback);
  const some = withProblemInformation(suback, info, { maximumPacketSize: 60 });
  assert.equal(some.properties?.reasonString, info.reasonString);
  assert.equal(some.properties?.userProperties, undefined);
  assert.ok(encodePacket(some, 5).length <= 60);
  const all = withProblemInformation(suback, info, {});
  assert.deepEqual(all.properties, info);
  // Request Problem Information 0: none on a SUBACK at all [MQTT-3.1.2-29].
  assert.equal(withProblemInformation(suback, info, { requestProblemInformation: 0 }), suback);
});

Deno.test("withProblemInformation (MQTT 5) keeps an AUTH's Reason String within the client's Maximum Packet Size [MQTT-3.15.2-2] [MQTT-3.15.2-3]", () => {
  const auth = {
    type: PacketType.AUTH,
    reasonCode: 0x18,
    properties: { authenticationMethod: "SCRAM-SHA-256" },
  } as const;
  const info = { reasonString: "continue", userProperties: [["step", "2"]] } as {
    reasonString: string;
    userProperties: [string, string][];
  };
  const tight = withProblemInformation(auth, info, { maximumPacketSize: 22 });
  assert.deepEqual(tight.properties, { authenticationMethod: "SCRAM-SHA-256" });
  const roomy = withProblemInformation(auth, info, { maximumPacketSize: 100 });
  assert.deepEqual(roomy.properties, { authenticationMethod: "SCRAM-SHA-256", ...info });
});
