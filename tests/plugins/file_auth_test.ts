import assert from "node:assert/strict";
import { FileAuthPlugin, parsePasswordFile } from "../../src/plugins/file_auth.ts";
import { hashPassword } from "../../src/plugins/password_hash.ts";
import { client, context } from "./_helpers.ts";

const enc = new TextEncoder();

// Every plugin a test opens; withFile closes them (each may have started a hashing worker).
const opened: FileAuthPlugin[] = [];
function open(passwordFile?: string): FileAuthPlugin {
  const plugin = new FileAuthPlugin({ passwordFile });
  opened.push(plugin);
  return plugin;
}

async function withFile(text: string, fn: (path: string) => Promise<void>) {
  const path = await Deno.makeTempFile({ suffix: ".passwd" });
  try {
    await Deno.writeTextFile(path, text);
    await fn(path);
  } finally {
    for (const plugin of opened.splice(0)) plugin.close();
    await Deno.remove(path);
  }
}

// Made once: sha512-crypt at 1000 rounds keeps the tests quick.
const ALICE = await hashPassword("alice-pw", { rounds: 1000 });
const BOB = await hashPassword("bob:pw", { scheme: "pbkdf2-sha512", rounds: 1000 });

Deno.test("parsePasswordFile splits at the first ':' and skips comments and blank lines", () => {
  const { users, issues } = parsePasswordFile(
    `# comment\n\n  alice:${ALICE}  \r\nbob:${BOB}\n   # indented comment\n`,
  );
  assert.deepEqual([...users.entries()], [["alice", ALICE], ["bob", BOB]]);
  assert.deepEqual(issues, []);
});

Deno.test("parsePasswordFile reports malformed lines with their numbers and keeps the rest", () => {
  const text = [
    "alice:" + ALICE, // 1
    "no colon here", // 2
    ":" + ALICE, // 3 empty username
    "carol:", // 4 empty hash
    "dave:plaintext", // 5 unsupported format
    "alice:" + BOB, // 6 repeated: replaces line 1
    "\u0000\u00ff:garbage", // 7 binary junk
  ].join("\n");
  const { users, issues } = parsePasswordFile(text);
  assert.deepEqual([...users.entries()], [["alice", BOB]]);
  assert.deepEqual(issues.map((i) => i.line), [2, 3, 4, 5, 6, 7]);
  assert.match(issues[0].message, /no ':'/);
  assert.match(issues[1].message, /empty username/);
  assert.match(issues[2].message, /empty hash/);
  assert.match(issues[3].message, /unsupported hash format/);
  assert.match(issues[4].message, /repeated/);
  // Issues never echo a hash.
  for (const issue of issues) assert.ok(!issue.message.includes("$"), issue.message);
});

Deno.test("parsePasswordFile ignores a byte-order mark", () => {
  const { users } = parsePasswordFile(`\uFEFFalice:${ALICE}\n`);
  assert.deepEqual([...users.keys()], ["alice"]);
});

Deno.test("FileAuthPlugin accepts right passwords and refuses wrong ones", async () => {
  await withFile(`alice:${ALICE}\nbob:${BOB}\n`, async (path) => {
    const plugin = open(path);
    const ctx = context();
    await plugin.init(ctx);
    assert.equal(plugin.userCount, 2);
    assert.equal(await plugin.authenticate(client("alice", "alice-pw")), true);
    assert.equal(await plugin.authenticate(client("bob", "bob:pw")), true);
    assert.equal(await plugin.authenticate(client("alice", "wrong")), false);
    assert.equal(await plugin.authenticate(client("bob", "alice-pw")), false);
    assert.ok(ctx.lines.includes(`info: 2 user(s) loaded from "${path}"`));
  });
});

