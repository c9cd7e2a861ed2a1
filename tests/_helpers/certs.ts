/**
 * Test certificates made with `openssl`, for every test that needs TLS: a CA, a server certificate
 * for localhost/127.0.0.1, a client certificate (CN "client-one"), a client certificate from a
 * rogue CA the server does not trust (CN "mallory"), and a client certificate without a CN.
 *
 * RSA key generation costs about a second of CPU per set, so the set is made once per test module
 * (Deno runs each test file in its own isolate, so a module-level cache is per file) and only
 * copied into files when a test needs paths.
 *
 * @module
 */

/** PEM text of every certificate and key the tests use. */
export interface TestCerts {
  /** The CA that issued the server, client and no-CN certificates. */
  ca: string;
  serverCert: string;
  serverKey: string;
  /** A client certificate (CN "client-one") signed by the CA. */
  clientCert: string;
  clientKey: string;
  /** A client certificate (CN "mallory") signed by a CA the server does not trust. */
  rogueCert: string;
  rogueKey: string;
  /** A client certificate signed by the CA whose subject has no CN (only O=). */
  noCnCert: string;
  noCnKey: string;
}

/** Options of {@linkcode testCerts} and {@linkcode certFiles}. */
export interface CertOptions {
  /**
   * The server certificate's names, as an openssl subjectAltName value. Default
   * `"DNS:localhost,IP:127.0.0.1"`; any other value issues one more server certificate from the
   * same CA, so every other certificate stays the same.
   */
  serverNames?: string;
}

/** {@linkcode TestCerts} written to files in a temporary directory that disposing removes. */
export interface CertFiles extends TestCerts, AsyncDisposable {
  /** The directory, readable by all (mosquitto started as root drops to its own user). */
  dir: string;
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
  rogueCertFile: string;
  rogueKeyFile: string;
  noCnCertFile: string;
  noCnKeyFile: string;
}

const DEFAULT_SERVER_NAMES = "DNS:localhost,IP:127.0.0.1";

/** The full set with the CA key, which only this module needs (to issue more server certs). */
interface Generated {
  certs: TestCerts;
  caKey: string;
}

let generated: Promise<Generated> | undefined;
const byServerNames = new Map<string, Promise<TestCerts>>();

