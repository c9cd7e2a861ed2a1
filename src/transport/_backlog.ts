/**
 * The listen queue every MQTT listener asks for.
 *
 * @module
 */

/**
 * Connections the kernel has completed and the broker has not accepted yet, per listener. Deno's
 * and node's default is 511: a storm of more concurrent connects than that overflows the queue,
 * the kernel drops the SYNs (or the final ACKs) past it, and each comes back only when the
 * client's retransmission timer fires, a second later; its CONNACK is a second late however fast
 * the broker is. The kernel caps the figure at `net.core.somaxconn` (4096 on Linux since 5.4).
 */
export const LISTEN_BACKLOG = 4096;
