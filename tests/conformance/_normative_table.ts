/**
 * The checked-in table of MQTT 5.0 normative statements (chapters 3 and 4) and the checks that keep
 * it honest: every server-side statement has a test or a written reason, every test it names exists,
 * and every 5.0 id a test cites is in it.
 *
 * @module
 */

import { citedIds, citesMqtt5, type TestName } from "./_test_names.ts";

/** Who a statement binds. Sender/receiver statements bind whichever side acts: `both`. */
export type Side = "server" | "client" | "both";

/** One numbered statement of the standard. */
export interface NormativeStatement {
  /** `MQTT-x.y.z-n`, as appendix B of the standard numbers it. */
  id: string;
  /** The id as the standard's body prints it, where that differs (`MQTT-4.2-1`). */
  alias?: string;
  /** `x.y.z`, the section the statement is in. */
  section: string;
  side: Side;
  /** A paraphrase; the standard has the text. */
  summary: string;
  /** Tests that check this broker honours the statement: `file#name`, or a bare name. */
  tests?: string[];
  /** Why a server or both statement has no test yet. */
  reason?: string;
  /** The 3.1.1 ids of the same rule that today's broker tests cite: a hint for building 5.0. */
  v311?: string[];
  /** Tests citing the id that do not check this broker (client, codec, topic layer). */
  related?: string[];
}

/** The table file's shape. */
export interface NormativeTable {
  title: string;
  standard: string;
  fields: string;
  statements: NormativeStatement[];
}

/** Where the table lives. */
export const TABLE_URL = new URL("./mqtt5_normative.json", import.meta.url);

/** Reads the table. */
export async function loadTable(url: URL = TABLE_URL): Promise<NormativeTable> {
  return JSON.parse(await Deno.readTextFile(url)) as NormativeTable;
}

const ID = /^MQTT-([34])\.(\d+)\.(\d+)-(\d+)$/;
const ALIAS = /^MQTT-\d+\.\d+(?:\.\d+)?-\d+$/;
const SIDES: readonly string[] = ["server", "client", "both"];

/** Statements the broker must honour: `server` and `both`. */
export function serverSide(table: NormativeTable): NormativeStatement[] {
  return table.statements.filter((s) => s.side !== "client");
}

/** Ids that are malformed, repeated, outside chapters 3 and 4, or whose fields do not fit. */
export function formatProblems(table: NormativeTable): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  let previous: number[] = [];
  for (const s of table.statements) {
    const m = ID.exec(s.id);
    if (!m) {
      problems.push(`${s.id}: not an MQTT-x.y.z-n id of chapter 3 or 4`);
      continue;
    }
    for (const name of [s.id, s.alias]) {
      if (name === undefined) continue;
      if (seen.has(name)) problems.push(`${name}: listed twice`);
      seen.add(name);
    }
    if (s.alias !== undefined && !ALIAS.test(s.alias)) {
      problems.push(`${s.id}: bad alias ${s.alias}`);
    }
    const section = `${m[1]}.${m[2]}.${m[3]}`;
    const sectionOk = s.section === section || (m[3] === "0" && s.section === `${m[1]}.${m[2]}`);
    if (!sectionOk) problems.push(`${s.id}: section ${s.section} does not match the id`);
    const order = m.slice(1).map(Number);
    if (compare(order, previous) <= 0) problems.push(`${s.id}: out of the standard's order`);
    previous = order;
    if (!SIDES.includes(s.side)) {
      problems.push(`${s.id}: side ${s.side} is not server, client or both`);
    }
    if (typeof s.summary !== "string" || s.summary.trim() === "") {
      problems.push(`${s.id}: no summary`);
    } else if (s.summary.length > 200) {
      problems.push(
        `${s.id}: summary longer than 200 characters (paraphrase, do not copy the standard)`,
      );
    }
    for (const field of ["tests", "related", "v311"] as const) {
      const list = s[field];
      if (list !== undefined && (!Array.isArray(list) || list.some((x) => typeof x !== "string"))) {
        problems.push(`${s.id}: ${field} is not a list of strings`);
      }
    }
  }
  return problems;
}

