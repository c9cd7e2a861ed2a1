/**
 * README.md and cli/README.md as a user reads them: every TypeScript block type-checks as shown,
 * the embedding sample runs and keeps serving until Ctrl-C, every shell line names tasks and flags
 * that exist, the YAML sample is a configuration the broker accepts, and cli/README.md is part of
 * the @amqtt/cli package.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { MQTTClient } from "../../client.ts";
import { Broker } from "../../broker.ts";
import { loadBrokerConfigFile } from "../../src/config/mod.ts";
import { hashPassword } from "../../src/plugins/password_hash.ts";
import { waitFor } from "../_helpers/broker.ts";
import { certFiles } from "../_helpers/certs.ts";
import { tempDir } from "../_helpers/temp_dir.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CONFIG = `${ROOT}deno.json`;

interface Block {
  lang: string;
  code: string;
  line: number;
}

async function readmeBlocks(path = `${ROOT}README.md`): Promise<Block[]> {
  const text = await Deno.readTextFile(path);
  const blocks: Block[] = [];
  for (const m of text.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)) {
    blocks.push({ lang: m[1], code: m[2], line: text.slice(0, m.index).split("\n").length });
  }
  return blocks;
}

async function deno(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

Deno.test("README: every ts block type-checks as shown (no undefined names)", async () => {
  const blocks = (await readmeBlocks()).filter((b) => b.lang === "ts");
  assert.ok(blocks.length >= 2, "the embedding and client samples");
  await using dir = await tempDir("amqtt_readme_");
  const files: string[] = [];
  for (const b of blocks) {
    const file = `${dir.path}/readme_line_${b.line}.ts`;
    await Deno.writeTextFile(file, b.code);
    files.push(file);
  }
  const r = await deno(["check", "--config", CONFIG, ...files]);
  assert.equal(r.code, 0, r.stderr);
});

Deno.test("README: the embedding sample runs as shown, keeps serving clients after its module ends, and stops on Ctrl-C", async () => {
  const block = (await readmeBlocks()).find((b) =>
    b.lang === "ts" && b.code.includes("new Broker(")
  );
  assert.ok(block, "the embedding sample");
  // The one change: a free loopback port instead of 0.0.0.0:1883, which may be taken here.
  const code = block.code.replace('"0.0.0.0:1883"', '"127.0.0.1:0"');
  assert.notEqual(code, block.code, "the sample binds 0.0.0.0:1883");
  const dir = await Deno.makeTempDir({ prefix: "amqtt_readme_" });
  const file = `${dir}/embed.ts`;
  await Deno.writeTextFile(file, code);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, file],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let stdout = "";
  const wakers = new Set<() => void>();
  const reading = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      stdout += decoder.decode(chunk, { stream: true });
      for (const wake of wakers) wake();
    }
    for (const wake of wakers) wake();
  })();
  const waitFor = (pattern: RegExp) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const m = stdout.match(pattern);
        if (m !== null) {
          wakers.delete(check);
          clearTimeout(timer);
          resolve(m);
        }
      };
      const timer = setTimeout(() => {
        wakers.delete(check);
        reject(new Error(`No ${pattern} in the sample's output: ${stdout}`));
      }, 30_000);
      wakers.add(check);
      check();
    });
  try {
    const [, port] = await waitFor(/Listening on port (\d+)\n/);
    // The old sample (top-level `await using`) shut the broker down right here.
    await new Promise((r) => setTimeout(r, 500));
    await using client = new MQTTClient({
      clientId: "readme-reader",
      config: { auto_reconnect: false },
    });
    await client.connect(`mqtt://127.0.0.1:${port}`);
    await client.subscribe([{ topic: "status/broker", qos: 1 }]);
    const status = await client.deliverMessage({ timeout: 10_000 });
    assert.equal(new TextDecoder().decode(status.payload), "up");
    assert.equal(status.retain, true);
    await client.publish("sensors/t1", "21.5", { qos: 1 });
    await waitFor(/readme-reader published to sensors\/t1\n/);
    await client.disconnect();
    child.kill("SIGINT");
    const status2 = await child.status;
    assert.equal(status2.code, 0, await stderr);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* ended */ }
    await child.status;
    await reading;
    await stderr;
    await Deno.remove(dir, { recursive: true });
  }
});

/** Splits a shell line into words (single and double quotes; a trailing `# comment` dropped). */
function words(line: string): string[] {
  const out: string[] = [];
  let word = "";
  let quote = "";
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote !== "") {
      if (c === quote) quote = "";
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === "#" && !inWord) {
      break;
    } else if (c === " " || c === "\t") {
      if (inWord) out.push(word);
      word = "";
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) out.push(word);
  return out;
}

