/**
 * `amqtt --check`: everything start-up would find wrong with a configuration, without binding
 * anything: the configuration itself (as `-c` reads it), its plugins, the TLS certificates and
 * keys of its listeners, and the password files it names.
 *
 * @module
 */

import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { Broker, type BrokerConfig, parsePasswordFile } from "./_deps.ts";
import { CliError } from "./_program.ts";
import type { Logger } from "./_log.ts";

/**
 * Checks a resolved configuration's plugins and files.
 *
 * @param config the configuration, as loaded
 * @param log where warnings go (password file lines that would be skipped)
 * @throws {CliError} with one line saying what is wrong
 */
export async function checkBrokerConfig(config: BrokerConfig, log: Logger): Promise<void> {
  try {
    new Broker(config, { logger: { debug() {}, info() {}, warning() {}, error() {} } });
  } catch (error) {
    throw new CliError(`Cannot create the broker: ${(error as Error).message}`, { cause: error });
  }
  for (const l of config.listeners) {
    if (!l.ssl || l.certfile === undefined || l.keyfile === undefined) continue;
    const fail = (what: string, error?: unknown) =>
      new CliError(`Cannot start the broker: listener "${l.name}": ${what}`, { cause: error });
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(await Deno.readTextFile(l.certfile));
    } catch (error) {
      throw fail(`certfile "${l.certfile}" holds no PEM certificate`, error);
    }
    let key: KeyObject;
    try {
      key = createPrivateKey(await Deno.readTextFile(l.keyfile));
    } catch (error) {
      throw fail(`keyfile "${l.keyfile}" holds no PEM private key`, error);
    }
    if (!cert.checkPrivateKey(key)) {
      throw fail(`keyfile "${l.keyfile}" is not the key of certfile "${l.certfile}"`);
    }
  }
  const files = new Set<string>();
  for (const p of config.plugins) {
    const file = (p.options as { passwordFile?: unknown }).passwordFile;
    if (typeof file === "string") files.add(file);
  }
  for (const l of config.listeners) if (l.passwordFile !== undefined) files.add(l.passwordFile);
  for (const file of files) {
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch (error) {
      throw new CliError(
        `Cannot start the broker: Cannot read password file "${file}": ` +
          (error as Error).message,
        { cause: error },
      );
    }
    for (const issue of parsePasswordFile(text).issues) {
      log.warning(`Password file "${file}" line ${issue.line}: ${issue.message}`);
    }
  }
}
