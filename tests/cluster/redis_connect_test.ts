// Turning a Redis URL and options into an ioredis client (nothing is connected here).
import assert from "node:assert/strict";
import { createRedis, redactUrl } from "../../src/cluster/redis_connect.ts";

function optionsOf(...args: Parameters<typeof createRedis>) {
  const redis = createRedis(...args);
  const { host, port, db, username, password, tls } = redis.options;
  redis.disconnect();
  return { host, port, db, username, password, tls };
}

Deno.test("createRedis reads host, port, database and credentials from the URL", () => {
  assert.deepEqual(optionsOf({ url: "redis://u:p%40ss@10.0.0.5:6380/3" }), {
    host: "10.0.0.5",
    port: 6380,
    db: 3,
    username: "u",
    password: "p@ss",
    tls: undefined,
  });
  assert.deepEqual(optionsOf({ url: "redis://[::1]" }).host, "::1");
  assert.deepEqual(optionsOf({ url: "redis://h" }).port, 6379);
});

Deno.test("createRedis: explicit credentials win, rediss:// and tls options turn TLS on", () => {
  const o = optionsOf({ url: "rediss://a:b@h", username: "x", password: "y" });
  assert.deepEqual([o.username, o.password, o.tls], ["x", "y", { rejectUnauthorized: true }]);
  const t = optionsOf({ url: "redis://h", tls: { ca: "CA", rejectUnauthorized: false } });
  assert.deepEqual(t.tls, { ca: "CA", rejectUnauthorized: false });
});

Deno.test("createRedis refuses URLs that are not redis:// or rediss://", () => {
  assert.throws(() => createRedis({ url: "http://h" }), TypeError);
  assert.throws(() => createRedis({ url: "not a url" }), /Invalid Redis URL/);
  assert.throws(() => createRedis({ url: "redis://h/x" }), /bad database number/);
});

Deno.test("redactUrl hides the password", () => {
  assert.equal(redactUrl("redis://u:secret@h:1/0"), "redis://u:***@h:1/0");
  assert.equal(redactUrl("redis://h"), "redis://h");
});
