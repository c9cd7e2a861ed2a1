/**
 * The amqtt command-line tools in one entry: `broker`, `pub`, `sub` and `passwd`.
 *
 * ```sh
 * deno run -A jsr:@amqtt/cli broker -c broker.yaml
 * deno run -A jsr:@amqtt/cli sub -h localhost -t 'sensors/#' -v
 * deno run -A jsr:@amqtt/cli pub -h localhost -t sensors/t1 -m 21.5
 * deno run -A jsr:@amqtt/cli passwd -c passwd alice
 * ```
 *
 * The same tools run alone as `amqtt` (`./amqtt`), `amqtt_pub` (`./amqtt_pub`) and `amqtt_sub`
 * (`./amqtt_sub`), which `deno task compile` builds into single binaries.
 *
 * @example
 * ```ts
 * import { main } from "./main.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(await main(["--version"]), 0);
 * assert.equal(await main(["no-such-command"]), 2);
 * ```
 *
 * @module
 */

import { VERSION } from "./_deps.ts";
import { runBroker } from "./amqtt.ts";
import { runPub } from "./amqtt_pub.ts";
import { runSub } from "./amqtt_sub.ts";
import { runPasswd } from "./passwd.ts";
import { runBenchCommand } from "./bench/mod.ts";
import { EXIT_USAGE, writeStdout } from "./_program.ts";

export { runBroker } from "./amqtt.ts";
export { runPub } from "./amqtt_pub.ts";
export { runSub } from "./amqtt_sub.ts";
export { runPasswd } from "./passwd.ts";
export { runBenchCommand } from "./bench/mod.ts";
export type { CommandOptions } from "./_program.ts";

const HELP = `Usage: amqtt <command> [options]

MQTT broker and clients (aMQTT-compatible flags and configuration).

Commands:
  broker   run a broker                   (amqtt)
  pub      publish messages               (amqtt_pub)
  sub      subscribe and print messages   (amqtt_sub)
  passwd   manage a password file         (like mosquitto_passwd)
  bench    load generator: bench pub|sub|conn (like emqtt-bench)

Options:
  --version   show the version and exit
  -h, --help  show this help and exit

Run "amqtt <command> --help" for the options of a command.
`;

/**
 * Runs the command named by `args[0]` with the rest of `args`.
 *
 * @param args the command-line arguments, e.g. `["pub", "-t", "a", "-m", "x"]`
 * @returns the exit code: 0 done, 1 failed, 2 wrong command or flags
 *
 * @example
 * ```ts
 * import { main } from "./main.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(await main(["pub", "--help"]), 0);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case "broker":
      return await runBroker(rest, { name: "amqtt broker" });
    case "pub":
      return await runPub(rest, { name: "amqtt pub" });
    case "sub":
      return await runSub(rest, { name: "amqtt sub" });
    case "passwd":
      return await runPasswd(rest, { name: "amqtt passwd" });
    case "bench":
      return await runBenchCommand(rest);
    case "-h":
    case "--help":
      await writeStdout(HELP);
      return 0;
    case "--version":
      await writeStdout(`${VERSION}\n`);
      return 0;
    case undefined:
      console.error(HELP);
      return EXIT_USAGE;
    default:
      console.error(
        `amqtt: Unknown command "${command}" (expected broker, pub, sub, passwd or bench; see --help)`,
      );
      return EXIT_USAGE;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
