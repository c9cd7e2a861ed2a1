import assert from "node:assert/strict";
import { TopicAccessControlListPlugin } from "../../src/plugins/topic_acl.ts";
import { filterCovers, isValidFilter } from "../../src/plugins/_filter_cover.ts";
import { client } from "./_helpers.ts";

const covers = (entry: string, filter: string) => filterCovers(entry.split("/"), filter.split("/"));

// --- the matcher ------------------------------------------------------------------------------

Deno.test("filterCovers matches topic names as subscriptions do [MQTT-4.7.1-2] [MQTT-4.7.1-3]", () => {
  const yes: [string, string][] = [
    ["a/b", "a/b"],
    ["a/+", "a/b"],
    ["+/b", "a/b"],
    ["a/#", "a/b/c"],
    ["a/#", "a"], // # includes the parent level
    ["#", "a/b/c"],
    ["+", "a"],
    ["a/+/c", "a//c"], // empty level
    ["+/+", "/x"],
    ["/#", "/a"],
    ["$SYS/#", "$SYS/broker/uptime"],
    ["$SYS/+/uptime", "$SYS/broker/uptime"],
  ];
  const no: [string, string][] = [
    ["a/b", "a/c"],
    ["a/b", "a/b/c"],
    ["a/+", "a/b/c"],
    ["a/+", "a"],
    ["+", "a/b"],
    ["a/b/#", "a"],
    ["#", "$SYS/broker"], // [MQTT-4.7.2-1]
    ["+/broker", "$SYS/broker"], // [MQTT-4.7.2-1]
    ["A/b", "a/b"], // case-sensitive
  ];
  for (const [entry, topic] of yes) assert.equal(covers(entry, topic), true, `${entry} ⊇ ${topic}`);
  for (const [entry, topic] of no) assert.equal(covers(entry, topic), false, `${entry} ⊉ ${topic}`);
});

Deno.test("filterCovers decides whether an entry covers a subscribed filter", () => {
  const yes: [string, string][] = [
    ["a/#", "a/+/b"],
    ["a/#", "a/#"],
    ["a/#", "a"],
    ["a/#", "a/+"],
    ["#", "#"],
    ["#", "+/+"],
    ["+/#", "+/b/#"],
    ["+/#", "#"], // every topic has a first level
    ["a/+", "a/+"],
    ["a/+", "a/b"],
    ["a/+/#", "a/+"],
    ["+", "+"],
    ["$SYS/#", "$SYS/+/x"],
  ];
  const no: [string, string][] = [
    ["a/+", "a/#"],
    ["a/+", "a/b/c"],
    ["a/b", "a/+"],
    ["a/b", "a/#"],
    ["a/+/b", "a/#"],
    ["+", "#"],
    ["a/+/#", "a/#"], // a/# matches a, a/+/# does not
    ["#", "$SYS/#"], // [MQTT-4.7.2-1]: # never reaches $ topics, $SYS/# does
    ["+/#", "$SYS/broker"],
    ["a/b/#", "a/#"],
  ];
  for (const [entry, f] of yes) assert.equal(covers(entry, f), true, `${entry} covers ${f}`);
  for (const [entry, f] of no) {
    assert.equal(covers(entry, f), false, `${entry} does not cover ${f}`);
  }
});

// An independent, naive matcher for the brute-force comparison below.
function naiveMatch(f: string[], t: string[], i = 0, j = 0): boolean {
  // [MQTT-4.7.2-1]: a wildcard in the first level does not match a $ topic.
  if (i === 0 && t[0].startsWith("$") && (f[0] === "+" || f[0] === "#")) return false;
  if (i === f.length) return j === t.length;
  if (f[i] === "#") return true; // the rest, including the parent level
  if (j === t.length) return false;
  if (f[i] !== "+" && f[i] !== t[j]) return false;
  return naiveMatch(f, t, i + 1, j + 1);
}

Deno.test("filterCovers agrees with brute force over a small universe of topics", () => {
  // An entry covers a filter exactly when every topic the filter matches is matched by the entry.
  // Topics go one level deeper than any filter, so a trailing # is tested at more than one depth.
  const words = ["a", "b"];
  const topics: string[][] = [];
  const growTopics = (prefix: string[]) => {
    if (prefix.length > 0) topics.push(prefix);
    if (prefix.length === 4) return;
    for (const w of prefix.length === 0 ? [...words, "$s", ""] : [...words, ""]) {
      growTopics([...prefix, w]);
    }
  };
  growTopics([]);
  const filters: string[][] = [];
  const growFilters = (prefix: string[]) => {
    if (prefix.length > 0) filters.push(prefix);
    if (prefix.length === 3 || prefix.at(-1) === "#") return;
    for (const w of prefix.length === 0 ? [...words, "$s", "+", "#"] : [...words, "+", "#"]) {
      growFilters([...prefix, w]);
    }
  };
  growFilters([]);
  let covered = 0;
  for (const entry of filters) {
    for (const filter of filters) {
      const brute = topics.every((t) => !naiveMatch(filter, t) || naiveMatch(entry, t));
      assert.equal(
        filterCovers(entry, filter),
        brute,
        `${entry.join("/")} vs ${filter.join("/")}`,
      );
      if (brute) covered++;
    }
  }
  assert.ok(filters.length > 60 && covered > 100, `${filters.length} filters, ${covered} covered`);
});

