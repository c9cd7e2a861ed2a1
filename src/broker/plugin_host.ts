/**
 * The plugin host: holds the broker's plugins, combines their decisions and delivers events.
 *
 * @module
 */

import { ownProperties } from "./message.ts";
import type { QoS } from "../packet/constants.ts";
import type { Properties } from "../packet/types.ts";
import type {
  BrokerPlugin,
  ClientInfo,
  EnhancedAuthAnswer,
  EnhancedAuthRequest,
  EventHandlerName,
  Logger,
  PluginContext,
  PluginEventMap,
  PluginEventName,
} from "../plugins/types.ts";
import { errorText } from "./_error_text.ts";
import { AuthUnavailableError } from "../plugins/auth_unavailable.ts";
import {
  type AuthDecision,
  DEFAULT_HOOK_TIMEOUT,
  type Refused,
  type TopicDecision,
} from "./policy.ts";

/** Options for {@linkcode PluginHost}. */
export interface PluginHostOptions {
  /** Receives plugin errors, refusals by broken hooks and lifecycle messages. */
  logger: Logger;
  /**
   * Milliseconds an asynchronous decision may take before it counts as a denial; default
   * 10000, 0 waits forever. A hung auth backend then refuses clients instead of stalling them.
   */
  hookTimeout?: number;
}

/** The decision hooks, by name. */
type DecisionHook = "authenticate" | "authorizePublish" | "authorizeSubscribe" | "authorizeReceive";

// A record, not a list, so that adding an event to PluginEventMap without listing it here fails
// type checking.
const EVENTS: Record<PluginEventName, true> = {
  brokerPreStart: true,
  brokerPostStart: true,
  brokerPreShutdown: true,
  brokerPostShutdown: true,
  brokerClientConnected: true,
  brokerClientDisconnected: true,
  brokerClientSubscribed: true,
  brokerClientUnsubscribed: true,
  brokerMessageReceived: true,
  brokerMessageBroadcast: true,
  brokerRetainedMessage: true,
  mqttPacketReceived: true,
  mqttPacketSent: true,
};

/** The payload argument of {@linkcode PluginHost.emit}: none for the lifecycle events. */
export type EventArgs<K extends PluginEventName> = PluginEventMap[K] extends undefined ? []
  : [payload: PluginEventMap[K]];

type EventHandler = (payload?: unknown) => unknown;

/**
 * Holds the broker's plugins and answers the broker's questions by combining their decisions.
 *
 * Combination rules:
 * - **Connections** ({@linkcode authenticate}): accepted when at least one plugin answers `true`
 *   and none answers `false`. Abstaining (`undefined`/`null`) counts for neither. With no plugin
 *   implementing `authenticate`, every connection is refused (aMQTT 0.11 behaviour, fixing #187).
 * - **Topics** ({@linkcode authorizePublish}, {@linkcode authorizeSubscribe},
 *   {@linkcode authorizeReceive}): refused only when some plugin answers `false`; abstaining does
 *   not refuse (aMQTT's `all()` treated `None` as a refusal, contrary to its docs). With no plugin
 *   implementing the hook, everything is allowed.
 * - A hook that throws, rejects, answers something other than a boolean, `undefined` or `null`,
 *   or does not settle within `hookTimeout`, counts as `false`, and the error is logged. (aMQTT
 *   once accepted a connection when an auth plugin raised.) An `authenticate` hook that throws
 *   {@linkcode AuthUnavailableError} or times out did not decide on the login: the answer is
 *   `"unavailable"`, logged at debug level only (the broker summarises refusals itself).
 *
 * The answer is synchronous (`boolean`) whenever every consulted hook answered synchronously, and
 * in particular when no plugin implements the hook; only an asynchronous hook makes it a
 * `Promise<boolean>`. The broker checks {@linkcode hasPublishHooks} and its siblings before
 * building arguments on hot paths. Hooks run in plugin order; a synchronous `false` stops the
 * remaining hooks from being called.
 *
 * @example
 * ```ts
 * import { PluginHost } from "./plugin_host.ts";
 * import assert from "node:assert/strict";
 * const logger = { debug() {}, info() {}, warning() {}, error() {} };
 * const host = new PluginHost([
 *   { name: "allow_all", authenticate: () => true },
 *   { name: "no_secrets", authorizePublish: (_c, topic) => topic.startsWith("secret/") ? false : undefined },
 * ], { logger });
 * const client = {
 *   clientId: "c1", remoteAddress: "127.0.0.1:5000", transport: "tcp" as const,
 *   protocolVersion: 4 as const, anonymous: true,
 * };
 * assert.equal(host.authenticate(client), true);
 * assert.equal(host.authorizePublish(client, "secret/x", 0, false), false);
 * assert.equal(host.authorizePublish(client, "public/x", 0, false), true);
 * assert.equal(host.hasReceiveHooks, false);
 * ```
 */
