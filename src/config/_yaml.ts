/**
 * YAML 1.1 parsing with a key path -> line lookup, so validation errors can name the line.
 *
 * @module
 */

import {
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  type Tags,
} from "yaml";
import { ConfigError } from "./config_error.ts";

/** One step of a key path: a map key as written, or a sequence index. */
export type PathSegment = string | number;

/** Finds the 1-based line of the value at a key path, or `undefined`. */
export type LineLookup = (path: readonly PathSegment[]) => number | undefined;

/** The plain value of a YAML document and a way back from key paths to lines. */
export interface ParsedYaml {
  value: unknown;
  lineOf: LineLookup;
}

const BOOL_TAG = "tag:yaml.org,2002:bool";
// PyYAML (which aMQTT uses) reads yes/no/on/off/true/false as booleans but not y/n; the yaml
// package's 1.1 schema also turns `y` and `n` into booleans, which would silently change a
// username or a will message written as `n`.
const PYYAML_TRUE = /^(?:yes|Yes|YES|true|True|TRUE|on|On|ON)$/;
const PYYAML_FALSE = /^(?:no|No|NO|false|False|FALSE|off|Off|OFF)$/;

function pyyamlBooleans(tags: Tags): Tags {
  return tags.map((tag) => {
    if (typeof tag === "string" || tag.tag !== BOOL_TAG || !("test" in tag) || !tag.test) {
      return tag;
    }
    const isTrue = tag.test.test("true");
    return { ...tag, test: isTrue ? PYYAML_TRUE : PYYAML_FALSE };
  });
}

/**
 * Parses one YAML 1.1 document the way PyYAML's `safe_load` does (booleans `on`/`off`/`yes`/
 * `no`, `<<` merge keys). Duplicate keys are an error: PyYAML keeps the last one silently, which
 * hides mistakes such as a second `ssl: off`.
 *
 * @param text The YAML text.
 * @param source The file it came from, for error messages.
 * @returns The plain value and a key path -> line lookup.
 * @throws {ConfigError} On a YAML syntax error, with its line.
 */
export function parseYaml(text: string, source?: string): ParsedYaml {
  const lineCounter = new LineCounter();
  let doc;
  try {
    doc = parseDocument(text, {
      version: "1.1",
      lineCounter,
      prettyErrors: false,
      customTags: pyyamlBooleans,
    });
  } catch (error) {
    throw yamlRuntimeError(error, source);
  }
  const first = doc.errors[0];
  if (first !== undefined) {
    const line = first.linePos?.[0]?.line ?? lineCounter.linePos(first.pos[0]).line;
    throw new ConfigError(`Cannot parse YAML: ${firstLine(first.message)}`, {
      line,
      source,
      cause: first,
    });
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 1000 });
  } catch (error) {
    throw new ConfigError(`Cannot parse YAML: ${firstLine(String((error as Error).message))}`, {
      source,
      cause: error,
    });
  }
  const lineOf: LineLookup = (path) => {
    let node: unknown = doc.contents;
    let line: number | undefined = lineOfNode(node, lineCounter);
    for (const segment of path) {
      if (isAlias(node)) node = node.resolve(doc);
      if (isMap(node)) {
        const pair = node.items.find((item) =>
          isPair(item) && keyText(item.key) === String(segment)
        );
        if (pair === undefined) return line;
        line = lineOfNode(pair.key, lineCounter) ?? line;
        node = pair.value;
      } else if (isSeq(node) && typeof segment === "number") {
        node = node.items[segment];
        line = lineOfNode(node, lineCounter) ?? line;
      } else {
        return line;
      }
    }
    return line;
  };
  return { value, lineOf };
}

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) return String(key.value);
  return undefined;
}

function lineOfNode(node: unknown, lineCounter: LineCounter): number | undefined {
  const range = (node as Node | null | undefined)?.range;
  if (!range) return undefined;
  return lineCounter.linePos(range[0]).line;
}

function firstLine(message: string): string {
  const line = message.split("\n")[0] ?? message;
  // The yaml package appends its own "at line L, column C:"; the line goes in our suffix.
  return line.replace(/ at line \d+, column \d+:?$/, "").replace(/\.$/, "");
}

function yamlRuntimeError(error: unknown, source: string | undefined): ConfigError {
  if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    // npm:yaml reads process.env.LOG_TOKENS and LOG_STREAM while parsing.
    return new ConfigError(
      "Cannot parse YAML: the yaml package reads the LOG_TOKENS and LOG_STREAM environment " +
        "variables; run with --allow-env=LOG_TOKENS,LOG_STREAM",
      { source, cause: error },
    );
  }
  return new ConfigError(`Cannot parse YAML: ${firstLine(String((error as Error)?.message))}`, {
    source,
    cause: error,
  });
}

/**
 * Line numbers for a configuration that came with its YAML text, for error messages.
 *
 * @param text The YAML text, if known.
 * @returns A lookup, or `undefined` without text or when the text does not parse.
 */
export function lineLookupFor(text: string | undefined): LineLookup | undefined {
  if (text === undefined) return undefined;
  try {
    return parseYaml(text).lineOf;
  } catch {
    return undefined;
  }
}