Deno.test("filterCovers matches topic names like the naive matcher", () => {
  for (const entry of [["a", "+"], ["#"], ["+", "#"], ["$s", "#"], ["a", "b"]]) {
    for (const topic of [["a"], ["a", "b"], ["$s", "b"], ["a", "b", "c"], ["", "b"]]) {
      assert.equal(filterCovers(entry, topic), naiveMatch(entry, topic), `${entry} ${topic}`);
    }
  }
});

Deno.test("isValidFilter follows [MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.3-1]", () => {
  for (const f of ["a", "a/b", "#", "+", "a/+/b", "a/#", "+/+", "/", "$SYS/#", "a//b"]) {
    assert.equal(isValidFilter(f), true, f);
  }
  for (const f of ["", "a/#/b", "a#", "a/b+", "#/a", "a/+b", "a\u0000b"]) {
    assert.equal(isValidFilter(f), false, JSON.stringify(f));
  }
});

// --- the plugin -------------------------------------------------------------------------------

Deno.test("TopicAccessControlListPlugin subscribe: covered filters allowed, others refused", () => {
  const acl = new TopicAccessControlListPlugin({
    subscribeAcl: { alice: ["home/#", "status/+"], anonymous: ["public/#"] },
  });
  const alice = client("alice");
  assert.equal(acl.authorizeSubscribe!(alice, "home/+/temp"), true);
  assert.equal(acl.authorizeSubscribe!(alice, "home/#"), true);
  assert.equal(acl.authorizeSubscribe!(alice, "home"), true);
  assert.equal(acl.authorizeSubscribe!(alice, "status/x"), true);
  assert.equal(acl.authorizeSubscribe!(alice, "status/+"), true);
  assert.equal(acl.authorizeSubscribe!(alice, "status/#"), false);
  assert.equal(acl.authorizeSubscribe!(alice, "#"), false);
  assert.equal(acl.authorizeSubscribe!(alice, "public/x"), false);
  assert.equal(acl.authorizeSubscribe!(client(), "public/x"), true);
  assert.equal(acl.authorizeSubscribe!(client(""), "public/#"), true);
  assert.equal(acl.authorizeSubscribe!(client(), "home/x"), false);
});

Deno.test("TopicAccessControlListPlugin refuses users missing from a configured map", () => {
  const acl = new TopicAccessControlListPlugin({ subscribeAcl: { alice: ["#"], bob: null } });
  assert.equal(acl.authorizeSubscribe!(client("carol"), "a"), false);
  assert.equal(acl.authorizeSubscribe!(client(), "a"), false); // no `anonymous` entry
  assert.equal(acl.authorizeSubscribe!(client("bob"), "a"), false); // listed with nothing
  const empty = new TopicAccessControlListPlugin({ publishAcl: {} });
  assert.equal(empty.authorizePublish!(client("alice"), "a"), false);
});

Deno.test("TopicAccessControlListPlugin defines no hook for an unset map", () => {
  const none = new TopicAccessControlListPlugin({});
  assert.equal(none.authorizePublish, undefined);
  assert.equal(none.authorizeSubscribe, undefined);
  assert.equal(none.authorizeReceive, undefined);
  const pubOnly = new TopicAccessControlListPlugin({ publishAcl: { alice: ["a"] } });
  assert.equal(typeof pubOnly.authorizePublish, "function");
  // aMQTT's plugins: form refused every SUBSCRIBE when `acl` was unset; here it is unrestricted.
  assert.equal(pubOnly.authorizeSubscribe, undefined);
});

Deno.test("TopicAccessControlListPlugin treats legacy acl as the subscribe map", () => {
  const legacy = new TopicAccessControlListPlugin({ acl: { alice: ["a/#"] } });
  assert.equal(legacy.authorizeSubscribe!(client("alice"), "a/b"), true);
  assert.equal(legacy.authorizeSubscribe!(client("alice"), "b"), false);
  assert.equal(legacy.authorizePublish, undefined);
  const both = new TopicAccessControlListPlugin({
    acl: { alice: ["a/#"] },
    subscribeAcl: { alice: ["b/#"] },
  });
  assert.equal(both.authorizeSubscribe!(client("alice"), "b/x"), true);
  assert.equal(both.authorizeSubscribe!(client("alice"), "a/x"), false);
});

