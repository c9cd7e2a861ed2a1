// The dashboard in a real browser: Debian's headless Chromium driven with puppeteer-core. It logs
// in, shows a connected client and a live message rate, kicks the client (whose connection the
// broker closes), and keeps a screenshot. Bad credentials and a listener without admins show
// their errors on the page.
import assert from "node:assert/strict";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { delay, waitFor } from "../_helpers/broker.ts";
import { publishPacket, TestClient } from "../_helpers/test_client.ts";
import { PASSWORDS, startAdminBroker } from "./_helpers.ts";

const CHROMIUM = "/usr/bin/chromium";

// The page functions below run in the browser; these declarations only type them here (a
// `lib="dom"` reference would change the global types of every test checked with this file).
// deno-lint-ignore no-explicit-any
declare const document: any;
type Input = { value: string; dispatchEvent(e: unknown): void };
type Hideable = { hidden: boolean };

async function launch(): Promise<Browser & AsyncDisposable & { profile: string }> {
  const profile = await Deno.makeTempDir({ prefix: "amqtt_chromium_" });
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    userDataDir: profile,
    args: [
      "--no-sandbox",
      "--headless=new",
      "--disable-gpu",
      "--disable-background-networking",
      "--no-first-run",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return Object.assign(browser, {
    profile,
    async [Symbol.asyncDispose]() {
      await browser.close();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    },
  });
}

async function logIn(page: Page, user: string, password: string): Promise<void> {
  await page.waitForSelector("#login-view:not([hidden])");
  await page.$eval("#username", (e) => (e as unknown as Input).value = "");
  await page.type("#username", user);
  await page.$eval("#password", (e) => (e as unknown as Input).value = "");
  await page.type("#password", password);
  await page.click("#login button[type=submit]");
}

async function loginError(page: Page): Promise<string> {
  await page.waitForFunction(() => document.getElementById("login-error")!.textContent !== "");
  return await page.$eval("#login-error", (e) => e.textContent!);
}

Deno.test({
  name: "dashboard in Chromium: login, live client and rate, kick, screenshot",
  // puppeteer talks to Chromium over a pipe its own way; everything is closed at the end.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using b = await startAdminBroker();
    await using watched = await TestClient.connect(b.mqttPort, { clientId: "watched-device" });
    await watched.subscribe({ "sensors/#": 0 });
    await using publisher = await TestClient.connect(b.mqttPort, { clientId: "publisher" });
    await publisher.send(publishPacket("sensors/kitchen/temp", new TextEncoder().encode("21.5"), {
      retain: true,
    }));
    let publishing = true;
    const traffic = (async () => {
      for (let i = 0; publishing; i++) {
        await publisher.send(publishPacket("sensors/load", new TextEncoder().encode(String(i))));
        await delay(20);
      }
    })();
    try {
      await dashboardScenario(b, watched);
    } finally {
      publishing = false;
      await traffic;
    }
  },
});

async function dashboardScenario(
  b: Awaited<ReturnType<typeof startAdminBroker>>,
  watched: TestClient,
): Promise<void> {
  {
    await using browser = await launch();
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 1000 });
    const problems: string[] = [];
    page.on("pageerror", (e) => problems.push(String(e)));
    page.on("dialog", (dialog) => dialog.accept());
    await page.goto(`${b.url}/dashboard/?interval=250`);

    await logIn(page, "alice", "not-her-password");
    assert.equal(await loginError(page), "Wrong user name or password");
    assert.equal(await page.$eval("#dashboard", (e) => (e as unknown as Hideable).hidden), true);
    await logIn(page, "bob", PASSWORDS.bob);
    await page.waitForFunction(() =>
      document.getElementById("login-error")!.textContent!.includes("not an administrator")
    );

    await logIn(page, "alice", PASSWORDS.alice);
    await page.waitForSelector("#dashboard:not([hidden])");
    assert.equal(await page.$eval("#user", (e) => e.textContent), "alice");
    await page.waitForSelector('tr[data-client-id="watched-device"]');
    // A live rate: the publisher sends ~50 messages a second.
    await page.waitForFunction(() => Number(document.getElementById("rate-in")!.textContent) > 0);
    await page.waitForSelector("#chart svg polyline.in");
    await page.waitForSelector('#retained li[data-topic="sensors/kitchen/temp"]');
    assert.equal(await page.$eval("#clients-connected", (e) => e.textContent), "2");
    const cells = await page.$$eval(
      'tr[data-client-id="watched-device"] td',
      (tds) => tds.map((td) => td.textContent),
    );
    assert.equal(cells[0], "watched-device");
    assert.match(cells[1]!, /^127\.0\.0\.1:\d+$/);
    assert.equal(cells[3], "sensors/#");

    // Search narrows the table.
    await page.type("#search", "publ");
    await page.waitForFunction(() =>
      document.querySelector('tr[data-client-id="watched-device"]') === null &&
      document.querySelector('tr[data-client-id="publisher"]') !== null
    );
    await page.$eval("#search", (e) => {
      (e as unknown as Input).value = "";
      e.dispatchEvent(new Event("input"));
    });

    const shot = await Deno.makeTempDir({ prefix: "amqtt_dashboard_artifacts_" });
    await page.screenshot({ path: `${shot}/dashboard.png`, fullPage: true });
    const png = await Deno.readFile(`${shot}/dashboard.png`);
    assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47], "a PNG was written");
    console.log(`Dashboard screenshot: ${shot}/dashboard.png`);

    await page.click('tr[data-client-id="watched-device"] button.kick');
    await waitFor(() => watched.socketEnded, 5000, "the kicked client's connection to close");
    await page.waitForFunction(() =>
      document.querySelector('tr[data-client-id="watched-device"]') === null
    );
    assert.ok(b.log.has('Administrator "alice" disconnected client "watched-device"'));

    // Deleting the retained message from the tree.
    await page.click('#retained li[data-topic="sensors/kitchen/temp"] button.delete');
    await page.waitForFunction(() =>
      document.querySelector('#retained li[data-topic="sensors/kitchen/temp"]') === null
    );
    assert.ok(!b.broker.retainedMessages().some((m) => m.topic === "sensors/kitchen/temp"));

    assert.deepEqual(problems, [], "no script errors on the page");
  }
}

Deno.test({
  name: "dashboard in Chromium: a listener without admins says so on the login form",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using b = await startAdminBroker({ admins: [] });
    await using browser = await launch();
    const page = await browser.newPage();
    await page.goto(`${b.url}/dashboard/`);
    assert.match(await loginError(page), /No administrators are configured/);
    await logIn(page, "alice", PASSWORDS.alice);
    await page.waitForFunction(() =>
      document.getElementById("login-error")!.textContent!.includes("No administrators")
    );
    assert.equal(await page.$eval("#dashboard", (e) => (e as unknown as Hideable).hidden), true);
  },
});
