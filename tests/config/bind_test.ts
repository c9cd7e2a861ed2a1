import assert from "node:assert/strict";
import { ConfigError, parseBind } from "../../src/config/mod.ts";

Deno.test("parseBind accepts the aMQTT forms", () => {
  const cases: [string, number, string, number][] = [
    ["1883", 9, "0.0.0.0", 1883],
    [":1883", 9, "0.0.0.0", 1883],
    ["0.0.0.0:1883", 9, "0.0.0.0", 1883],
    ["127.0.0.1:1884", 9, "127.0.0.1", 1884],
    ["broker.example.com:8883", 9, "broker.example.com", 8883],
    ["localhost", 8883, "localhost", 8883],
    ["localhost:", 8883, "localhost", 8883],
    ["[::]:1883", 9, "::", 1883],
    ["[::1]", 8883, "::1", 8883],
    ["[fe80::1%eth0]:1883", 9, "fe80::1%eth0", 1883],
    ["", 1883, "0.0.0.0", 1883],
    ["127.0.0.1:0", 1883, "127.0.0.1", 0],
    [" :1883 ", 9, "0.0.0.0", 1883],
    ["0.0.0.0:65535", 9, "0.0.0.0", 65535],
  ];
  for (const [bind, defaultPort, hostname, port] of cases) {
    assert.deepEqual(parseBind(bind, defaultPort), { hostname, port }, bind);
  }
});

Deno.test("parseBind rejects malformed binds with a ConfigError at path bind", () => {
  const cases: [string, RegExp][] = [
    ["0.0.0.0:70000", /^bind: port 70000 is out of range 0-65535$/],
    ["::1", /looks like an IPv6 address: write it in brackets/],
    ["[::1", /has "\[" without a closing "\]"/],
    ["[::1]1883", /must be "\[address\]:port"/],
    ["[host]:1", /is not an IPv6 address/],
    ["bad host:1883", /"bad host" in "bad host:1883" is not a valid host/],
    ["h:18a3", /port "18a3" in "h:18a3" is not a number/],
    ["h:-1", /is not a number/],
  ];
  for (const [bind, message] of cases) {
    assert.throws(() => parseBind(bind, 1883), (error: unknown) => {
      assert.ok(error instanceof ConfigError, bind);
      assert.equal(error.path, "bind");
      assert.match(error.message, message);
      return true;
    });
  }
});

Deno.test("parseBind rejects a bad default port and a non-string bind as misuse", () => {
  assert.throws(() => parseBind(":1", 70000), RangeError);
  assert.throws(() => parseBind(":1", -1), RangeError);
  assert.throws(() => parseBind(1883 as unknown as string, 1883), TypeError);
});
