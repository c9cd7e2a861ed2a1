/**
 * Loads the CA certificates a TLS peer is checked against, from aMQTT's three keys: `cafile`,
 * `capath` and `cadata`. Used by the broker's listeners and by the client.
 *
 * @module
 */

/** Where CA certificates come from, by aMQTT's key names. */
export interface CaSource {
  /** A PEM file of one or more CA certificates. */
  cafile?: string | undefined;
  /** A directory whose `.pem` and `.crt` files are PEM CA certificates. */
  capath?: string | undefined;
  /** PEM CA certificates, inline. */
  cadata?: string | undefined;
}

/**
 * Reads every CA certificate `source` names: the file, then the directory's `.pem` and `.crt`
 * files in name order, then the inline data.
 *
 * @param source `cafile`, `capath` and `cadata`; each may be left out.
 * @returns PEM texts, one per file or inline block, or `undefined` when no key is set.
 * @throws {Deno.errors.NotFound} When the file or directory does not exist (other file system
 * errors as `Deno.readTextFile` throws them).
 * @example
 * ```ts
 * import { loadCaCertificates } from "./ca_certificates.ts";
 * import assert from "node:assert/strict";
 *
 * const pem = "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n";
 * assert.deepEqual(await loadCaCertificates({ cadata: pem }), [pem]);
 * assert.equal(await loadCaCertificates({}), undefined);
 * ```
 */
export async function loadCaCertificates(source: CaSource): Promise<string[] | undefined> {
  const out: string[] = [];
  if (source.cafile !== undefined) out.push(await Deno.readTextFile(source.cafile));
  if (source.capath !== undefined) {
    const names: string[] = [];
    for await (const entry of Deno.readDir(source.capath)) {
      if (entry.isFile && /\.(pem|crt)$/i.test(entry.name)) names.push(entry.name);
    }
    for (const name of names.sort()) {
      out.push(await Deno.readTextFile(`${source.capath}/${name}`));
    }
  }
  if (source.cadata !== undefined) out.push(source.cadata);
  return out.length > 0 ? out : undefined;
}
