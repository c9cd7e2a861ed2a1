/**
 * The MQTT 5.0 normative table (tests/conformance/mqtt5_normative.json) against the test suite:
 * see tests/conformance/README.md for how to add coverage.
 */

import assert from "node:assert/strict";
import {
  coverage,
  formatProblems,
  loadTable,
  malformedCitationProblems,
  missingTestProblems,
  type NormativeTable,
  uncoveredProblems,
  unknownCitationProblems,
} from "./_normative_table.ts";
import { citesMqtt5, scanTestNames } from "./_test_names.ts";

const table = await loadTable();
const tests = await scanTestNames();

function noProblems(problems: string[]): void {
  assert.deepEqual(problems, [], `${problems.length} problem(s):\n${problems.join("\n")}`);
}

Deno.test("normative table: ids are well-formed, unique, in the standard's order, with side and summary", () => {
  noProblems(formatProblems(table));
});

Deno.test("normative table: holds appendix B's 175 statements of chapter 3 and 60 of chapter 4", () => {
  const chapter = (n: string) => table.statements.filter((s) => s.id.startsWith(`MQTT-${n}.`));
  assert.deepEqual(chapter("3").length, 175);
  assert.deepEqual(chapter("4").length, 60);
});

Deno.test("normative table: every server-side statement has a test or a written reason", () => {
  noProblems(uncoveredProblems(table));
  const { covered, reasoned, total } = coverage(table);
  console.log(
    `MQTT 5.0 server-side statements (chapters 3-4): ${covered} covered by tests, ${reasoned} with a reason only, ${total} in all`,
  );
  assert.deepEqual(covered + reasoned, total);
});

Deno.test("normative table: every test it names exists in the repository", () => {
  noProblems(missingTestProblems(table, tests));
});

Deno.test("normative table: every MQTT 5.0 id cited in a test name is in the table", () => {
  noProblems(unknownCitationProblems(table, tests));
});

Deno.test("normative table: every normative id cited in a test name is well-formed", () => {
  noProblems(malformedCitationProblems(tests));
});

// The checks above pass on the real table; these show that each one can fail.

const sample = (statements: NormativeTable["statements"]): NormativeTable => ({
  title: "t",
  standard: "s",
  fields: "f",
  statements,
});

Deno.test("normative table checks: a server statement without test or reason is reported, a client one is not", () => {
  const t = sample([
    { id: "MQTT-3.1.0-1", section: "3.1.0", side: "client", summary: "a" },
    { id: "MQTT-3.1.0-2", section: "3.1.0", side: "server", summary: "b" },
    { id: "MQTT-3.1.2-1", section: "3.1.2", side: "both", summary: "c", reason: "  " },
    { id: "MQTT-3.1.2-2", section: "3.1.2", side: "server", summary: "d", reason: "not built" },
  ]);
  assert.deepEqual(uncoveredProblems(t), [
    "MQTT-3.1.0-2 (server): no test and no reason",
    "MQTT-3.1.2-1 (both): no test and no reason",
  ]);
  assert.deepEqual(coverage(t), { covered: 0, reasoned: 1, total: 3 });
});

Deno.test("normative table checks: malformed, repeated, misplaced and out-of-order ids are reported", () => {
  const problems = formatProblems(sample([
    { id: "MQTT-3.1.2-2", section: "3.1.2", side: "server", summary: "a" },
    { id: "MQTT-3.1.2-2", section: "3.1.2", side: "server", summary: "a" },
    { id: "MQTT-3-8.3-4", section: "3.8.3", side: "server", summary: "b" },
    { id: "MQTT-1.5.4-1", section: "1.5.4", side: "both", summary: "c" },
    { id: "MQTT-3.1.0-1", section: "3.1.2", side: "client", summary: "d" },
    { id: "MQTT-3.3.1-1", section: "3.3.1", side: "broker" as "server", summary: "" },
  ]));
  assert.deepEqual(problems, [
    "MQTT-3.1.2-2: listed twice",
    "MQTT-3.1.2-2: out of the standard's order",
    "MQTT-3-8.3-4: not an MQTT-x.y.z-n id of chapter 3 or 4",
    "MQTT-1.5.4-1: not an MQTT-x.y.z-n id of chapter 3 or 4",
    "MQTT-3.1.0-1: section 3.1.2 does not match the id",
    "MQTT-3.1.0-1: out of the standard's order",
    "MQTT-3.3.1-1: side broker is not server, client or both",
    "MQTT-3.3.1-1: no summary",
  ]);
});

Deno.test("normative table checks: a named test that is missing, or does not cite the id as 5.0, is reported", () => {
  const found = [
    { file: "tests/broker/50_v5_test.ts", name: "50 v5: CONNACK 0x00 [MQTT-3.2.0-1]" },
    { file: "tests/broker/01_connect_test.ts", name: "01 connect: keepalive [MQTT-3.1.2-24]" },
    { file: "tests/broker/01_connect_test.ts", name: "01 connect: PINGRESP [MQTT-3.12.4-1]" },
  ];
  const t = sample([
    {
      id: "MQTT-3.1.2-22",
      section: "3.1.2",
      side: "server",
      summary: "a",
      tests: ["tests/broker/50_v5_test.ts#50 v5: keepalive [MQTT-3.1.2-22]"],
      v311: ["MQTT-3.1.2-24"],
    },
    {
      id: "MQTT-3.2.0-1",
      section: "3.2.0",
      side: "server",
      summary: "b",
      tests: ["tests/broker/50_v5_test.ts#a renamed test", "50 v5: CONNACK 0x00 [MQTT-3.2.0-1]"],
      related: ["a bare name that no test has"],
      v311: ["MQTT-3.2.0-1"],
    },
    {
      id: "MQTT-3.12.4-1",
      section: "3.12.4",
      side: "server",
      summary: "c",
      tests: ["tests/broker/01_connect_test.ts#01 connect: PINGRESP [MQTT-3.12.4-1]"],
      related: ["tests/broker/01_connect_test.ts#01 connect: PINGRESP [MQTT-3.12.4-1]"],
    },
  ]);
  assert.deepEqual(missingTestProblems(t, found), [
    "MQTT-3.1.2-22: tests names a test that does not exist: tests/broker/50_v5_test.ts#50 v5: keepalive [MQTT-3.1.2-22]",
    "MQTT-3.2.0-1: related names a test that does not exist: a bare name that no test has",
    "MQTT-3.2.0-1: v311 MQTT-3.2.0-1 is cited by no broker or interop test",
    "MQTT-3.12.4-1: tests names a test that does not cite MQTT-3.12.4-1 as MQTT 5.0: tests/broker/01_connect_test.ts#01 connect: PINGRESP [MQTT-3.12.4-1]",
  ]);
});

