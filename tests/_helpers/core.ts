/**
 * Driving the broker core directly, with no socket and an injected clock: a recording link and a
 * core whose plugins allow everything.
 *
 * @module
 */

import { BrokerCore } from "../../src/broker/core.ts";
import type { ClientLink, CoreOptions } from "../../src/broker/core.ts";
import type { Packet } from "../../src/packet/mod.ts";

/** A connection as the core sees it: records what the core sends, notes when it closes. */
export class FakeLink implements ClientLink {
  readonly info = { transport: "tcp" as const, remoteAddress: "127.0.0.1:1", listener: "default" };
  protocolVersion: ClientLink["protocolVersion"] = 4;
  session: ClientLink["session"];
  client: ClientLink["client"];
  deadline = Infinity;
  keepAliveMs = 0;
  connected = false;
  closing = false;
  readonly sent: Packet[] = [];
  sendPacket(packet: Packet): void {
    this.sent.push(packet);
  }
  sendPublish(): boolean {
    return true;
  }
  sendPubrel(): void {}
  close(): void {
    this.closing = true;
  }
  abort(): void {
    this.closing = true;
  }
  takeOver(): void {
    this.closing = true;
  }
}

/**
 * A core with small windows, every plugin decision allowed and a silent logger.
 *
 * @param options what differs from the defaults
 * @returns the core
 */
export function testCore(options: Partial<CoreOptions> = {}): BrokerCore {
  const quiet = { debug() {}, info() {}, warning() {}, error() {} };
  return new BrokerCore({
    maxInflight: 20,
    maxQueuedMessages: 10,
    connectTimeout: 10,
    sessionExpiryInterval: undefined,
    timeoutDisconnectDelay: 0,
    ...options,
  }, {
    policy: {
      hasPublishHooks: false,
      hasSubscribeHooks: false,
      hasReceiveHooks: false,
      authenticate: () => true,
      authorizePublish: () => true,
      authorizeSubscribe: () => true,
      authorizeReceive: () => true,
    },
    events: {},
    logger: quiet,
  });
}