async function openssl(dir: string, args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd: dir, stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** `openssl req` arguments for a new RSA key `<name>.key` with this subject. */
function newKey(name: string, subject: string): string[] {
  return ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-subj", subject];
}

/** Makes `<name>.key` and `<name>.pem`, signed by `<ca>.pem` / `<ca>.key`. */
async function issue(
  dir: string,
  name: string,
  subject: string,
  ca: string,
  extensions: string,
): Promise<void> {
  await openssl(dir, [...newKey(name, subject), "-out", `${name}.csr`]);
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

/** Makes a self-signed CA, `<name>.key` and `<name>.pem`. */
async function authority(dir: string, name: string, subject: string): Promise<void> {
  await openssl(dir, [
    ...newKey(name, subject),
    "-x509",
    "-out",
    `${name}.pem`,
    "-days",
    "2",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
}

function serverExtensions(names: string): string {
  return `subjectAltName=${names}\nextendedKeyUsage=serverAuth\n`;
}

/** Runs `body` in a new temporary directory, which is removed afterwards. */
async function inTempDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "amqtt_certs_" });
  try {
    return await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function generate(): Promise<Generated> {
  return inTempDir(async (dir) => {
    await authority(dir, "ca", "/CN=amqtt test CA");
    await authority(dir, "rogue-ca", "/CN=rogue CA");
    await issue(dir, "server", "/CN=localhost", "ca", serverExtensions(DEFAULT_SERVER_NAMES));
    await issue(dir, "client", "/CN=client-one", "ca", "extendedKeyUsage=clientAuth\n");
    await issue(dir, "rogue", "/CN=mallory", "rogue-ca", "extendedKeyUsage=clientAuth\n");
    await issue(dir, "nocn", "/O=amqtt test", "ca", "extendedKeyUsage=clientAuth\n");
    const read = (f: string) => Deno.readTextFile(`${dir}/${f}`);
    return {
      caKey: await read("ca.key"),
      certs: {
        ca: await read("ca.pem"),
        serverCert: await read("server.pem"),
        serverKey: await read("server.key"),
        clientCert: await read("client.pem"),
        clientKey: await read("client.key"),
        rogueCert: await read("rogue.pem"),
        rogueKey: await read("rogue.key"),
        noCnCert: await read("nocn.pem"),
        noCnKey: await read("nocn.key"),
      },
    };
  });
}

/** The base set with its server certificate replaced by one for `names`, from the same CA. */
async function withServerNames(names: string): Promise<TestCerts> {
  generated ??= generate();
  const { certs, caKey } = await generated;
  return await inTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/ca.pem`, certs.ca);
    await Deno.writeTextFile(`${dir}/ca.key`, caKey);
    await issue(dir, "server", "/CN=localhost", "ca", serverExtensions(names));
    return {
      ...certs,
      serverCert: await Deno.readTextFile(`${dir}/server.pem`),
      serverKey: await Deno.readTextFile(`${dir}/server.key`),
    };
  });
}

/**
 * The test certificates as PEM text, made on the first call in this test module and shared after.
 *
 * @param options the server certificate's names
 * @returns the PEM strings
 * @throws {Error} when openssl fails
 */
export async function testCerts(options: CertOptions = {}): Promise<TestCerts> {
  const names = options.serverNames ?? DEFAULT_SERVER_NAMES;
  if (names === DEFAULT_SERVER_NAMES) {
    generated ??= generate();
    return (await generated).certs;
  }
  let certs = byServerNames.get(names);
  if (certs === undefined) {
    certs = withServerNames(names);
    byServerNames.set(names, certs);
  }
  return await certs;
}

/**
 * The test certificates written to a new temporary directory, for tools and configurations that
 * take file names. Dispose it (`await using`) to remove the directory.
 *
 * @param options the server certificate's names
 * @returns the PEM strings and their file names
 * @throws {Error} when openssl fails
 */
export async function certFiles(options: CertOptions = {}): Promise<CertFiles> {
  const certs = await testCerts(options);
  const dir = await Deno.makeTempDir({ prefix: "amqtt_certs_" });
  await Deno.chmod(dir, 0o755);
  const write = async (name: string, pem: string) => {
    const path = `${dir}/${name}`;
    await Deno.writeTextFile(path, pem);
    await Deno.chmod(path, 0o644);
    return path;
  };
  return {
    ...certs,
    dir,
    caFile: await write("ca.pem", certs.ca),
    serverCertFile: await write("server.pem", certs.serverCert),
    serverKeyFile: await write("server.key", certs.serverKey),
    clientCertFile: await write("client.pem", certs.clientCert),
    clientKeyFile: await write("client.key", certs.clientKey),
    rogueCertFile: await write("rogue.pem", certs.rogueCert),
    rogueKeyFile: await write("rogue.key", certs.rogueKey),
    noCnCertFile: await write("nocn.pem", certs.noCnCert),
    noCnKeyFile: await write("nocn.key", certs.noCnKey),
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/**
 * One {@linkcode CertFiles} shared by the tests of a file: made on first use, removed by the
 * file's last test.
 */
export class SharedCerts {
  #files: Promise<CertFiles> | undefined;

  /**
   * The certificate files, written once.
   *
   * @returns the PEM strings and their file names
   */
  get(): Promise<CertFiles> {
    this.#files ??= certFiles();
    return this.#files;
  }

  /** Removes the certificate directory, if it was made. */
  async remove(): Promise<void> {
    if (this.#files === undefined) return;
    const files = this.#files;
    this.#files = undefined;
    await (await files)[Symbol.asyncDispose]();
  }
}