export class PluginHost {
  /** True when some plugin implements `authenticate`. */
  readonly hasAuthenticateHooks: boolean;
  /** True when some plugin implements `authorizePublish`. */
  readonly hasPublishHooks: boolean;
  /** True when some plugin implements `authorizeSubscribe`. */
  readonly hasSubscribeHooks: boolean;
  /** True when some plugin implements `authorizeReceive`. */
  readonly hasReceiveHooks: boolean;

  readonly #plugins: readonly BrokerPlugin[];
  readonly #logger: Logger;
  readonly #hookTimeout: number;
  readonly #hooks: Record<DecisionHook, readonly BrokerPlugin[]>;
  readonly #listeners: Map<PluginEventName, readonly BrokerPlugin[]>;
  /** Plugins whose `init` has not finished while {@linkcode init} runs: they get no events yet. */
  readonly #starting = new Set<BrokerPlugin>();
  #closed = false;
  /** Decisions still waiting on an asynchronous hook, each able to deny itself. */
  readonly #outstanding = new Set<() => void>();

  /**
   * Creates a host for a fixed list of plugins; which hooks exist is computed once, here.
   *
   * @param plugins The plugins, in the order their hooks run.
   * @param options Logger and hook timeout.
   * @throws {TypeError} If a plugin has no name, or two plugins share one.
   */
  constructor(plugins: readonly BrokerPlugin[], options: PluginHostOptions) {
    const names = new Set<string>();
    for (const p of plugins) {
      if (typeof p?.name !== "string" || p.name === "") {
        throw new TypeError("Cannot add plugin: it has no name");
      }
      if (names.has(p.name)) {
        throw new TypeError(`Cannot add plugin "${p.name}": a plugin with that name exists`);
      }
      names.add(p.name);
    }
    this.#plugins = [...plugins];
    this.#logger = options.logger;
    const timeout = options.hookTimeout ?? DEFAULT_HOOK_TIMEOUT;
    if (!(timeout >= 0)) {
      throw new RangeError(`Cannot create plugin host: hookTimeout must be >= 0, got ${timeout}`);
    }
    this.#hookTimeout = timeout;
    const having = (hook: string) =>
      this.#plugins.filter((p) =>
        typeof (p as unknown as Record<string, unknown>)[hook] === "function"
      );
    this.#hooks = {
      authenticate: having("authenticate"),
      authorizePublish: having("authorizePublish"),
      authorizeSubscribe: having("authorizeSubscribe"),
      authorizeReceive: having("authorizeReceive"),
    };
    this.hasAuthenticateHooks = this.#hooks.authenticate.length > 0;
    this.hasPublishHooks = this.#hooks.authorizePublish.length > 0;
    this.hasSubscribeHooks = this.#hooks.authorizeSubscribe.length > 0;
    this.hasReceiveHooks = this.#hooks.authorizeReceive.length > 0;
    this.#listeners = new Map();
    for (const event of Object.keys(EVENTS) as PluginEventName[]) {
      const list = having(handlerName(event));
      if (list.length > 0) this.#listeners.set(event, list);
    }
    if (!this.hasAuthenticateHooks) {
      const enhanced = this.#plugins.some((p) => typeof p.authenticateEnhanced === "function");
      this.#logger.warning(
        enhanced
          ? "No plugin implements authenticate: only MQTT 5.0 clients naming an Authentication " +
            "Method a plugin runs can log in (add auth_anonymous or auth_file for the others)"
          : "No plugin implements authenticate: every connection will be refused " +
            "(add auth_anonymous or auth_file)",
      );
    }
  }

  /** The plugins, in hook order. */
  get plugins(): readonly BrokerPlugin[] {
    return this.#plugins;
  }

  /**
   * Tells whether some plugin handles an event, so the broker can skip building its payload.
   *
   * @param event An event name.
   * @returns True when at least one plugin has the handler.
   */
  hasListeners(event: PluginEventName): boolean {
    return this.#listeners.has(event);
  }

  /**
   * Calls every plugin's `init` in order, each with its own context whose logger prefixes the
   * plugin's name.
   *
   * @param context The broker's publish function and logger.
   * @returns A promise that resolves once every plugin is initialised.
   * @throws {Error} The first `init` failure, wrapped with the plugin's name; the broker should
   * not start.
   */
  async init(context: PluginContext): Promise<void> {
    // An earlier plugin's init may publish (a retained message, say): the events that causes must
    // not reach plugins whose init has not run yet, since init comes before any event for them.
    for (const plugin of this.#plugins) {
      if (typeof plugin.init === "function") this.#starting.add(plugin);
    }
    try {
      for (const plugin of this.#plugins) {
        if (typeof plugin.init !== "function") continue;
        const logger = prefixedLogger(context.logger, plugin.name);
        try {
          await plugin.init({ logger, publish: context.publish.bind(context) });
        } catch (error) {
          throw new Error(`Cannot start plugin "${plugin.name}": ${errorText(error)}`, {
            cause: error,
          });
        }
        this.#starting.delete(plugin);
      }
    } finally {
      this.#starting.clear();
    }
  }

  /**
   * Decides whether a client may connect.
   *
   * @param client The client, with username and password.
   * @returns True to accept (some plugin said `true`, none said `false`); `"unavailable"` when a
   *   plugin could not check the login.
   */
  authenticate(client: ClientInfo): AuthDecision | Promise<AuthDecision> {
    return this.#decide("authenticate", true, askAuthenticate, client);
  }

  /**
   * Whether some plugin runs an MQTT 5.0 Authentication Method (names it in
   * `authenticationMethods` and implements `authenticateEnhanced`).
   *
   * @param method The Authentication Method of a CONNECT.
   * @returns True when a plugin runs it.
   */
  offersAuthenticationMethod(method: string): boolean {
    return this.#enhancedPlugin(method) !== undefined;
  }

  /**
   * Runs one step of enhanced authentication with the first plugin that runs the method. Unlike
   * the other decisions there is no combining: one plugin owns the method.
   *
   * @param request The step.
   * @returns The plugin's answer; `undefined` (a refusal) when no plugin runs the method.
   * @throws Whatever the plugin throws (the caller logs it and refuses).
   */
  authenticateEnhanced(
    request: EnhancedAuthRequest,
  ): EnhancedAuthAnswer | undefined | Promise<EnhancedAuthAnswer | undefined> {
    return this.#enhancedPlugin(request.method)?.authenticateEnhanced?.(request);
  }

  #enhancedPlugin(method: string): BrokerPlugin | undefined {
    return this.#plugins.find((p) =>
      typeof p.authenticateEnhanced === "function" &&
      p.authenticationMethods?.includes(method) === true
    );
  }

  /**
   * Decides whether a client may publish.
   *
   * @param client The publishing client.
   * @param topic The topic name.
   * @param qos The message QoS.
   * @param retain The RETAIN flag.
   * @param properties The MQTT 5.0 PUBLISH's properties, when it has any.
   * @returns False when some plugin refused.
   */
  authorizePublish(
    client: ClientInfo,
    topic: string,
    qos: QoS,
    retain: boolean,
    properties?: Properties,
  ): TopicDecision | Promise<TopicDecision> {
    if (!this.hasPublishHooks) return true;
    // Plugins may keep what they are given: a Correlation Data of its own, not a view that keeps
    // the read buffer it was decoded from alive (the one rule for binary properties).
    const own = ownProperties(properties);
    return this.#decide(
      "authorizePublish",
      false,
      (p) => p.authorizePublish!(client, topic, qos, retain, own),
      undefined,
    ) as TopicDecision | Promise<TopicDecision>;
  }

  /**
   * Decides whether a client may subscribe to a filter.
   *
   * @param client The subscribing client.
   * @param topic The topic filter as subscribed.
   * @param qos The requested QoS.
   * @returns False when some plugin refused.
   */
  authorizeSubscribe(
    client: ClientInfo,
    topic: string,
    qos: QoS,
  ): TopicDecision | Promise<TopicDecision> {
    if (!this.hasSubscribeHooks) return true;
    return this.#decide(
      "authorizeSubscribe",
      false,
      (p) => p.authorizeSubscribe!(client, topic, qos),
      undefined,
    ) as TopicDecision | Promise<TopicDecision>;
  }

  /**
   * Decides whether a message may be delivered to a subscriber.
   *
   * @param client The receiving client.
   * @param topic The topic name of the message.
   * @returns False when some plugin refused.
   */
  authorizeReceive(client: ClientInfo, topic: string): TopicDecision | Promise<TopicDecision> {
    if (!this.hasReceiveHooks) return true;
    return this.#decide(
      "authorizeReceive",
      false,
      (p) => p.authorizeReceive!(client, topic),
      undefined,
    ) as TopicDecision | Promise<TopicDecision>;
  }

  /**
   * Delivers an event to every plugin that handles it, without waiting: handlers run
   * synchronously up to their first `await`, and errors (thrown or rejected) are logged, never
   * propagated. While {@linkcode init} runs, plugins whose `init` has not finished are skipped.
   *
   * @param event The event name.
   * @param payload The payload (none for the lifecycle events).
   */
  emit<K extends PluginEventName>(event: K, ...payload: EventArgs<K>): void {
    const listeners = this.#listeners.get(event);
    if (listeners === undefined) return;
    const method = handlerName(event);
    for (const plugin of listeners) {
      if (this.#starting.size > 0 && this.#starting.has(plugin)) continue;
      try {
        const result = (plugin[method] as EventHandler).call(plugin, payload[0]);
        if (isThenable(result)) {
          result.then(undefined, (error) => this.#handlerFailed(plugin, method, error));
        }
      } catch (error) {
        this.#handlerFailed(plugin, method, error);
      }
    }
  }

  /**
   * Delivers an event and waits for every handler to finish (the broker uses it for the four
   * lifecycle events). Handlers run concurrently; errors are logged, never propagated.
   *
   * @param event The event name.
   * @param payload The payload (none for the lifecycle events).
   * @returns A promise that resolves when every handler settled.
   */
  async emitAndWait<K extends PluginEventName>(event: K, ...payload: EventArgs<K>): Promise<void> {
    const listeners = this.#listeners.get(event);
    if (listeners === undefined) return;
    const method = handlerName(event);
    await Promise.all(listeners.map(async (plugin) => {
      if (this.#starting.size > 0 && this.#starting.has(plugin)) return;
      try {
        await (plugin[method] as EventHandler).call(plugin, payload[0]);
      } catch (error) {
        this.#handlerFailed(plugin, method, error);
      }
    }));
  }

  /**
   * Asks every plugin to reload its external state (the broker calls it on SIGHUP). Errors are
   * logged, never propagated.
   *
   * @returns A promise that resolves when every plugin has reloaded or failed.
   */
  async reload(): Promise<void> {
    for (const plugin of this.#plugins) {
      if (typeof plugin.reload !== "function") continue;
      try {
        await plugin.reload();
      } catch (error) {
        this.#handlerFailed(plugin, "reload", error);
      }
    }
  }

  /**
   * Closes every plugin, in reverse order. Errors are logged, never propagated. Idempotent.
   *
   * @returns A promise that resolves when every plugin is closed.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const deny of [...this.#outstanding]) deny();
    for (const plugin of [...this.#plugins].reverse()) {
      if (typeof plugin.close !== "function") continue;
      try {
        await plugin.close();
      } catch (error) {
        this.#handlerFailed(plugin, "close", error);
      }
    }
  }

  // Only "authenticate" can answer "unavailable" (see #failed): the topic hooks cast.
  // `call` gets `arg` besides the plugin: a login's is a function made once, not a closure per
  // login (bench/RESULTS.md, branch `revconn4`).
  #decide<A>(
    hook: DecisionHook,
    requireTrue: boolean,
    call: (plugin: BrokerPlugin, arg: A) => unknown,
    arg: A,
  ): AuthDecision | Promise<AuthDecision> {
    const plugins = this.#hooks[hook];
    let allowed = false;
    let pending: [BrokerPlugin, PromiseLike<unknown>][] | undefined;
    // Indexed, not `for…of`: an iterator and its results were most of a login's 130 B here.
    for (let i = 0; i < plugins.length; i++) {
      const plugin = plugins[i]!;
      let answer: unknown;
      try {
        answer = call(plugin, arg);
      } catch (error) {
        const failed = this.#failed(plugin, hook, error);
        this.#abandon(pending, hook);
        return failed;
      }
      if (isThenable(answer)) {
        (pending ??= []).push([plugin, answer]);
        continue;
      }
      const decision = this.#interpret(plugin, hook, answer);
      if (decision === false) return this.#abandon(pending, hook);
      if (typeof decision === "object") {
        this.#abandon(pending, hook);
        return decision;
      }
      if (decision === true) allowed = true;
    }
    if (pending === undefined) return requireTrue ? allowed : true;
    return this.#decideAsync(hook, requireTrue, allowed, pending);
  }

  #decideAsync(
    hook: DecisionHook,
    requireTrue: boolean,
    allowedSoFar: boolean,
    pending: [BrokerPlugin, PromiseLike<unknown>][],
  ): Promise<AuthDecision> {
    return new Promise<AuthDecision>((resolve) => {
      let allowed = allowedSoFar;
      let remaining = pending.length;
      let done = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const finish = (result: AuthDecision) => {
        if (done) return;
        done = true;
        if (timer !== undefined) clearTimeout(timer);
        this.#outstanding.delete(deny);
        resolve(result);
      };
      // close() denies whatever is still waiting, so no timer outlives the host.
      const deny = () => finish(false);
      this.#outstanding.add(deny);
      for (const [plugin, answer] of pending) {
        answer.then((value) => {
          const decision = this.#interpret(plugin, hook, value);
          if (decision === false || typeof decision === "object") return finish(decision);
          if (decision === true) allowed = true;
          if (--remaining === 0) finish(requireTrue ? allowed : true);
        }, (error) => finish(this.#failed(plugin, hook, error)));
      }
      if (this.#hookTimeout > 0) {
        timer = setTimeout(() => {
          timer = undefined;
          if (done) return;
          const late = pending.map(([p]) => `"${p.name}"`).join(", ");
          if (hook === "authenticate") {
            // The login was not decided, let alone refused: "unavailable". Under a login flood
            // this happens often; the broker summarises refusals, so no line per login here.
            this.#logger.debug(
              `Plugin ${hook} timed out after ${this.#hookTimeout} ms (waiting on ${late})`,
            );
            finish("unavailable");
            return;
          }
          this.#logger.error(
            `Plugin ${hook} timed out after ${this.#hookTimeout} ms (waiting on ${late}): denying`,
          );
          finish(false);
        }, this.#hookTimeout);
      }
    });
  }

  /** Denies while asynchronous answers are still out: their late failures are still logged. */
  #abandon(pending: [BrokerPlugin, PromiseLike<unknown>][] | undefined, hook: DecisionHook): false {
    if (pending !== undefined) {
      for (const [plugin, answer] of pending) {
        answer.then(undefined, (error) => void this.#failed(plugin, hook, error));
      }
    }
    return false;
  }

  #interpret(
    plugin: BrokerPlugin,
    hook: DecisionHook,
    answer: unknown,
  ): boolean | undefined | Refused {
    if (answer === true || answer === false) return answer;
    if (answer === undefined || answer === null) return undefined;
    const refused = refusalOf(answer);
    if (refused !== undefined) return refused;
    this.#logger.error(
      `Plugin "${plugin.name}" ${hook} returned ${typeof answer}, not a boolean, a refusal ` +
        "or undefined: denying",
    );
    return false;
  }

  /** A hook threw or rejected: a denial, or "unavailable" when a login was not checked. */
  #failed(plugin: BrokerPlugin, hook: DecisionHook, error: unknown): false | "unavailable" {
    if (hook === "authenticate" && error instanceof AuthUnavailableError) return "unavailable";
    this.#hookFailed(plugin, hook, error);
    return false;
  }

  #hookFailed(plugin: BrokerPlugin, hook: string, error: unknown): void {
    this.#logger.error(`Plugin "${plugin.name}" ${hook} failed, denying: ${errorText(error)}`);
  }

  #handlerFailed(plugin: BrokerPlugin, method: string, error: unknown): void {
    this.#logger.error(`Plugin "${plugin.name}" ${method} failed: ${errorText(error)}`);
  }
}

