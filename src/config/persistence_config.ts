/**
 * The resolved persistence settings of the broker: whether state is kept in a store file, where,
 * and how durably.
 *
 * @module
 */

/** Default store file: aMQTT's SessionDBPlugin default (`sqlite+aiosqlite:///amqtt.db`). */
export const DEFAULT_PERSISTENCE_PATH = "amqtt.db";

/** aMQTT class names of the session persistence plugin, current and 0.11's. */
export const SESSION_DB_PLUGIN_CLASSES: readonly string[] = [
  "amqtt.contrib.persistence.SessionDBPlugin",
  "amqtt.plugins.persistence.SessionDBPlugin",
];

/**
 * Where broker state lives, from the `persistence` section or aMQTT's `SessionDBPlugin`.
 *
 * ```yaml
 * persistence:
 *   enabled: true        # default true when the section is given; false without it
 *   path: amqtt.db       # the SQLite store file ("file" is accepted too)
 *   sync: full           # full | normal
 *   clear_on_shutdown: false
 * ```
 *
 * or, as in aMQTT:
 *
 * ```yaml
 * plugins:
 *   amqtt.contrib.persistence.SessionDBPlugin:
 *     connection: sqlite+aiosqlite:///amqtt.db
 *     clear_on_shutdown: true
 * ```
 */
export interface PersistenceConfig {
  /**
   * Keep sessions, queued and in-flight messages and retained messages in the store file.
   * Default `false`; `true` when the `persistence` section or `SessionDBPlugin` is given (unless
   * it says `enabled: false`, or names an in-memory database).
   */
  enabled: boolean;
  /**
   * The SQLite store file, relative to the working directory unless absolute. Its directory
   * must exist. Default `amqtt.db`.
   */
  path: string;
  /**
   * `full` (the default): each commit is fsynced, so an acknowledged message survives a power
   * loss. `normal`: it survives a crash or kill of the broker, not of the machine; faster.
   */
  sync: "full" | "normal";
  /**
   * Delete everything stored when the broker shuts down normally, keeping state only across
   * crashes (aMQTT's `clear_on_shutdown`). Default `false` in the `persistence` section, `true`
   * with `SessionDBPlugin` (as in aMQTT).
   */
  clearOnShutdown: boolean;
}
