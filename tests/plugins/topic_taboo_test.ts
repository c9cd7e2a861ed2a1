import assert from "node:assert/strict";
import { TABOO_TOPICS, TopicTabooPlugin } from "../../src/plugins/topic_taboo.ts";
import { client } from "./_helpers.ts";

Deno.test("TopicTabooPlugin lists aMQTT's three taboo topics", () => {
  assert.deepEqual(TABOO_TOPICS, ["prohibited", "top-secret", "data/classified"]);
});

Deno.test("TopicTabooPlugin refuses taboo topics for every action to non-admin users", () => {
  const taboo = new TopicTabooPlugin();
  for (const who of [client("bob"), client()]) {
    for (const topic of TABOO_TOPICS) {
      assert.equal(taboo.authorizePublish(who, topic), false, topic);
      assert.equal(taboo.authorizeSubscribe(who, topic), false, topic);
      assert.equal(taboo.authorizeReceive(who, topic), false, topic);
    }
  }
});

Deno.test("TopicTabooPlugin abstains for admin and for other topics", () => {
  const taboo = new TopicTabooPlugin();
  for (const topic of TABOO_TOPICS) {
    assert.equal(taboo.authorizePublish(client("admin"), topic), undefined);
    assert.equal(taboo.authorizeSubscribe(client("admin"), topic), undefined);
    assert.equal(taboo.authorizeReceive(client("admin"), topic), undefined);
  }
  for (const topic of ["allowed", "data/public", "prohibited/sub", "Top-Secret"]) {
    assert.equal(taboo.authorizePublish(client("bob"), topic), undefined, topic);
  }
});

Deno.test("TopicTabooPlugin compares subscriptions exactly; delivery is caught at receive", () => {
  const taboo = new TopicTabooPlugin();
  assert.equal(taboo.authorizeSubscribe(client("bob"), "#"), undefined);
  assert.equal(taboo.authorizeSubscribe(client("bob"), "data/+"), undefined);
  assert.equal(taboo.authorizeReceive(client("bob"), "data/classified"), false);
});