/** `authenticate` as {@linkcode PluginHost}'s decisions call it, made once. */
function askAuthenticate(plugin: BrokerPlugin, client: ClientInfo): unknown {
  return plugin.authenticate!(client);
}

function handlerName<K extends PluginEventName>(event: K): EventHandlerName<K> {
  return `on${event[0].toUpperCase()}${event.slice(1)}` as EventHandlerName<K>;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === "object" && value !== null &&
    typeof (value as { then?: unknown }).then === "function";
}

function prefixedLogger(logger: Logger, name: string): Logger {
  const tag = `[${name}] `;
  return {
    debug: (msg, fields) => logger.debug(tag + msg, fields),
    info: (msg, fields) => logger.info(tag + msg, fields),
    warning: (msg, fields) => logger.warning(tag + msg, fields),
    error: (msg, fields) => logger.error(tag + msg, fields),
    enabled: logger.enabled === undefined ? undefined : (level) => logger.enabled!(level),
  };
}

/**
 * A plugin's `{ refuse, reasonString, userProperties }` as the core reads it; undefined for
 * anything else. Fields of the wrong type are left out (the refusal stands).
 */
function refusalOf(answer: unknown): Refused | undefined {
  if (typeof answer !== "object") return undefined;
  const { refuse, reasonString, userProperties } = answer as Record<string, unknown>;
  if (typeof refuse !== "number") return undefined;
  const refused: { -readonly [K in keyof Refused]: Refused[K] } = {
    allowed: false,
    reasonCode: refuse,
  };
  if (typeof reasonString === "string") refused.reasonString = reasonString;
  if (
    Array.isArray(userProperties) &&
    userProperties.every((p) =>
      Array.isArray(p) && p.length === 2 && typeof p[0] === "string" && typeof p[1] === "string"
    )
  ) {
    refused.userProperties = userProperties as [string, string][];
  }
  return refused;
}
