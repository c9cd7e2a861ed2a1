import assert from "node:assert/strict";
import { replaceSection } from "../../bench/_compare_persistence.ts";
import { replaceTop } from "../../bench/_results_top.ts";

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

Deno.test("replaceTop replaces only what comes before the first section, keeping every later one", () => {
  const doc = "# R\n\nold table\n\n## Persistence (amqtt only)\n\nold\n\n## Later\n\nkept\n";
  assert.equal(
    replaceTop(doc, "# R\n\nnew table\n"),
    "# R\n\nnew table\n\n## Persistence (amqtt only)\n\nold\n\n## Later\n\nkept\n",
  );
  assert.equal(replaceTop("", "# R\n\nnew\n"), "# R\n\nnew\n");
  assert.equal(replaceTop("# R\n\nonly a table\n", "# R\n\nnew\n"), "# R\n\nnew\n");
});
