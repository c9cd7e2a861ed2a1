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
  // Read byte by byte up to the blank line so no frame byte is consumed with the head.
  let head = "";
  while (!head.endsWith("\r\n\r\n")) {
    head += String.fromCharCode((await readConn(conn, 1))[0]);
    if (head.length > 4096) throw new Error("Response head too long");
  }
  return { conn, head };
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
