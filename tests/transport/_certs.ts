/**
 * Test certificates made with `openssl`: a CA, a server certificate for localhost/127.0.0.1, a
 * client certificate (CN "client-one") from that CA, and a client certificate from another CA.
 *
 * @module
 */

/** PEM strings of every certificate and key the transport tests use. */
export interface TestCerts {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate (CN "mallory") signed by a CA the server does not trust. */
  rogueCert: string;
  rogueKey: string;
  /** A client certificate signed by the CA whose subject has no CN (only O=). */
  noCnCert: string;
  noCnKey: string;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd: dir, stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

async function issue(
  dir: string,
  name: string,
  subject: string,
  ca: string,
  extensions: string,
): Promise<void> {
  await openssl(dir, [
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
    "-subj",
    subject,
  ]);
  await Deno.writeTextFile(`${dir}/${name}.ext`, extensions);
  await openssl(dir, [
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    `${ca}.pem`,
    "-CAkey",
    `${ca}.key`,
    "-CAcreateserial",
    "-out",
    `${name}.pem`,
    "-days",
    "2",
    "-extfile",
    `${name}.ext`,
  ]);
}

async function authority(dir: string, name: string, subject: string): Promise<void> {
  await openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.pem`,
    "-days",
    "2",
    "-subj",
    subject,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
}

/**
 * Generates fresh certificates in a temporary directory, reads them, and removes the directory.
 *
 * @returns the PEM strings
 * @throws {Error} when openssl fails
 */
export async function makeCerts(): Promise<TestCerts> {
  const dir = await Deno.makeTempDir({ prefix: "amqtt-certs-" });
  try {
    await authority(dir, "ca", "/CN=amqtt test CA");
    await authority(dir, "rogue-ca", "/CN=rogue CA");
    await issue(
      dir,
      "server",
      "/CN=localhost",
      "ca",
      "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    await issue(dir, "client", "/CN=client-one", "ca", "extendedKeyUsage=clientAuth\n");
    await issue(dir, "rogue", "/CN=mallory", "rogue-ca", "extendedKeyUsage=clientAuth\n");
    await issue(dir, "nocn", "/O=amqtt test", "ca", "extendedKeyUsage=clientAuth\n");
    const read = (f: string) => Deno.readTextFile(`${dir}/${f}`);
    return {
      ca: await read("ca.pem"),
      serverCert: await read("server.pem"),
      serverKey: await read("server.key"),
      clientCert: await read("client.pem"),
      clientKey: await read("client.key"),
      rogueCert: await read("rogue.pem"),
      rogueKey: await read("rogue.key"),
      noCnCert: await read("nocn.pem"),
      noCnKey: await read("nocn.key"),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
