// loadCaCertificates: aMQTT's cafile, capath and cadata keys, read the same for listeners and the
// client.

import assert from "node:assert/strict";
import { loadCaCertificates } from "../../src/transport/ca_certificates.ts";
import { tempDir } from "../_helpers/temp_dir.ts";

const pem = (name: string) => `-----BEGIN CERTIFICATE-----\n${name}\n-----END CERTIFICATE-----\n`;

Deno.test("loadCaCertificates returns undefined when no key is set", async () => {
  assert.equal(await loadCaCertificates({}), undefined);
  assert.equal(
    await loadCaCertificates({ cafile: undefined, capath: undefined, cadata: undefined }),
    undefined,
  );
});

Deno.test("loadCaCertificates reads cafile, then capath's .pem and .crt files by name, then cadata", async () => {
  await using dir = await tempDir("amqtt_ca_");
  const certs = `${dir.path}/certs`;
  await Deno.mkdir(certs);
  await Deno.writeTextFile(`${certs}/b.crt`, pem("b"));
  await Deno.writeTextFile(`${certs}/a.PEM`, pem("a"));
  await Deno.writeTextFile(`${certs}/notes.txt`, "not a certificate");
  await Deno.mkdir(`${certs}/skipped.pem`); // a directory, not a file
  await Deno.writeTextFile(`${dir.path}/ca.pem`, pem("file"));
  const got = await loadCaCertificates({
    cafile: `${dir.path}/ca.pem`,
    capath: certs,
    cadata: pem("inline"),
  });
  assert.deepEqual(got, [pem("file"), pem("a"), pem("b"), pem("inline")]);
});

Deno.test("loadCaCertificates returns undefined for a capath without certificates", async () => {
  await using dir = await tempDir("amqtt_ca_");
  await Deno.writeTextFile(`${dir.path}/readme.txt`, "nothing here");
  assert.equal(await loadCaCertificates({ capath: dir.path }), undefined);
});

Deno.test("loadCaCertificates rejects a missing cafile or capath with NotFound", async () => {
  await using dir = await tempDir("amqtt_ca_");
  await assert.rejects(
    () => loadCaCertificates({ cafile: `${dir.path}/missing.pem` }),
    Deno.errors.NotFound,
  );
  await assert.rejects(
    () => loadCaCertificates({ capath: `${dir.path}/missing` }),
    Deno.errors.NotFound,
  );
});
