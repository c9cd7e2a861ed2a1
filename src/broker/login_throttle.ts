/**
 * Per-source rate limiting of failed logins. Each source (the peer's IP address) has a budget of
 * failures that refills over a window. A login in progress spends one unit, a login that
 * succeeds gives it back: so one source can neither keep more checks in progress than its budget
 * (nor fill a checker shared by every source) nor guess passwords faster than the budget refills.
 * The core settles a login as soon as its credentials were answered, before what follows them (a
 * cluster node loading the session): a slow load holds no unit, and a refusal that is not about
 * credentials spends none. A login from a source with no unit left waits while that source has
 * logins in progress ({@linkcode LoginThrottle.inProgress}): many devices behind one address, all
 * logging in at once, are checked a budget's worth at a time, each success letting the next one
 * in; once the source's checks are answered and its budget is spent by failures, its waiting
 * logins are not checked at all and the broker answers them "server unavailable". Sans-IO: time
 * comes in as `now` arguments.
 *
 * @module
 */

/** Options of {@linkcode LoginThrottle}. */
export interface LoginThrottleOptions {
  /** Failed (or unfinished) logins a source may have in a burst; 0 turns the throttle off. */
  maxFailures: number;
  /** Seconds for a source's whole budget to come back. */
  window: number;
  /** Sources tracked at most; the least recently seen is forgotten first. Default 100000. */
  maxSources?: number;
}

interface Budget {
  tokens: number;
  updated: number;
  /** Logins admitted and not settled yet. */
  checking: number;
}

/** Failed-login budgets by source. */
export class LoginThrottle {
  readonly #max: number;
  readonly #perMs: number;
  readonly #maxSources: number;
  // Insertion order is recency: a source is re-inserted whenever it is touched.
  readonly #budgets = new Map<string, Budget>();
  // The source whose whole budget came back at its last settled login: its entry stays (one
  // source's, not counted in `size`) until another source takes its place or the sweep forgets
  // it, so that logins one after another from one address do not make and delete an entry each
  // (and rebuild the map's table each time it empties): garbage for every connection.
  #spare: string | undefined;
  // The source inserted last, already the most recent: touching it again needs no move.
  #newest: string | undefined;

  /**
   * @param options budget per source and the window it refills over
   */
  constructor(options: LoginThrottleOptions) {
    this.#max = options.maxFailures;
    this.#perMs = options.window > 0 ? options.maxFailures / (options.window * 1000) : Infinity;
    this.#maxSources = options.maxSources ?? 100_000;
  }

  /** Sources currently tracked (they have spent some of their budget). */
  get size(): number {
    const spare = this.#spare !== undefined && this.#budgets.has(this.#spare) ? 1 : 0;
    return this.#budgets.size - spare;
  }

