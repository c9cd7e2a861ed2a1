/**
 * The top of bench/RESULTS.md: what a full `bench:compare` run writes (its heading, settings and
 * main table). The sections after it (each headed `## …`: other benchmarks' records, reviews,
 * before/after figures) are kept as they are.
 *
 * @module
 */

/**
 * `doc` with everything before its first `## ` section replaced by `top`; `top` alone when `doc`
 * has no such section.
 *
 * @param doc the results file as it is
 * @param top the new heading and main table
 * @returns the new file
 */
export function replaceTop(doc: string, top: string): string {
  const at = doc.startsWith("## ") ? 0 : doc.indexOf("\n## ") + 1;
  if (at === 0 && !doc.startsWith("## ")) return top; // no section to keep
  return `${top.trimEnd()}\n\n${doc.slice(at)}`;
}
