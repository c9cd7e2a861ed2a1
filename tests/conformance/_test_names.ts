/**
 * Reads the names of the tests in the repository's test files, and the normative ids they cite,
 * without running them: the normative table is checked against what the test files say.
 *
 * @module
 */

/** One test found in a test file. */
export interface TestName {
  /** Path relative to the repository root, with forward slashes, e.g. `tests/broker/01_connect_test.ts`. */
  file: string;
  /** The name as written in the source (a template literal keeps its `${...}` parts). */
  name: string;
}

/** A normative id as cited in a test name: `[MQTT-3.3.2-6]`. The body's `[MQTT-4.2-1]` form too. */
export const CITATION = /\[(MQTT-\d+\.\d+(?:\.\d+)?-\d+)\]/g;

/** The first string argument of `Deno.test(`, `test(`, `it(` or `t.step(`, or `Deno.test({ name: … })`. */
const TEST_CALL =
  /(?:\bDeno\.test|(?<![\w.])test|(?<![\w.])it|\.step)\(\s*(?:\{\s*name:\s*)?(["'`])((?:\\.|(?!\1)[\s\S])*?)\1/g;

/** Root of the repository, from this file's place in `tests/conformance/`. */
export const REPO_ROOT = new URL("../../", import.meta.url);

async function* walk(dir: URL, rel: string): AsyncGenerator<string> {
  const entries = [];
  for await (const entry of Deno.readDir(dir)) entries.push(entry);
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const entry of entries) {
    const path = rel === "" ? entry.name : `${rel}/${entry.name}`;
    if (entry.isDirectory) {
      yield* walk(new URL(`${entry.name}/`, dir), path);
    } else if (entry.isFile && /\.(ts|js|mjs)$/.test(entry.name)) {
      yield path;
    }
  }
}

/** Every test name in the `.ts`/`.js` files under `tests/` (helpers included: they may define tests). */
export async function scanTestNames(root: URL = REPO_ROOT): Promise<TestName[]> {
  const found: TestName[] = [];
  for await (const path of walk(new URL("tests/", root), "tests")) {
    const source = await Deno.readTextFile(new URL(path, root));
    const seen = new Set<string>();
    for (const match of source.matchAll(TEST_CALL)) {
      const name = match[2];
      if (seen.has(name) || !/\S/.test(name)) continue;
      seen.add(name);
      found.push({ file: path, name });
    }
  }
  return found;
}

/** The ids a test name cites, in order, without brackets. */
export function citedIds(name: string): string[] {
  return [...name.matchAll(CITATION)].map((m) => m[1]);
}

/**
 * Whether a citation in this test is of MQTT 5.0 rather than 3.1.1 (the two standards number their
 * statements differently): the file name says `v5` or `mqtt5`, the test name says `v5`, `5.0`,
 * `MQTT 5` or `level 5`; where a name writes some ids as `5.0 [MQTT-…]`, only those are 5.0.
 */
export function citesMqtt5(test: TestName, id: string): boolean {
  // A name that marks some ids `5.0 [MQTT-…]` cites the others at 3.1.1.
  if (/5\.0 \[MQTT-/.test(test.name)) return test.name.includes(`5.0 [${id}]`);
  const base = test.file.slice(test.file.lastIndexOf("/") + 1);
  if (/(^|[_\-.])(v5|mqtt5)([_\-.]|$)/i.test(base)) return true;
  return /\bv5\b|(?<![\d.])5\.0(?![\d.])|\bMQTT 5\b|\blevel[ -]5\b/i.test(test.name);
}
