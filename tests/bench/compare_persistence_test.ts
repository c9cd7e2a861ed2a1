import assert from "node:assert/strict";
import { replaceSection } from "../../bench/_compare_persistence.ts";

const SECTION = "## Persistence (amqtt only)\n\nnew table\n";

Deno.test("replaceSection adds the persistence section at the end of a file without one", () => {
  assert.equal(
    replaceSection("# Benchmark results\n\n| a |\n", SECTION),
    `# Benchmark results\n\n| a |\n\n${SECTION}`,
  );
});

Deno.test("replaceSection replaces only the persistence section, keeping what follows it", () => {
  const doc = "# R\n\ntop\n\n## Persistence (amqtt only)\n\nold table\n\n## Later\n\nkept\n";
  assert.equal(replaceSection(doc, SECTION), `# R\n\ntop\n\n${SECTION}\n## Later\n\nkept\n`);
  const last = "# R\n\n## Persistence (amqtt only)\n\nold\n";
  assert.equal(replaceSection(last, SECTION), `# R\n\n${SECTION}`);
});