function compare(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? -1) - (b[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

/** Server-side statements with neither a test nor a written reason. */
export function uncoveredProblems(table: NormativeTable): string[] {
  return serverSide(table)
    .filter((s) => (s.tests ?? []).length === 0 && !(s.reason ?? "").trim())
    .map((s) => `${s.id} (${s.side}): no test and no reason`);
}

function citesAs5(tests: TestName[], ids: string[]): boolean {
  return tests.some((t) => citedIds(t.name).some((c) => ids.includes(c) && citesMqtt5(t, c)));
}

function splitRef(ref: string): { file?: string; name: string } {
  const hash = ref.indexOf("#");
  if (hash > 0 && /^tests\/\S+\.(ts|js|mjs)$/.test(ref.slice(0, hash))) {
    return { file: ref.slice(0, hash), name: ref.slice(hash + 1) };
  }
  return { name: ref };
}

/**
 * Listed tests (`tests`, `related`) that do not exist: a `file#name` reference holds when that file
 * has a test of that name or, failing that, a test citing the statement's id in its name; a bare name
 * holds when a test of that name exists anywhere; a `tests` reference must also cite the id as MQTT 5.0. A `v311` id holds when a broker or interop test cites it at 3.1.1.
 */
export function missingTestProblems(table: NormativeTable, tests: TestName[]): string[] {
  const problems: string[] = [];
  for (const s of table.statements) {
    const ids = [s.id, s.alias].filter((x): x is string => x !== undefined);
    for (const field of ["tests", "related"] as const) {
      for (const ref of s[field] ?? []) {
        const { file, name } = splitRef(ref);
        const pool = file === undefined ? tests : tests.filter((t) => t.file === file);
        const exact = pool.filter((t) => t.name === name);
        // Within a named file a renamed test that still cites the id holds; a bare name must match.
        const citing = file !== undefined &&
          pool.some((t) => citedIds(t.name).some((c) => ids.includes(c)));
        if (exact.length === 0 && !citing) {
          problems.push(`${s.id}: ${field} names a test that does not exist: ${ref}`);
        } else if (field === "tests" && !citesAs5(exact.length > 0 ? exact : pool, ids)) {
          // Coverage counts only a test that says which 5.0 statement it checks.
          problems.push(
            `${s.id}: tests names a test that does not cite ${s.id} as MQTT 5.0: ${ref}`,
          );
        }
      }
    }
    for (const old of s.v311 ?? []) {
      const cited = tests.some((t) =>
        /^tests\/(broker|interop)\//.test(t.file) &&
        citedIds(t.name).some((c) => c === old && !citesMqtt5(t, c))
      );
      if (!cited) problems.push(`${s.id}: v311 ${old} is cited by no broker or interop test`);
    }
  }
  return problems;
}

/** Chapter 3 and 4 ids that a test cites as MQTT 5.0 and that the table does not hold (typos). */
export function unknownCitationProblems(table: NormativeTable, tests: TestName[]): string[] {
  const known = new Set<string>();
  for (const s of table.statements) {
    known.add(s.id);
    if (s.alias !== undefined) known.add(s.alias);
  }
  const problems: string[] = [];
  for (const t of tests) {
    for (const id of citedIds(t.name)) {
      if (!/^MQTT-[34]\./.test(id) || known.has(id) || !citesMqtt5(t, id)) continue;
      problems.push(`${t.file}: "${t.name}" cites ${id}, which MQTT 5.0 does not number`);
    }
  }
  return problems;
}

/** Citations in test names that are not of the `[MQTT-x.y.z-n]` form (a typo hides them from every check). */
export function malformedCitationProblems(tests: TestName[]): string[] {
  const problems: string[] = [];
  for (const t of tests) {
    for (const m of t.name.matchAll(/\[MQTT[^\]]*\]?/g)) {
      if (/^\[MQTT-\d+\.\d+(?:\.\d+)?-\d+\]$/.test(m[0])) continue;
      problems.push(`${t.file}: "${t.name}" cites ${m[0]}, which is not an [MQTT-x.y.z-n] id`);
    }
  }
  return problems;
}

/** Counts of the server-side statements: covered by tests, with only a reason, and in all. */
export function coverage(
  table: NormativeTable,
): { covered: number; reasoned: number; total: number } {
  const server = serverSide(table);
  const covered = server.filter((s) => (s.tests ?? []).length > 0).length;
  const reasoned =
    server.filter((s) => (s.tests ?? []).length === 0 && (s.reason ?? "").trim()).length;
  return { covered, reasoned, total: server.length };
}