Deno.test("TopicAccessControlListPlugin publish and receive match topic names", () => {
  const acl = new TopicAccessControlListPlugin({
    publishAcl: { alice: ["sensors/alice/+"], anonymous: ["guest/#"] },
    receiveAcl: { alice: ["sensors/#"], anonymous: ["guest/#", "#"] },
  });
  const alice = client("alice");
  assert.equal(acl.authorizePublish!(alice, "sensors/alice/temp"), true);
  assert.equal(acl.authorizePublish!(alice, "sensors/bob/temp"), false);
  assert.equal(acl.authorizePublish!(alice, "sensors/alice/temp/x"), false);
  assert.equal(acl.authorizePublish!(client(), "guest"), true);
  assert.equal(acl.authorizeReceive!(alice, "sensors/bob/temp"), true);
  assert.equal(acl.authorizeReceive!(alice, "other"), false);
  assert.equal(acl.authorizeReceive!(client(), "anything/at/all"), true);
  // [MQTT-4.7.2-1]: a leading wildcard does not reach $ topics.
  assert.equal(acl.authorizeReceive!(client(), "$SYS/broker/uptime"), false);
});

Deno.test("TopicAccessControlListPlugin checks $share subscriptions by their filter [MQTT-4.8.2-1]", () => {
  const acl = new TopicAccessControlListPlugin({ subscribeAcl: { alice: ["jobs/#"] } });
  const alice = client("alice");
  assert.equal(acl.authorizeSubscribe!(alice, "$share/workers/jobs/+"), true);
  assert.equal(acl.authorizeSubscribe!(alice, "$share/workers/other"), false);
  assert.equal(acl.authorizeSubscribe!(alice, "$share/workers/"), false);
  assert.equal(acl.authorizeSubscribe!(alice, "$share//jobs/x"), false);
  assert.equal(acl.authorizeSubscribe!(alice, "$share/a+b/jobs/x"), false);
});

Deno.test("TopicAccessControlListPlugin refuses invalid subscribed filters", () => {
  const acl = new TopicAccessControlListPlugin({ subscribeAcl: { alice: ["#"] } });
  assert.equal(acl.authorizeSubscribe!(client("alice"), "a/#/b"), false);
  assert.equal(acl.authorizeSubscribe!(client("alice"), "a/b#"), false);
  assert.equal(acl.authorizeSubscribe!(client("alice"), ""), false);
});

Deno.test("TopicAccessControlListPlugin gives admin no special access (unlike aMQTT's docs)", () => {
  const acl = new TopicAccessControlListPlugin({ publishAcl: { alice: ["a"] } });
  assert.equal(acl.authorizePublish!(client("admin"), "a"), false);
});

Deno.test("TopicAccessControlListPlugin rejects malformed configuration", () => {
  assert.throws(
    () => new TopicAccessControlListPlugin({ publishAcl: { alice: ["a/#/b"] } }),
    /publishAcl\.alice has an invalid topic filter "a\/#\/b"/,
  );
  assert.throws(
    () => new TopicAccessControlListPlugin({ acl: { alice: "a/#" as unknown as string[] } }),
    /acl\.alice must be a list/,
  );
  assert.throws(
    () =>
      new TopicAccessControlListPlugin({
        receiveAcl: ["a"] as unknown as Record<string, string[]>,
      }),
    /receiveAcl must map usernames/,
  );
  assert.throws(
    () => new TopicAccessControlListPlugin({ publishAcl: { alice: [42 as unknown as string] } }),
    TypeError,
  );
});

Deno.test("TopicAccessControlListPlugin matches very deep topics (no regex: aMQTT GHSA-2hjf-7455-w946)", () => {
  const acl = new TopicAccessControlListPlugin({
    publishAcl: { alice: ["+/".repeat(100) + "#", "a/".repeat(500) + "b"] },
  });
  assert.equal(acl.authorizePublish!(client("alice"), "a/".repeat(5000) + "c"), true);
  assert.equal(acl.authorizePublish!(client("alice"), "a/".repeat(99) + "c"), true); // 100 levels
  assert.equal(acl.authorizePublish!(client("alice"), "a/".repeat(98) + "c"), false); // 99 levels
  assert.equal(acl.authorizePublish!(client("alice"), "a/".repeat(500) + "b"), true);
});