Deno.test("normative table checks: a 5.0 citation the table does not hold is reported, a 3.1.1 one is not", () => {
  const t = sample([{ id: "MQTT-3.3.2-6", section: "3.3.2", side: "server", summary: "a" }]);
  const found = [
    { file: "tests/broker/50_v5_test.ts", name: "expiry [MQTT-3.3.2-6] [MQTT-3.3.2-66]" },
    { file: "tests/broker/03_retain_test.ts", name: "03 retain [MQTT-3.3.1-99]" },
    { file: "tests/topic/x_test.ts", name: "names [MQTT-4.7.1-3] (5.0 [MQTT-4.7.1-9])" },
    { file: "tests/packet/y_test.ts", name: "decode at 5.0 [MQTT-1.5.4-1]" },
  ];
  assert.deepEqual(unknownCitationProblems(t, found), [
    'tests/broker/50_v5_test.ts: "expiry [MQTT-3.3.2-6] [MQTT-3.3.2-66]" cites MQTT-3.3.2-66, which MQTT 5.0 does not number',
    'tests/topic/x_test.ts: "names [MQTT-4.7.1-3] (5.0 [MQTT-4.7.1-9])" cites MQTT-4.7.1-9, which MQTT 5.0 does not number',
  ]);
});

Deno.test("normative table checks: a malformed citation in a test name is reported", () => {
  assert.deepEqual(
    malformedCitationProblems([
      { file: "tests/a_test.ts", name: "x [MQTT-3-8.3-4] [MQTT-3.8.3-4] [MQTT-4.2-1]" },
      { file: "tests/b_test.ts", name: "y [MQTT 3.1.2-4] [MQTT-3.1.2-" },
    ]),
    [
      'tests/a_test.ts: "x [MQTT-3-8.3-4] [MQTT-3.8.3-4] [MQTT-4.2-1]" cites [MQTT-3-8.3-4], which is not an [MQTT-x.y.z-n] id',
      'tests/b_test.ts: "y [MQTT 3.1.2-4] [MQTT-3.1.2-" cites [MQTT 3.1.2-4], which is not an [MQTT-x.y.z-n] id',
      'tests/b_test.ts: "y [MQTT 3.1.2-4] [MQTT-3.1.2-" cites [MQTT-3.1.2-, which is not an [MQTT-x.y.z-n] id',
    ],
  );
});

Deno.test("normative table checks: which citations count as MQTT 5.0", () => {
  const at = (file: string, name: string, id: string) => citesMqtt5({ file, name }, id);
  assert(at("tests/client/v5_connect_test.ts", "x [MQTT-3.1.2-24]", "MQTT-3.1.2-24"));
  assert(at("tests/broker/30_mqtt5_connect_test.ts", "x [MQTT-3.1.2-24]", "MQTT-3.1.2-24"));
  assert(
    at("tests/broker/05_qos_test.ts", "05 qos: level 5 PUBACK [MQTT-3.4.2-1]", "MQTT-3.4.2-1"),
  );
  assert(at("tests/packet/v_test.ts", "decodeSubscribe at 5.0 [MQTT-3.8.3-5]", "MQTT-3.8.3-5"));
  assert(!at("tests/broker/05_qos_test.ts", "05 qos: QoS 2 [MQTT-4.3.3-2]", "MQTT-4.3.3-2"));
  assert(
    !at(
      "tests/broker/05_qos_test.ts",
      "QoS 2 at 3.1.1 [MQTT-4.3.3-2] (5.0 [MQTT-4.3.3-8])",
      "MQTT-4.3.3-2",
    ),
  );
  assert(
    at(
      "tests/broker/05_qos_test.ts",
      "QoS 2 at 3.1.1 [MQTT-4.3.3-2] (5.0 [MQTT-4.3.3-8])",
      "MQTT-4.3.3-8",
    ),
  );
  assert(!at("tests/broker/08_malformed_test.ts", "version 5.01 [MQTT-3.1.2-2]", "MQTT-3.1.2-2"));
});

Deno.test("scanTestNames finds Deno.test, test(), t.step and template-literal names in the repository", () => {
  const byFile = (file: string) => tests.filter((t) => t.file === file).map((t) => t.name);
  assert(
    byFile("tests/conformance/normative_table_test.ts").includes(
      "scanTestNames finds Deno.test, test(), t.step and template-literal names in the repository",
    ),
  );
  assert(
    tests.some((t) => t.file.startsWith("tests/broker/") && t.name.startsWith("01 connect: ")),
  );
  assert(tests.some((t) => t.name.includes("${cacheEntries}")));
});
