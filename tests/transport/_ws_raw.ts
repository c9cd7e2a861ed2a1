/**
 * A raw WebSocket client over TCP for tests that need frames the WebSocket API cannot send
 * (fragmented messages) or a handshake it would not make.
 *
 * @module
 */

import { readConn } from "./_io.ts";

/** Sends an HTTP request over a new TCP connection and returns the response head and the socket. */
export async function rawUpgrade(
  port: number,
  path: string,
  protocols?: string,
): Promise<{ conn: Deno.TcpConn; head: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const lines = [
    `GET ${path} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
    ...(protocols !== undefined ? [`Sec-WebSocket-Protocol: ${protocols}`] : []),
  ];
  await conn.write(new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n"));
  return { conn, head: await readHead(conn) };
}

/** The browsers whose WebSocket handshakes {@linkcode BROWSER_HANDSHAKES} reproduces. */
export type Browser = "chrome" | "firefox" | "safari";

/**
 * The request headers each browser sends for `new WebSocket(url, "mqtt")`, in its order, modelled
 * on Chrome 120, Firefox 121 and Safari 17 (the Origin is a page served from elsewhere, the key is
 * RFC 6455's example). Firefox says `Connection: keep-alive, Upgrade`; all three offer
 * permessage-deflate, which the server must either decline or really speak.
 */
export const BROWSER_HANDSHAKES: Readonly<Record<Browser, readonly string[]>> = {
  chrome: [
    "Connection: Upgrade",
    "Pragma: no-cache",
    "Cache-Control: no-cache",
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) " +
    "Chrome/120.0.0.0 Safari/537.36",
    "Upgrade: websocket",
    "Origin: http://localhost:8080",
    "Sec-WebSocket-Version: 13",
    "Accept-Encoding: gzip, deflate, br",
    "Accept-Language: en-US,en;q=0.9",
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==",
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
    "Sec-WebSocket-Protocol: mqtt",
  ],
  firefox: [
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Accept: */*",
    "Accept-Language: en-US,en;q=0.5",
    "Accept-Encoding: gzip, deflate, br",
    "Sec-WebSocket-Version: 13",
    "Origin: http://localhost:8080",
    "Sec-WebSocket-Protocol: mqtt",
    "Sec-WebSocket-Extensions: permessage-deflate",
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==",
    "Connection: keep-alive, Upgrade",
    "Sec-Fetch-Dest: empty",
    "Sec-Fetch-Mode: websocket",
    "Sec-Fetch-Site: same-site",
    "Pragma: no-cache",
    "Cache-Control: no-cache",
    "Upgrade: websocket",
  ],
  safari: [
    "Upgrade: websocket",
    "Accept: */*",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Protocol: mqtt",
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==",
    "Pragma: no-cache",
    "Cache-Control: no-cache",
    "Accept-Language: en-GB,en;q=0.9",
    "Sec-WebSocket-Extensions: permessage-deflate",
    "Origin: http://localhost:8080",
    "User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 " +
    "(KHTML, like Gecko) Version/17.2 Safari/605.1.15",
    "Accept-Encoding: gzip, deflate",
    "Connection: Upgrade",
  ],
};

/** The `Sec-WebSocket-Accept` a server must answer to the key the browser handshakes send. */
export const BROWSER_KEY_ACCEPT = "HSmrc0sMlYUkAGmm5OPpG2HaGWk=";

/**
 * Opens a TCP connection and sends exactly the upgrade request a browser sends.
 *
 * @param port the listener's port
 * @param path the URL path
 * @param browser whose headers to send
 * @returns the socket and the response head, lower-cased header names parsed into a map
 */
export async function browserUpgrade(
  port: number,
  path: string,
  browser: Browser,
): Promise<{ conn: Deno.TcpConn; status: number; headers: Map<string, string> }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const lines = [`GET ${path} HTTP/1.1`, `Host: localhost:${port}`, ...BROWSER_HANDSHAKES[browser]];
  await conn.write(new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n"));
  const head = await readHead(conn);
  const [statusLine, ...rest] = head.trimEnd().split("\r\n");
  const headers = new Map<string, string>();
  for (const line of rest) {
    const colon = line.indexOf(":");
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { conn, status: Number(statusLine!.split(" ")[1]), headers };
}

async function readHead(conn: Deno.Conn): Promise<string> {
  // Byte by byte up to the blank line so no frame byte is consumed with the head.
  let head = "";
  while (!head.endsWith("\r\n\r\n")) {
    head += String.fromCharCode((await readConn(conn, 1))[0]);
    if (head.length > 4096) throw new Error("Response head too long");
  }
  return head;
}

/** A masked client frame (RFC 6455 section 5.2); payloads under 64 KiB. */
export function clientFrame(opcode: number, payload: Uint8Array, fin: boolean): Uint8Array {
  const mask = [0x12, 0x34, 0x56, 0x78];
  const long = payload.length > 125;
  const header = long
    ? [(fin ? 0x80 : 0) | opcode, 0x80 | 126, payload.length >> 8, payload.length & 0xff]
    : [(fin ? 0x80 : 0) | opcode, 0x80 | payload.length];
  const frame = new Uint8Array(header.length + 4 + payload.length);
  frame.set(header);
  frame.set(mask, header.length);
  for (let i = 0; i < payload.length; i++) {
    frame[header.length + 4 + i] = payload[i] ^ mask[i & 3];
  }
  return frame;
}

/** Reads one unmasked server frame; returns its opcode and payload. */
export async function serverFrame(
  conn: Deno.Conn,
): Promise<{ opcode: number; payload: Uint8Array }> {
  const [b0, b1] = await readConn(conn, 2);
  let length = b1 & 0x7f;
  if (length === 126) {
    const ext = await readConn(conn, 2);
    length = (ext[0] << 8) | ext[1];
  } else if (length === 127) {
    const ext = await readConn(conn, 8);
    length = Number(new DataView(ext.buffer).getBigUint64(0));
  }
  return { opcode: b0 & 0x0f, payload: await readConn(conn, length) };
}
