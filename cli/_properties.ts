/**
 * mosquitto's `-D/--property command identifier value` flag of `amqtt_pub` and `amqtt_sub`: MQTT
 * 5.0 properties for the packets the tool sends, by mosquitto's names (`user-property` takes a
 * name and a value).
 *
 * @module
 */

import { PacketType, PROPERTY_TABLE, type PropertyInfo, type UserProperty } from "./_deps.ts";
import { usageError } from "./_program.ts";

/** The packets (and the will) a `-D` flag may give properties to. */
export type PropertyCommand =
  | "connect"
  | "publish"
  | "subscribe"
  | "unsubscribe"
  | "disconnect"
  | "will";

/** MQTT 5.0 properties by their key in the packet model (`contentType`, `userProperties`…). */
export type PropertyValues = Record<string, unknown> & { userProperties?: UserProperty[] };

/** The properties of each command given with `-D`, in the order given. */
export type CommandProperties = Partial<Record<PropertyCommand, PropertyValues>>;

const CONTEXTS: Record<PropertyCommand, PropertyInfo["contexts"][number]> = {
  connect: PacketType.CONNECT,
  publish: PacketType.PUBLISH,
  subscribe: PacketType.SUBSCRIBE,
  unsubscribe: PacketType.UNSUBSCRIBE,
  disconnect: PacketType.DISCONNECT,
  will: "will",
};

/** mosquitto's property names that do not follow from the packet model's keys. */
const SPECIAL_NAMES: Record<string, string> = {
  "user-property": "userProperties",
  "maximum-qos": "maximumQoS",
};

const MAX_VBI = 268_435_455;

/**
 * Takes every `-D`/`--property` group out of the arguments: the flag, the command, the property
 * name and its value (two values for `user-property`), as mosquitto reads them, so a value may
 * start with `-`. Nothing after `--` is looked at.
 *
 * @param args the command-line arguments
 * @returns the other arguments, and the word groups after each `-D` (checked later by
 *   {@linkcode parseProperties})
 */
export function takePropertyArgs(args: string[]): { args: string[]; groups: string[][] } {
  const rest: string[] = [];
  const groups: string[][] = [];
  for (let i = 0; i < args.length; i++) {
    const word = args[i]!;
    if (word === "--") {
      rest.push(...args.slice(i));
      break;
    }
    if (word !== "-D" && word !== "--property") {
      rest.push(word);
      continue;
    }
    const count = args[i + 2] === "user-property" ? 4 : 3;
    groups.push(args.slice(i + 1, i + 1 + count));
    i += count;
  }
  return { args: rest, groups };
}

/**
 * Checks the `-D` groups and turns them into properties per command.
 *
 * @param groups the groups from {@linkcode takePropertyArgs}
 * @param tool the tool's name, for messages
 * @param commands the commands this tool sends
 * @returns the properties of each command
 * @throws {CliError} a usage error (exit code 2) naming what is wrong
 */
export function parseProperties(
  groups: string[][],
  tool: string,
  commands: readonly PropertyCommand[],
): CommandProperties {
  const result: CommandProperties = {};
  for (const group of groups) {
    const [command, name] = group;
    const user = name === "user-property";
    if (group.length < (user ? 4 : 3)) {
      throw usageError(
        "Option -D/--property needs a command, a property name and a value " +
          "(user-property: a name and a value)",
      );
    }
    const cmd = command!.toLowerCase() as PropertyCommand;
    if ((cmd as string) === "auth" || (cmd as string) === "pubrel") {
      // mosquitto knows these commands but takes no property for them.
      throw usageError(`Property ${name} is not supported for ${cmd} (-D/--property)`);
    }
    if (!(cmd in CONTEXTS)) {
      throw usageError(
        `Invalid -D/--property command "${command}": expected connect, publish, subscribe, ` +
          "unsubscribe, disconnect or will",
      );
    }
    if (!commands.includes(cmd)) {
      throw usageError(
        `Invalid -D/--property command "${command}": ${tool} sends ${commands.join(", ")}`,
      );
    }
    const key = SPECIAL_NAMES[name!] ??
      name!.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const info = /^[a-z]+(-[a-z]+)*$/.test(name!)
      ? PROPERTY_TABLE.find((p) => p.name === key)
      : undefined;
    if (info === undefined) throw usageError(`Invalid -D/--property name "${name}"`);
    if (!info.contexts.includes(CONTEXTS[cmd])) {
      throw usageError(`Property ${name} is not allowed for ${cmd} (-D/--property)`);
    }
    const values = result[cmd] ??= {};
    if (user) {
      (values.userProperties ??= []).push([group[2]!, group[3]!]);
      continue;
    }
    if (key in values) throw usageError(`Property ${name} is given twice for ${cmd}`);
    values[key] = propertyValue(info, name!, group[2]!);
  }
  return result;
}

/** The value of one property from its text, checked against its data type and range. */
function propertyValue(info: PropertyInfo, name: string, text: string): unknown {
  switch (info.type) {
    case "string":
      return text;
    case "binary":
      // As mosquitto: the text's bytes.
      return new TextEncoder().encode(text);
    case "byte":
      // Every byte property a client sends is a 0/1 switch.
      return integerValue(name, text, 0, 1);
    case "u16":
      return integerValue(
        name,
        text,
        name === "receive-maximum" || name === "topic-alias" ? 1 : 0,
        0xffff,
      );
    case "u32":
      return integerValue(name, text, name === "maximum-packet-size" ? 1 : 0, 0xffffffff);
    case "varint":
      // Only subscription-identifier gets here, and it is never 0 [MQTT-3.8.2-2].
      return integerValue(name, text, 1, MAX_VBI);
    default:
      throw usageError(`Property ${name} cannot be given with -D/--property`);
  }
}

function integerValue(name: string, text: string, min: number, max: number): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw usageError(
      `Invalid value "${text}" for property ${name} (-D/--property): expected an integer from ` +
        `${min} to ${max}`,
    );
  }
  return n;
}