  /**
   * Asks whether a login from `source` may be checked, spending one unit if so.
   *
   * @param source the peer's address (no port)
   * @param now the clock, ms
   * @returns false when the source has no budget left: do not check the login
   */
  admit(source: string, now: number): boolean {
    if (this.#max <= 0) return true;
    if (source === this.#spare) this.#spare = undefined;
    const budget = this.#budget(source, now);
    if (budget.tokens < 1) return false;
    budget.tokens -= 1;
    budget.checking++;
    return true;
  }

  /**
   * Whether logins {@linkcode admit} let through from `source` are still being checked: one it
   * refused may wait for their outcome (a success gives a unit back) instead of being refused.
   *
   * @param source the peer's address
   * @returns true while some admitted login of `source` is not settled
   */
  inProgress(source: string): boolean {
    return (this.#budgets.get(source)?.checking ?? 0) > 0;
  }

  /**
   * Reports the outcome of a login {@linkcode admit} let through.
   *
   * @param source the peer's address
   * @param ok whether the login succeeded: its unit is given back
   * @param now the clock, ms
   */
  settle(source: string, ok: boolean, now: number): void {
    if (this.#max <= 0) return;
    const known = this.#budgets.get(source);
    // A source forgotten meanwhile (the sweep, maxSources) counts from zero again.
    if (known !== undefined && known.checking > 0) known.checking--;
    if (!ok) return;
    if (known !== undefined && this.#refilled(known, now) + 1 >= this.#max) {
      // A full budget is no entry (the common case: a login that took its token back), but for
      // the spare one: kept without being moved to the end first, every successful login passes
      // here.
      this.#keepSpare(source, known, now);
      return;
    }
    const budget = this.#budget(source, now);
    budget.tokens = Math.min(this.#max, budget.tokens + 1);
    if (budget.tokens >= this.#max) this.#keepSpare(source, budget, now);
  }

  /** Keeps `source`'s whole budget as the spare entry, forgetting the previous spare's. */
  #keepSpare(source: string, budget: Budget, now: number): void {
    budget.tokens = this.#max;
    if (now > budget.updated) budget.updated = now;
    if (this.#spare !== undefined && this.#spare !== source) this.#budgets.delete(this.#spare);
    this.#spare = source;
  }

  /**
   * Forgets sources whose budget has fully come back (the broker's sweep calls it).
   *
   * @param now the clock, ms
   */
  sweep(now: number): void {
    for (const [source, budget] of this.#budgets) {
      if (budget.tokens + (now - budget.updated) * this.#perMs >= this.#max) {
        this.#budgets.delete(source);
      }
    }
  }

  /** A budget's tokens as of `now`, refilled for the time since it was last touched. */
  #refilled(budget: Budget, now: number): number {
    return now > budget.updated
      ? Math.min(this.#max, budget.tokens + (now - budget.updated) * this.#perMs)
      : budget.tokens;
  }

  #budget(source: string, now: number): Budget {
    let budget = this.#budgets.get(source);
    if (budget === undefined) {
      budget = { tokens: this.#max, updated: now, checking: 0 };
      if (this.#budgets.size >= this.#maxSources) {
        // The spare (a whole budget, tracked for nothing) goes before any source that spent.
        const spare = this.#spare;
        this.#spare = undefined;
        if (spare === undefined || !this.#budgets.delete(spare)) {
          this.#budgets.delete(this.#budgets.keys().next().value!);
        }
      }
    } else {
      // A login settled late may report the time it started: time never runs backwards here.
      if (now > budget.updated) {
        budget.tokens = Math.min(this.#max, budget.tokens + (now - budget.updated) * this.#perMs);
        budget.updated = now;
      }
      // Already the most recent: no move (a delete and a set, the table rebuilt when it empties).
      if (source === this.#newest) return budget;
      this.#budgets.delete(source);
    }
    this.#budgets.set(source, budget);
    this.#newest = source;
    return budget;
  }
}

/**
 * The source that budgets are kept for: the IPv4 address of a `host:port` peer address, or the
 * /64 network of an IPv6 one (`[v6]:port`), since one IPv6 host commonly has a whole /64 to pick
 * addresses from. IPv4-mapped IPv6 addresses count as their IPv4 address.
 *
 * @param remoteAddress the transport's peer address
 * @param remoteHost the peer's IP address alone, when the transport gave it
 *   (`ConnectionInfo.remoteHost`): the same source, found without parsing `remoteAddress`
 * @returns the source key
 */
export function sourceOf(remoteAddress: string, remoteHost?: string): string {
  // A bare host is its own key: the source of "10.1.2.3" is that of "10.1.2.3:port", and that of
  // "2001:db8::1" that of "[2001:db8::1]:port". With it, the peers of one host (each with a port
  // of its own) share the entry below: an IPv4 host is its source as it is.
  const key = remoteHost ?? remoteAddress;
  // A login asks twice (when admitted and when settled): the second time is the same string.
  if (key === lastAddress) return lastSource;
  const source = sourceOfAddress(key);
  lastAddress = key;
  lastSource = source;
  return source;
}

// The last address sourceOf was asked about and its answer (a one-entry cache, for all brokers
// of the process: the answer depends on the address alone).
let lastAddress = "";
let lastSource = "";

function sourceOfAddress(remoteAddress: string): string {
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
