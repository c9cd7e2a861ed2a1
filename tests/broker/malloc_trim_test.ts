// glibc's malloc_trim through Deno's FFI (src/broker/_malloc_trim.ts): it gives back the free pages
// the C allocator kept, and it is used only where the program already has the ffi permission.

import assert from "node:assert/strict";

/**
 * Runs `code` in a child Deno with `flags` (`deno run`: `deno eval` would grant every permission),
 * and returns what it printed.
 */
async function child(
  flags: string[],
  code: string,
  env: Record<string, string> = {},
): Promise<string> {
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(file, code);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", ...flags, file],
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    return new TextDecoder().decode(out.stdout).trim();
  } finally {
    await Deno.remove(file);
  }
}

const module = JSON.stringify(new URL("../../src/broker/_malloc_trim.ts", import.meta.url).href);

Deno.test("mallocTrim gives back the pages of freed native buffers the C allocator kept", async () => {
  // 200,000 buffers of 400 bytes (their backing stores are malloc'd), one in 200 kept so that
  // glibc cannot give back the arena's top: 160 → 54 MB of RSS when tried by hand.
  const out = await child(
    ["-A"],
    `import { mallocTrim } from ${module};
    import { exposedGc } from ${
      JSON.stringify(new URL("../../src/broker/_memory_release.ts", import.meta.url).href)
    };
    let bufs = [];
    for (let i = 0; i < 200_000; i++) bufs.push(new Uint8Array(400));
    const kept = bufs.filter((_, i) => i % 200 === 0);
    bufs = undefined;
    exposedGc()();
    await new Promise((r) => setTimeout(r, 50));
    const before = Deno.memoryUsage().rss;
    const result = mallocTrim()();
    const after = Deno.memoryUsage().rss;
    console.log(JSON.stringify({ result, freed: before - after, kept: kept.length }));`,
  );
  const { result, freed, kept } = JSON.parse(out);
  assert.equal(kept, 1000);
  assert.equal(result, 1, "malloc_trim says it gave memory back");
  assert.ok(freed > 40 * 1024 * 1024, `the trim gave back ${(freed / 1048576).toFixed(1)} MB`);
});

Deno.test("mallocTrim is undefined without the ffi permission, and nothing is asked for", async () => {
  const out = await child(
    ["--allow-read"],
    `import { mallocTrim } from ${module};
    console.log(String(mallocTrim()));
    console.log((await Deno.permissions.query({ name: "ffi" })).state);`,
  );
  assert.deepEqual(out.split("\n"), ["undefined", "prompt"]);
});

Deno.test("mallocTrim: a C library that cannot be opened is looked for once, not at every release, and nothing is thrown", async () => {
  // The ffi permission granted but the library denied: the open fails as on a system without
  // glibc. Deno's permission audit log shows each attempt to open it.
  const audit = await Deno.makeTempFile({ suffix: ".jsonl" });
  try {
    const out = await child(
      ["--allow-ffi", "--deny-ffi=libc.so.6"],
      `import { mallocTrim } from ${module};
      const trim = mallocTrim();
      console.log(typeof trim, trim?.(), trim?.(), trim?.(), String(mallocTrim()));`,
      { DENO_AUDIT_PERMISSIONS: audit },
    );
    // The release keeps the function it got first and calls it at each mass close.
    assert.equal(out, "function 0 0 0 undefined");
    const opens = (await Deno.readTextFile(audit)).split("\n")
      .filter((line) => line.includes('"permission":"ffi"'));
    assert.equal(opens.length, 1, opens.join("\n"));
  } finally {
    await Deno.remove(audit);
  }
});