for (const readme of ["README.md", "cli/README.md"]) {
  Deno.test(`${readme}: every sh line runs a task that exists or a command whose flags its --help lists`, async () => {
    await checkShellLines(`${ROOT}${readme}`);
  });
}

async function checkShellLines(path: string): Promise<void> {
  const tasks = Object.keys(JSON.parse(await Deno.readTextFile(CONFIG)).tasks);
  const helps = new Map<string, string>();
  const help = async (command: string[]) => {
    const key = command.join(" ");
    if (!helps.has(key)) {
      const r = await deno(["run", "-A", "cli/main.ts", ...command, "--help"]);
      assert.equal(r.code, 0, `${key} --help: ${r.stderr}`);
      helps.set(key, r.stdout);
    }
    return helps.get(key)!;
  };
  let checked = 0;
  for (const block of (await readmeBlocks(path)).filter((b) => b.lang === "sh")) {
    // The admin API's curl lines run for real in their own test below.
    if (block.code.includes("curl ")) continue;
    for (const line of block.code.split("\n")) {
      const w = words(line);
      if (w.length === 0) continue;
      const task = w.indexOf("task");
      if (w[0] === "deno" && task === 1 || w[0] === "npx" && task > 0) {
        assert.ok(tasks.includes(w[task + 1]), `${path} line ${block.line}: task ${w[task + 1]}`);
        checked++;
        continue;
      }
      const entry = w.findIndex((x) => x === "cli/main.ts" || x === "jsr:@amqtt/cli");
      assert.ok(
        w[0] === "deno" && entry > 0,
        `${path} line ${block.line}: unknown command: ${line}`,
      );
      const rest = w.slice(entry + 1);
      const command = rest[0] === "bench" ? rest.slice(0, 2) : rest.slice(0, 1);
      const text = await help(command);
      for (const flag of rest.slice(command.length).filter((x) => /^--?[A-Za-z]/.test(x))) {
        const name = flag.split("=")[0];
        assert.match(
          text,
          new RegExp(`(^|[\\s,(/])${name.replace(/[-]/g, "\\-")}([\\s,=);]|$)`, "m"),
          `${path} line ${block.line}: ${command.join(" ")} has no flag ${name}`,
        );
        checked++;
      }
    }
  }
  assert.ok(checked > 10, `${checked} tasks and flags checked`);
}

Deno.test("README: the YAML sample is a broker configuration the broker accepts", async () => {
  const block = (await readmeBlocks()).find((b) => b.lang === "yaml");
  assert.ok(block, "the configuration sample");
  await using certs = await certFiles();
  await using dir = await tempDir("amqtt_readme_");
  // The files it names, beside it.
  await Deno.copyFile(certs.serverCertFile, `${dir.path}/server.crt`);
  await Deno.copyFile(certs.serverKeyFile, `${dir.path}/server.key`);
  await Deno.copyFile(certs.caFile, `${dir.path}/ca.crt`);
  await Deno.writeTextFile(`${dir.path}/passwd.txt`, "");
  await Deno.writeTextFile(`${dir.path}/broker.yaml`, block.code);
  // Relative file names are read from the working directory, as when the broker runs there.
  const mod = new URL("../../src/config/mod.ts", import.meta.url).href;
  const script = `import { loadBrokerConfigFile } from "${mod}";\n` +
    `const c = await loadBrokerConfigFile("broker.yaml");\n` +
    `console.log(JSON.stringify(c.listeners.map((l) => l.name)));\n`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--config", CONFIG, script],
    cwd: dir.path,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const text = new TextDecoder();
  assert.equal(out.code, 0, text.decode(out.stderr));
  assert.deepEqual(JSON.parse(text.decode(out.stdout)), ["default", "secure", "ws"]);
});

Deno.test("cli/README.md is published with @amqtt/cli (its JSR page)", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["publish", "--dry-run", "--allow-dirty"],
    cwd: `${ROOT}cli`,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, text);
  assert.match(text, /Simulating publish of @amqtt\/cli@/);
  assert.match(text, /\/cli\/README\.md \(/);
});