Deno.test("FileAuthPlugin refuses unknown users and users without a password", async () => {
  await withFile(`alice:${ALICE}\n`, async (path) => {
    const plugin = open(path);
    const ctx = context();
    await plugin.init(ctx);
    assert.equal(await plugin.authenticate(client("mallory", "alice-pw")), false);
    assert.equal(await plugin.authenticate(client("alice")), false);
    assert.ok(ctx.lines.some((l) => l.includes('"mallory": unknown user')));
    assert.ok(ctx.lines.some((l) => l.includes('"alice": no password sent')));
  });
});

Deno.test("FileAuthPlugin abstains for clients without a username, or an empty one", async () => {
  await withFile(`alice:${ALICE}\n`, async (path) => {
    const plugin = open(path);
    await plugin.init(context());
    assert.equal(await plugin.authenticate(client()), undefined);
    assert.equal(await plugin.authenticate(client("", "alice-pw")), undefined);
  });
});

Deno.test("FileAuthPlugin compares passwords as bytes", async () => {
  await withFile(`alice:${ALICE}\n`, async (path) => {
    const plugin = open(path);
    await plugin.init(context());
    const c = client("alice");
    c.password = enc.encode("alice-pw\u0000"); // a trailing NUL is a different password
    assert.equal(await plugin.authenticate(c), false);
  });
});

Deno.test("FileAuthPlugin logs malformed lines with line numbers and still loads the rest", async () => {
  await withFile(`# users\nalice:${ALICE}\ngarbage line\nbob:plaintext\n`, async (path) => {
    const plugin = open(path);
    const ctx = context();
    await plugin.init(ctx);
    assert.equal(plugin.userCount, 1);
    assert.ok(
      ctx.lines.includes(
        `warning: Password file "${path}" line 3: no ':' between username and hash`,
      ),
    );
    assert.ok(ctx.lines.some((l) => l.includes("line 4: unsupported hash format")));
    assert.equal(await plugin.authenticate(client("alice", "alice-pw")), true);
    assert.equal(await plugin.authenticate(client("bob", "plaintext")), false);
  });
});

Deno.test("FileAuthPlugin.init rejects when the password file cannot be read", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const plugin = new FileAuthPlugin({ passwordFile: `${dir}/missing` });
    await assert.rejects(plugin.init(context()), /Cannot read password file ".*missing"/);
  } finally {
    await Deno.remove(dir);
  }
});

Deno.test("FileAuthPlugin without passwordFile abstains and warns", async () => {
  const plugin = new FileAuthPlugin();
  const ctx = context();
  await plugin.init(ctx);
  assert.equal(await plugin.authenticate(client("alice", "alice-pw")), undefined);
  assert.ok(ctx.lines.some((l) => l.startsWith("warning: No password file configured")));
  await plugin.reload(); // nothing to reload, no error
});

Deno.test("FileAuthPlugin rejects a non-string passwordFile", () => {
  assert.throws(() => new FileAuthPlugin({ passwordFile: "" }), TypeError);
  assert.throws(
    () => new FileAuthPlugin({ passwordFile: 42 as unknown as string }),
    /passwordFile must be a non-empty string/,
  );
});

Deno.test("FileAuthPlugin.reload picks up added, changed and removed users", async () => {
  await withFile(`alice:${ALICE}\n`, async (path) => {
    const plugin = open(path);
    await plugin.init(context());
    assert.equal(await plugin.authenticate(client("bob", "bob:pw")), false);
    const newAlice = await hashPassword("new-alice-pw", { rounds: 1000 });
    await Deno.writeTextFile(path, `alice:${newAlice}\nbob:${BOB}\n`);
    await plugin.reload();
    assert.equal(await plugin.authenticate(client("bob", "bob:pw")), true);
    assert.equal(await plugin.authenticate(client("alice", "alice-pw")), false);
    assert.equal(await plugin.authenticate(client("alice", "new-alice-pw")), true);
    await Deno.writeTextFile(path, `bob:${BOB}\n`);
    await plugin.reload();
    assert.equal(await plugin.authenticate(client("alice", "new-alice-pw")), false);
  });
});

