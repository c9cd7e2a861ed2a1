/**
 * An https server for a fetch-style handler on `node:https`, because `Deno.serve` cannot change
 * its certificate while running and an operator renewing one expects SIGHUP to be enough.
 * Requests and responses are converted to and from the web's `Request` and `Response`.
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";

/** A running https server. */
export interface NodeHttpsServer {
  /** The bound address. */
  readonly hostname: string;
  /** The bound port. */
  readonly port: number;
  /** New handshakes use this certificate and key; open connections keep theirs. */
  setSecureContext(tls: { cert: string; key: string }): void;
  /** Stops accepting and closes every connection. */
  close(): Promise<void>;
}

/**
 * Serves `handler` over https.
 *
 * @param options where to listen and the certificate chain and key (PEM)
 * @param handler answers a request from `remoteAddress` (`host:port`)
 * @returns the server once it listens
 */
export async function serveNodeHttps(
  options: { hostname: string; port: number; cert: string; key: string },
  handler: (request: Request, remoteAddress: string) => Promise<Response> | Response,
): Promise<NodeHttpsServer> {
  const server = https.createServer({ cert: options.cert, key: options.key }, (req, res) => {
    answer(req, res, handler).catch(() => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.hostname, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    hostname: address.address,
    port: address.port,
    setSecureContext: (tls) => server.setSecureContext({ cert: tls.cert, key: tls.key }),
    close: () =>
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function answer(
  req: IncomingMessage,
  res: ServerResponse,
  handler: (request: Request, remoteAddress: string) => Promise<Response> | Response,
): Promise<void> {
  const headers = new Headers();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  }
  const hasBody = req.method !== "GET" && req.method !== "HEAD";
  const request = new Request(`https://${req.headers.host ?? "localhost"}${req.url ?? "/"}`, {
    method: req.method,
    headers,
    body: hasBody ? Readable.toWeb(req) as ReadableStream<Uint8Array> : undefined,
    // @ts-ignore: a streamed request body needs `duplex` in the fetch standard; not in every lib.
    duplex: "half",
  });
  const host = req.socket.remoteAddress ?? "";
  const remote = host.includes(":")
    ? `[${host}]:${req.socket.remotePort}`
    : `${host}:${req.socket.remotePort}`;
  const response = await handler(request, remote);
  const out: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    if (name !== "set-cookie") out[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) out["set-cookie"] = cookies;
  res.writeHead(response.status, out);
  if (response.body !== null && req.method !== "HEAD") {
    for await (const chunk of response.body) res.write(chunk);
  }
  res.end();
}
