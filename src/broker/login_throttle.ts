/**
 * Per-source rate limiting of failed logins. Each source (the peer's IP address) has a budget of
 * failures that refills over a window: a login whose credentials are refused spends one unit, and
 * a source with no unit left is not checked at all (the broker answers it "server unavailable").
 * Only failures count: a login in progress or one that succeeds spends nothing, so a fleet of
 * devices behind one address (a NAT) that reconnects at once after an outage is checked in full,
 * however long the checks take. Failures of checks that were in flight together may take the
 * budget below zero: the source then waits until all of them have refilled, so its failures stay
 * within the budget per window on average. (What bounds the checks in flight is the connect
 * timeout, the listeners' connection limits and the password checker's queue.) Sans-IO: time
 * comes in as `now` arguments.
 *
 * @module
 */

/** Options of {@linkcode LoginThrottle}. */
export interface LoginThrottleOptions {
  /** Failed logins a source may have in a burst; 0 turns the throttle off. */
  maxFailures: number;
  /** Seconds for a source's whole budget to come back. */
  window: number;
  /** Sources tracked at most; the least recently seen is forgotten first. Default 100000. */
  maxSources?: number;
}

interface Budget {
  tokens: number;
  updated: number;
}

/** Failed-login budgets by source. */
export class LoginThrottle {
  readonly #max: number;
  readonly #perMs: number;
  readonly #maxSources: number;
  // Sources with failures not refilled yet; insertion order is recency (re-inserted at a failure).
  readonly #budgets = new Map<string, Budget>();

  /**
   * @param options budget per source and the window it refills over
   */
  constructor(options: LoginThrottleOptions) {
    this.#max = options.maxFailures;
    this.#perMs = options.window > 0 ? options.maxFailures / (options.window * 1000) : Infinity;
    this.#maxSources = options.maxSources ?? 100_000;
  }

  /** Sources currently tracked (they have failures not refilled yet). */
  get size(): number {
    return this.#budgets.size;
  }

  /**
   * Asks whether a login from `source` may be checked. Spends nothing: a source without failures
   * (the common case) is no entry and costs a map lookup.
   *
   * @param source the peer's address (no port)
   * @param now the clock, ms
   * @returns false when the source has no budget left: do not check the login
   */
  admit(source: string, now: number): boolean {
    if (this.#max <= 0) return true;
    const budget = this.#budgets.get(source);
    return budget === undefined || this.#refilled(budget, now) >= 1;
  }

  /**
   * Reports the outcome of a login {@linkcode admit} let through: a failure spends one unit.
   *
   * @param source the peer's address
   * @param ok whether the login succeeded (spends nothing)
   * @param now the clock, ms
   */
  settle(source: string, ok: boolean, now: number): void {
    if (this.#max <= 0 || ok) return;
    let budget = this.#budgets.get(source);
    if (budget === undefined) {
      budget = { tokens: this.#max, updated: now };
      if (this.#budgets.size >= this.#maxSources) {
        this.#budgets.delete(this.#budgets.keys().next().value!);
      }
    } else {
      budget.tokens = this.#refilled(budget, now);
      // A login settled late may report the time it started: time never runs backwards here.
      if (now > budget.updated) budget.updated = now;
      this.#budgets.delete(source);
    }
    budget.tokens -= 1;
    this.#budgets.set(source, budget);
  }

  /**
   * Forgets sources whose budget has fully come back (the broker's sweep calls it).
   *
   * @param now the clock, ms
   */
  sweep(now: number): void {
    for (const [source, budget] of this.#budgets) {
      if (this.#refilled(budget, now) >= this.#max) this.#budgets.delete(source);
    }
  }

  /** A budget's tokens as of `now`, refilled for the time since it was last touched. */
  #refilled(budget: Budget, now: number): number {
    return now > budget.updated
      ? Math.min(this.#max, budget.tokens + (now - budget.updated) * this.#perMs)
      : budget.tokens;
  }
}

/**
 * The source that budgets are kept for: the IPv4 address of a `host:port` peer address, or the
 * /64 network of an IPv6 one (`[v6]:port`), since one IPv6 host commonly has a whole /64 to pick
 * addresses from. IPv4-mapped IPv6 addresses count as their IPv4 address.
 *
 * @param remoteAddress the transport's peer address
 * @returns the source key
 */
export function sourceOf(remoteAddress: string): string {
  let host = remoteAddress;
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    if (end > 0) host = host.slice(1, end);
  } else {
    const colon = host.lastIndexOf(":");
    // One colon: IPv4 (or a name) with a port. More than one: a bare IPv6 address.
    if (colon > 0 && host.indexOf(":") === colon) return host.slice(0, colon);
  }
  if (!host.includes(":")) return host;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  if (mapped !== null) return mapped[1]!;
  const groups = ipv6Groups(host.replace(/%.*$/, ""));
  return groups === undefined ? host : `${groups.slice(0, 4).join(":")}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, as lowercase hex without leading zeros. */
function ipv6Groups(address: string): string[] | undefined {
  const halves = address.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] === "" ? [] : halves[0]!.split(":");
  const tail = halves.length === 2 && halves[1] !== "" ? halves[1]!.split(":") : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  if (!all.every((g) => /^[0-9a-f]{1,4}$/i.test(g))) return undefined;
  return all.map((g) => parseInt(g, 16).toString(16));
}