Deno.test("FileAuthPlugin.reload keeps the old users when the file cannot be read", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/passwd`;
    await Deno.writeTextFile(path, `alice:${ALICE}\n`);
    const plugin = open(path);
    const ctx = context();
    await plugin.init(ctx);
    await Deno.remove(path);
    await plugin.reload(); // must not reject
    assert.equal(plugin.userCount, 1);
    assert.equal(await plugin.authenticate(client("alice", "alice-pw")), true);
    assert.ok(
      ctx.lines.some((l) =>
        l.startsWith("error: Cannot read password file") && l.includes("keeping the 1 user(s)")
      ),
      ctx.lines.join("\n"),
    );
  } finally {
    for (const plugin of opened.splice(0)) plugin.close();
    await Deno.remove(dir, { recursive: true });
  }
});

// `echo -n s3cret | argon2 somesaltsalt16b -id -t 3 -m 16 -p 4 -l 32 -e`: aMQTT 0.12's argon2-cffi
// parameters (64 MiB, 3 passes, 4 lanes), about 220 ms of hashing.
const ARGO =
  "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzYWx0MTZi$AcbrqdBUDNhw7N/M1QAHTUq8FPAFiy7EczkZh42MVo8";

/** Runs `check`, counting how often a 1 ms interval timer fired meanwhile. */
async function ticksDuring(check: () => Promise<unknown>): Promise<number> {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  try {
    await check();
  } finally {
    clearInterval(timer);
  }
  return ticks;
}

Deno.test("FileAuthPlugin hashes off the broker's thread: timers keep running during an argon2id check", async () => {
  await withFile(`argo:${ARGO}\n`, async (path) => {
    const plugin = open(path);
    await plugin.init(context());
    assert.equal(await plugin.authenticate(client("argo", "s3cret")), true); // worker warmed up
    // On the calling thread the whole check runs without yielding: no timer could fire.
    const ticks = await ticksDuring(() => plugin.authenticate(client("argo", "wrong")));
    assert.ok(ticks >= 5, `only ${ticks} timer ticks during a check of some 200 ms`);
  });
});

Deno.test("FileAuthPlugin refuses an unknown user after a check as costly as a known user's", async () => {
  // With only argon2 users, an unknown name must not be refused in the time of a cheap check:
  // that would tell an attacker which user names exist.
  await withFile(`argo:${ARGO}\n`, async (path) => {
    const plugin = open(path);
    await plugin.init(context());
    const timed = async (user: string) => {
      const started = performance.now();
      assert.equal(await plugin.authenticate(client(user, "guess")), false);
      return performance.now() - started;
    };
    await timed("argo"); // warm-up
    // The fastest of three each: other work on the machine only ever adds time, so the minima
    // compare the checks themselves. A cheap refusal would take well under 1% of an argon2 check;
    // the bound is a tenth, since on a loaded machine one side's minimum alone can be 3× slower
    // (seen: 541 against 1704 ms).
    const fastest = async (users: string[]) => {
      let best = Infinity;
      for (const user of users) best = Math.min(best, await timed(user));
      return best;
    };
    const known = await fastest(["argo", "argo", "argo"]);
    const unknown = await fastest(["nobody", "nobody2", "nobody3"]);
    assert.ok(
      unknown > known * 0.1,
      `unknown ${unknown.toFixed(0)} ms, known ${known.toFixed(0)} ms`,
    );
  });
});

Deno.test("FileAuthPlugin refuses after close()", async () => {
  await withFile(`alice:${ALICE}\n`, async (path) => {
    const plugin = open(path);
    await plugin.init(context());
    assert.equal(await plugin.authenticate(client("alice", "alice-pw")), true);
    plugin.close();
    assert.equal(await plugin.authenticate(client("alice", "alice-pw")), false);
  });
});
