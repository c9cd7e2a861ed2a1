/**
 * Reading configuration files with errors that name the file instead of a stack trace.
 *
 * @module
 */

import { ConfigError } from "./config_error.ts";

/**
 * Reads a configuration file as UTF-8 text.
 *
 * @param path The file to read.
 * @returns Its text.
 * @throws {ConfigError} If the file is missing, unreadable or not permitted.
 */
export async function readConfigFile(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    let reason: string;
    if (error instanceof Deno.errors.NotFound) {
      reason = `Cannot read config file ${JSON.stringify(path)}: file does not exist`;
    } else if (error instanceof Deno.errors.IsADirectory) {
      reason = `Cannot read config file ${JSON.stringify(path)}: it is a directory`;
    } else if (
      error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
    ) {
      reason = `Cannot read config file ${JSON.stringify(path)}: permission denied`;
    } else {
      reason = `Cannot read config file ${JSON.stringify(path)}: ${(error as Error).message}`;
    }
    throw new ConfigError(reason, { cause: error });
  }
}
