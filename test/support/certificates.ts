import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const exec = promisify(execFile);

/** A certificate with its key, as PEM files. */
export interface CertificateFiles {
  cert: string;
  key: string;
}

/**
 * Real certificates made by openssl for one test file (P-256 keys: quick to make):
 * - `ca` signed `server` (IP SAN 127.0.0.1; also for client use, as etcd's own health check presents it) and
 *   `client` (clientAuth), valid for a day;
 * - `expiredClient`: signed by `ca` too, valid 2020-01-01 to 2020-01-02 only;
 * - `otherCa`, a second authority, signed `otherClient` and `otherServer` (what a wrong CA looks like).
 */
export interface TestPki {
  dir: string;
  ca: CertificateFiles;
  server: CertificateFiles;
  client: CertificateFiles;
  expiredClient: CertificateFiles;
  otherCa: CertificateFiles;
  otherClient: CertificateFiles;
  otherServer: CertificateFiles;
}

export async function makeTestPki(dir: string): Promise<TestPki> {
  await mkdir(dir, { recursive: true });
  const path = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => exec("openssl", args, { cwd: dir });
  const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const authority = async (name: string): Promise<CertificateFiles> => {
    await openssl("req", "-x509", ...newKey, "-days", "1", "-subj", `/CN=weft-test-${name}`, "-keyout", path(`${name}.key`), "-out", path(`${name}.pem`));
    return { cert: path(`${name}.pem`), key: path(`${name}.key`) };
  };
  const request = async (name: string) => {
    await openssl("req", ...newKey, "-subj", `/CN=weft-test-${name}`, "-keyout", path(`${name}.key`), "-out", path(`${name}.csr`));
  };
  await writeFile(path("server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n");
  await writeFile(path("client.ext"), "extendedKeyUsage=clientAuth\n");
  const signed = async (name: string, by: CertificateFiles, ext: "server.ext" | "client.ext"): Promise<CertificateFiles> => {
    await request(name);
    await openssl("x509", "-req", "-in", path(`${name}.csr`), "-CA", by.cert, "-CAkey", by.key, "-CAcreateserial", "-days", "1", "-extfile", path(ext), "-out", path(`${name}.pem`));
    return { cert: path(`${name}.pem`), key: path(`${name}.key`) };
  };
  const ca = await authority("ca");
  const otherCa = await authority("other-ca");
  const server = await signed("server", ca, "server.ext");
  const client = await signed("client", ca, "client.ext");
  const otherClient = await signed("other-client", otherCa, "client.ext");
  const otherServer = await signed("other-server", otherCa, "server.ext");
  return { dir, ca, server, client, expiredClient: await expiredCertificate("expired-client", ca, dir), otherCa, otherClient, otherServer };
}

/**
 * openssl 3.0's `x509 -days` cannot go into the past and `req -not_after` is 3.4's; `openssl ca`
 * takes explicit -startdate/-enddate, so the expired certificate is signed by a one-off CA setup.
 */
async function expiredCertificate(name: string, by: CertificateFiles, dir: string): Promise<CertificateFiles> {
  const path = (file: string) => join(dir, file);
  const openssl = (...args: string[]) => exec("openssl", args, { cwd: dir });
  await writeFile(path("ca-index.txt"), "");
  await writeFile(path("ca-serial"), "1000\n");
  await writeFile(
    path("ca.cnf"),
    [
      "[ca]",
      "default_ca = test_ca",
      "[test_ca]",
      `database = ${path("ca-index.txt")}`,
      `serial = ${path("ca-serial")}`,
      `new_certs_dir = ${dir}`,
      "default_md = sha256",
      "policy = any_name",
      "unique_subject = no",
      "[any_name]",
      "commonName = supplied",
      "[client_ext]",
      "extendedKeyUsage = clientAuth",
      "",
    ].join("\n"),
  );
  await openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", `/CN=weft-test-${name}`, "-keyout", path(`${name}.key`), "-out", path(`${name}.csr`));
  await openssl(
    "ca", "-batch", "-notext", "-config", path("ca.cnf"), "-cert", by.cert, "-keyfile", by.key, "-in", path(`${name}.csr`), "-out", path(`${name}.pem`),
    "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", "-extensions", "client_ext",
  );
  return { cert: path(`${name}.pem`), key: path(`${name}.key`) };
}
