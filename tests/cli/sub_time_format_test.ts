/**
 * `amqtt_sub -F` time sequences (`@X` as C's strftime `%X`, `@N`, `@@`), as mosquitto_sub prints
 * them: a fixed clock for the exact text, and mosquitto_sub itself for the comparison.
 *
 * @module
 */

import assert from "node:assert/strict";
import { checkFormat, formatMessage } from "../../cli/_format.ts";
import { runCli, startBroker } from "./_helpers.ts";
import { zoneAbbreviation } from "../../cli/_zone_abbreviation.ts";
import { nanosecondOf, PreciseDate, wallClock } from "../../cli/_wall_clock.ts";

const message = {
  topic: "t",
  payload: new TextEncoder().encode("x"),
  qos: 0 as const,
  retain: false,
  dup: false,
};

function format(f: string, now: Date): string {
  return new TextDecoder().decode(
    formatMessage(message, { format: f, eol: false, now: () => now }),
  );
}

Deno.test("amqtt_sub -F @ sequences print local time as strftime does, @N the nanoseconds, @@ an at sign", () => {
  // Local time: whatever the zone, these fields are the ones given to the constructor.
  const d = new Date(2026, 2, 4, 15, 6, 7, 89);
  assert.equal(format("@Y-@m-@d @H:@M:@S", d), "2026-03-04 15:06:07");
  assert.equal(format("@N", d), "089000000");
  assert.equal(format("@s", d), String(Math.floor(d.getTime() / 1000)));
  assert.equal(format("@a @A @b @B @e @j @y @C", d), "Wed Wednesday Mar March  4 063 26 20");
  assert.equal(
    format("@I @p @T @R @D @F @u @w", d),
    "03 PM 15:06:07 15:06 03/04/26 2026-03-04 3 3",
  );
  assert.equal(format("@U @W @V @G", d), "09 09 10 2026");
  assert.match(format("@z", d), /^[+-]\d{4}$/);
  assert.equal(format("@@ @% @Q 100@@", d), "@ % %Q 100@");
  assert.equal(format("%t @H", d), "t 15", "with % sequences");
  // ISO weeks at the turn of the year: 2027-01-01 is in week 53 of 2026.
  assert.equal(format("@G-W@V @g", new Date(2027, 0, 1)), "2026-W53 26");
  // A clock read once per message: every field of a line comes from the same instant.
  let reads = 0;
  formatMessage(message, {
    format: "@S @N %I",
    now: () => {
      reads++;
      return d;
    },
  });
  assert.equal(reads, 1);
});

Deno.test("amqtt_sub -F: a format ending in @ is refused before connecting, as mosquitto_sub", async () => {
  assert.equal(checkFormat("@H@"), "Incomplete format specifier");
  assert.equal(checkFormat("@@"), undefined);
  assert.equal(checkFormat("@Q"), undefined, "strftime decides, and prints it as written");
  const r = await runCli("amqtt_sub.ts", ["-t", "a", "-F", "@Y@"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /Incomplete format specifier/);
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
});

Deno.test("amqtt_sub -F @ sequences print what mosquitto_sub prints for the same message (TZ=Asia/Kolkata)", async () => {
  const { broker, port } = await startBroker();
  await using _broker = broker;
  await broker.publish("clock", "tick", { retain: true });
  // Fields that change at most daily, so that the two tools, run one after the other, agree.
  const f = "@Y-@m-@d|@a|@A|@b|@B|@C|@y|@e|@j|@u|@w|@U|@W|@V|@G|@g|@D|@F|@z|@Z|@@|@Q|@%|@t.";
  const env = { TZ: "Asia/Kolkata" };
  const args = ["-h", "127.0.0.1", "-p", String(port), "-t", "clock", "-C", "1", "-F", f];
  for (let attempt = 0;; attempt++) {
    const day = new Date().toDateString();
    const theirs = await new Deno.Command("mosquitto_sub", { args, env, stdin: "null" }).output();
    assert.equal(theirs.code, 0, new TextDecoder().decode(theirs.stderr));
    const ours = await runCli("amqtt_sub.ts", args, { env });
    assert.equal(ours.code, 0, ours.stderr);
    // Run again if the day changed between the two runs (a midnight between them).
    if (day !== new Date().toDateString() && attempt === 0) continue;
    assert.equal(ours.text, new TextDecoder().decode(theirs.stdout));
    assert.match(ours.text, /\|\+0530\|IST\|@\|%Q\|%\|\t\.\n$/);
    break;
  }
});

Deno.test("amqtt_sub -F @Z prints the zone abbreviation glibc's strftime %Z prints, in winter and in summer", async () => {
  // `date` formats with glibc's strftime, as mosquitto_sub does: the reference.
  const zones = [
    "UTC",
    "Asia/Kolkata",
    "America/New_York",
    "Europe/Berlin",
    ":Europe/Berlin",
    "Asia/Dubai",
    "Australia/Lord_Howe",
    "EST5EDT",
    "<+04>-4",
    "ABC-3",
    "",
  ];
  const instants = [Date.UTC(2026, 0, 15, 12), Date.UTC(2026, 6, 15, 12), Date.UTC(1990, 6, 1)];
  const module = new URL("../../cli/_zone_abbreviation.ts", import.meta.url).href;
  for (const tz of zones) {
    const want: string[] = [];
    for (const t of instants) {
      const ref = await new Deno.Command("date", {
        args: ["-d", `@${t / 1000}`, "+%Z"],
        env: { TZ: tz },
      }).output();
      want.push(new TextDecoder().decode(ref.stdout).trim());
    }
    // The runtime's offset at each instant comes from its own TZ: a child process with it.
    const ours = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { zoneAbbreviation } from "${module}";` +
        `for (const t of ${JSON.stringify(instants)}) ` +
        `console.log(zoneAbbreviation(new Date(t), Deno.env.get("TZ")));`,
      ],
      env: { TZ: tz },
    }).output();
    assert.deepEqual(new TextDecoder().decode(ours.stdout).trim().split("\n"), want, `TZ=${tz}`);
  }
  // A zone file that is no zone: UTC, as glibc with an unreadable zone.
  assert.equal(zoneAbbreviation(new Date(), "/dev/null"), "UTC");
});

Deno.test("amqtt_sub -F @N, %U and %j carry the clock's nanoseconds; a plain Date gives its milliseconds", () => {
  const precise = new PreciseDate(1_796_000_000_123.5);
  assert.equal(nanosecondOf(precise), 123_500_000);
  assert.equal(format("@N", precise), "123500000");
  assert.equal(format("%U", precise), "1796000000.123500000");
  assert.match(format("%j", precise), /"tst":"[^"]*\.123500Z/);
  assert.equal(format("@N", new Date(1_796_000_000_123)), "123000000");
  // The default clock tells more than milliseconds: some of many readings fall between them.
  // Each reading is within the 1 s it may differ from Date.now() (the precise clock drifts from
  // it; past 1 s wallClock falls back to Date.now()) of the Date.now() readings around it.
  const readings = Array.from({ length: 200 }, () => {
    const before = Date.now();
    const d = wallClock();
    return { before, d, after: Date.now() };
  });
  assert.ok(
    readings.some(({ d }) => nanosecondOf(d) % 1_000_000 !== 0),
    "sub-millisecond readings",
  );
  for (const { before, d, after } of readings) {
    assert.equal(Math.floor(nanosecondOf(d) / 1_000_000), d.getMilliseconds());
    const t = d.getTime();
    assert.ok(before - 1000 <= t && t <= after + 1000, `${before} ${t} ${after}`);
  }
});