Deno.test("README: the http listener sample serves, and its curl lines kick, delete and publish as described", async () => {
  const blocks = await readmeBlocks();
  const yaml = blocks.find((b) => b.lang === "yaml" && b.code.includes("type: http"));
  const curl = blocks.find((b) => b.lang === "sh" && b.code.includes("curl "));
  assert.ok(yaml && curl, "the http listener sample and its curl lines");
  await using dir = await tempDir("amqtt_readme_");
  // The sample as shown, on free loopback ports, with alice's password in the file it names.
  const password = "s3cret-of-alice";
  await Deno.writeTextFile(`${dir.path}/passwd.txt`, `alice:${await hashPassword(password)}\n`);
  const config = yaml.code.replace("0.0.0.0:1883", "127.0.0.1:0")
    .replace("127.0.0.1:8080", "127.0.0.1:0").replace("passwd.txt", `${dir.path}/passwd.txt`);
  await Deno.writeTextFile(`${dir.path}/broker.yaml`, config);
  await using broker = new Broker(await loadBrokerConfigFile(`${dir.path}/broker.yaml`));
  await broker.start();
  const mqtt = broker.listeners.find((l) => l.transport === "tcp")!;
  const http = broker.listeners.find((l) => l.transport === "http")!;
  const url = `mqtt://alice:${password}@127.0.0.1:${mqtt.port}`;

  // What the curl lines act on: a connected sensor-17, a retained home/door, a listener.
  await using sensor = new MQTTClient({
    clientId: "sensor-17",
    config: { auto_reconnect: false },
  });
  await sensor.connect(url);
  await using watcher = new MQTTClient({ clientId: "watcher" });
  await watcher.connect(url);
  await watcher.publish("home/door", "open", { qos: 1, retain: true });
  await watcher.subscribe([{ topic: "home/door/set", qos: 1 }]);
  const messages = watcher.messages()[Symbol.asyncIterator]();

  const script = curl.code.replaceAll("127.0.0.1:8080", `127.0.0.1:${http.port}`)
    .replaceAll("alice:PASSWORD", `alice:${password}`);
  const out = await new Deno.Command("bash", {
    args: ["-euo", "pipefail", "-c", script],
    stdin: "null",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));

  await waitFor(() => !broker.clients().some((c) => c.clientId === "sensor-17"), 10_000, "kick");
  assert.ok(!broker.retainedMessages().some((m) => m.topic === "home/door"), "retained deleted");
  const next = await messages.next();
  assert.ok(!next.done, "the published message arrives");
  assert.equal(next.value.topic, "home/door/set");
  assert.equal(new TextDecoder().decode(next.value.payload), "close");
});

Deno.test("README: the persistence sample keeps a retained message and a queued message across a restart", async () => {
  const block = (await readmeBlocks()).find((b) =>
    b.lang === "yaml" && b.code.includes("persistence:")
  );
  assert.ok(block, "the persistence sample");
  await using dir = await tempDir("amqtt_readme_");
  // The one change: a free loopback port; `amqtt.db` is made absolute, in the temp directory.
  const yaml = block.code.replace("0.0.0.0:1883", "127.0.0.1:0")
    .replace("path: amqtt.db", `path: ${dir.path}/amqtt.db`);
  await Deno.writeTextFile(`${dir.path}/broker.yaml`, yaml);
  const quiet = { debug() {}, info() {}, warning() {}, error() {} };
  {
    await using broker = new Broker(await loadBrokerConfigFile(`${dir.path}/broker.yaml`), {
      logger: quiet,
    });
    await broker.start();
    const url = `mqtt://127.0.0.1:${broker.listeners[0]!.port}`;
    await using sub = new MQTTClient({ clientId: "reader" });
    await sub.connect(url, { cleanSession: false });
    await sub.subscribe([["news/#", 1]]);
    await sub.disconnect();
    await using pub = new MQTTClient();
    await pub.connect(url);
    await pub.publish("news/today", "stored", { qos: 1, retain: true });
    await pub.disconnect();
  }
  await using broker = new Broker(await loadBrokerConfigFile(`${dir.path}/broker.yaml`), {
    logger: quiet,
  });
  await broker.start();
  assert.deepEqual(broker.retainedMessages().filter((m) => m.topic === "news/today").length, 1);
  await using sub = new MQTTClient({ clientId: "reader" });
  await sub.connect(`mqtt://127.0.0.1:${broker.listeners[0]!.port}`, { cleanSession: false });
  const message = await sub.deliverMessage({ timeout: 10_000 });
  assert.equal(new TextDecoder().decode(message.payload), "stored");
  await sub.disconnect();
});

Deno.test("README: the enhanced authentication sample runs as shown (SCRAM-SHA-256 login from a password file, and re-authentication)", async () => {
  const block = (await readmeBlocks()).find((b) =>
    b.lang === "ts" && b.code.includes("scramSha256Auth(")
  );
  assert.ok(block, "the enhanced authentication sample");
  await using dir = await tempDir("amqtt_readme_");
  const file = `${dir.path}/enhanced_auth.ts`;
  await Deno.writeTextFile(file, block.code);
  // In its own directory: the sample writes passwd.txt where it runs (and removes it).
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, file],
    cwd: dir.path,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.deepEqual([...Deno.readDirSync(dir.path)].map((e) => e.name), ["enhanced_auth.ts"]);
});
