/**
 * Random topic filters and names for the property tests, over a small alphabet so that
 * matches are frequent and the `$`, empty-level and wildcard cases come up often.
 *
 * @module
 */

import fc from "fast-check";

const nameLevel = fc.constantFrom("a", "b", "ab", "", "$", "$x", "é");
const filterLevel = fc.constantFrom("a", "b", "ab", "", "$", "$x", "é", "+");

/** A random valid filter: levels, optionally followed by "#". */
export const arbitraryFilter: fc.Arbitrary<string> = fc
  .tuple(fc.array(filterLevel, { maxLength: 5 }), fc.boolean())
  .filter(([levels, hash]) => levels.length > 0 || hash)
  .map(([levels, hash]) => (hash ? [...levels, "#"] : levels).join("/"))
  .filter((filter) => filter.length > 0);

/** A random valid topic name. */
export const arbitraryName: fc.Arbitrary<string> = fc
  .array(nameLevel, { minLength: 1, maxLength: 6 })
  .map((levels) => levels.join("/"))
  .filter((name) => name.length > 0);
