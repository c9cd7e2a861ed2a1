/**
 * A free loopback port for a peer that must be told its port before it starts (mosquitto,
 * redis-server, a broker restarted on the same port), or as a port nobody listens on.
 *
 * @module
 */

/** Lowest port handed out: above the usual fixed ports of local services. */
const LOWEST = 10_000;

/**
 * The first port of the kernel's ephemeral range, where `bind(0)` and every outgoing connection
 * take their local ports (Linux: `ip_local_port_range`, 32768 by default).
 */
function ephemeralLow(): number {
  try {
    const text = Deno.readTextFileSync("/proc/sys/net/ipv4/ip_local_port_range");
    const low = Number(text.trim().split(/\s+/)[0]);
    return Number.isInteger(low) ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/**
 * A loopback port that was free a moment ago (bound, then released), below the ephemeral range
 * when there is room: a port `bind(0)` gives is one that any outgoing connection of a parallel
 * test may take as its local port before the peer binds it, or while a peer restarted on it is
 * down. Outside that range only an explicit bind can take it. A caller that starts a peer on it
 * still checks that the peer bound it (another test may pick the same port).
 *
 * @returns the port
 */
export function freePort(): number {
  const low = ephemeralLow();
  for (let i = 0; low - LOWEST > 1000 && i < 50; i++) {
    const port = LOWEST + Math.floor(Math.random() * (low - LOWEST));
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    }
  }
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}
