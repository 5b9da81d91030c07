/*
 * The TLS files and the words for a refused connection, without etcd: real openssl-made
 * certificates read from a temp dir, and the client errors gRPC and etcd3 really produce
 * (seen against etcd 3.4 in etcd-tls-auth.test.ts) turned into what an operator checks.
 */
import { EtcdAuthenticationFailedError, EtcdPermissionDeniedError } from "etcd3";
import { chmod, copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { explainAccessFailure, explainPermissionDenied, withoutTimestamps } from "../../src/store/access-failure.js";
import { CredentialFileError } from "../../src/store/errors.js";
import { TlsCredentialFiles } from "../../src/store/tls-credential-files.js";
import { makeTestPki, type TestPki } from "../support/certificates.js";

let dir: string;
let pki: TestPki;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "weft-tlsunit-"));
  pki = await makeTestPki(join(dir, "pki"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function loadError(files: ConstructorParameters<typeof TlsCredentialFiles>[0]): CredentialFileError {
  try {
    new TlsCredentialFiles(files).load();
  } catch (error) {
    expect(error).toBeInstanceOf(CredentialFileError);
    return error as CredentialFileError;
  }
  throw new Error("load() accepted the files");
}

describe("TlsCredentialFiles", () => {
  it("reads a CA, certificate and key that belong together, and describes the certificate", () => {
    const loaded = new TlsCredentialFiles({ caFile: pki.ca.cert, certFile: pki.client.cert, keyFile: pki.client.key }).load();
    expect(loaded.privateKey?.toString()).toContain("PRIVATE KEY");
    expect(loaded.client).toMatchObject({ path: pki.client.cert, subject: "CN=weft-test-client", issuer: "CN=weft-test-ca" });
    // Valid for a day: under the 7-day expiry warning.
    expect(loaded.warnings).toEqual([expect.stringMatching(new RegExp(`^--etcd-certfile ${pki.client.cert}: expires at 20\\d\\d-`))]);
  });

  it("names the flag and the file of the first unusable one, never its content", async () => {
    const missing = join(dir, "missing.key");
    expect(loadError({ caFile: pki.ca.cert, certFile: pki.client.cert, keyFile: missing }).message).toBe(
      `--etcd-keyfile ${missing}: cannot read: ENOENT: no such file or directory, open '${missing}'`,
    );
    const garbage = join(dir, "garbage.pem");
    await writeFile(garbage, "not a certificate\n");
    expect(loadError({ caFile: garbage }).message).toMatch(new RegExp(`^--etcd-cafile ${garbage}: not a PEM certificate \\(`));
    const notAKey = join(dir, "not-a-key.pem");
    await writeFile(notAKey, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    const bad = loadError({ caFile: pki.ca.cert, certFile: pki.client.cert, keyFile: notAKey });
    expect(bad.message).toMatch(new RegExp(`^--etcd-keyfile ${notAKey}: not a usable PEM private key \\(`));
    expect(bad.message).not.toContain("AAAA");
    expect(loadError({ caFile: pki.ca.cert, certFile: pki.client.cert, keyFile: pki.otherClient.key }).message).toBe(
      `--etcd-keyfile ${pki.otherClient.key}: is not the key of the certificate in --etcd-certfile ${pki.client.cert}`,
    );
  });

  it("warns about a key every user can read and about an expired certificate", async () => {
    const key = join(dir, "open.key");
    await copyFile(pki.expiredClient.key, key);
    await chmod(key, 0o644);
    const loaded = new TlsCredentialFiles({ caFile: pki.ca.cert, certFile: pki.expiredClient.cert, keyFile: key }).load();
    expect(loaded.warnings).toEqual([
      `--etcd-keyfile ${key} is readable by every user (mode 0644); chmod o-r it`,
      `--etcd-certfile ${pki.expiredClient.cert}: expired at 2020-01-02T00:00:00.000Z`,
    ]);
  });

  it("has a fingerprint that changes when a file is rewritten, appears or changes mode", async () => {
    const ca = join(dir, "fingerprint-ca.pem");
    const files = new TlsCredentialFiles({ caFile: ca });
    const absent = files.fingerprint();
    await copyFile(pki.otherCa.cert, ca);
    const present = files.fingerprint();
    expect(present).not.toBe(absent);
    expect(files.fingerprint()).toBe(present);
    await copyFile(pki.ca.cert, ca);
    const rewritten = files.fingerprint();
    expect(rewritten).not.toBe(present);
    await chmod(ca, 0o600);
    expect(files.fingerprint()).not.toBe(rewritten);
  });
});

describe("explainAccessFailure", () => {
  const client = { path: "/etc/weft/client.pem", subject: "CN=h1", issuer: "CN=ops-ca", validFrom: new Date("2026-01-01T00:00:00Z"), validTo: new Date("2027-01-01T00:00:00Z") };
  const now = new Date("2026-12-01T00:00:00Z");
  const unavailable = (detail: string) => new Error(`14 UNAVAILABLE: No connection established. Last error: ${detail} (2026-12-01T22:51:03.123Z). Resolution note: `);

  it.each([
    [unavailable("unable to verify the first certificate"), { caFile: "/etc/weft/ca.pem" }, "TLS handshake failed: etcd's certificate is signed by an unknown authority (check --etcd-cafile /etc/weft/ca.pem)"],
    [unavailable("self-signed certificate in certificate chain"), {}, "TLS handshake failed: etcd's certificate is signed by an unknown authority (no --etcd-cafile given, the system's CAs were tried)"],
    [unavailable("C0E7:error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1605:SSL alert number 42"), { client, now },
      `TLS handshake failed: etcd refused our client certificate --etcd-certfile /etc/weft/client.pem (issuer "CN=ops-ca"): is it signed by a CA in etcd's --trusted-ca-file, and for client use?`],
    [unavailable("error:0A000412:SSL routines::sslv3 alert bad certificate"), { client, now: new Date("2027-02-01T00:00:00Z") },
      "TLS handshake failed: etcd refused our client certificate: --etcd-certfile /etc/weft/client.pem expired at 2027-01-01T00:00:00.000Z"],
    [unavailable("error:0A00045C:SSL routines::tlsv13 alert certificate required"), {}, "TLS handshake failed: etcd requires a client certificate (--client-cert-auth): give --etcd-certfile and --etcd-keyfile"],
    [unavailable("certificate has expired"), {}, "TLS handshake failed: etcd's server certificate has expired (renew it on the etcd side)"],
    [unavailable("Hostname/IP does not match certificate's altnames: IP: 127.0.0.2 is not in the cert's list: 127.0.0.1"), {},
      "TLS handshake failed: etcd's certificate is not for this address (IP: 127.0.0.2 is not in the cert's list: 127.0.0.1); use an endpoint its certificate names"],
    [unavailable("error:0A00010B:SSL routines::wrong version number"), {}, "TLS handshake failed: etcd does not speak TLS at this address (an https:// endpoint, or TLS files, for a plain http etcd)"],
    [new EtcdAuthenticationFailedError("etcdserver: authentication failed, invalid user ID or password"), { username: "weft" }, `authentication failed for user "weft": wrong --etcd-password, or no such user in etcd`],
  ])("%s", (error, context, message) => {
    expect(explainAccessFailure(error, context)?.message).toBe(message);
  });

  it("leaves errors that are not about access alone", () => {
    expect(explainAccessFailure(unavailable("connect ECONNREFUSED 127.0.0.1:2379"), {})).toBeUndefined();
    expect(explainAccessFailure(new Error("etcdserver: requested lease not found"), {})).toBeUndefined();
  });

  it("says which user lacks a permission, and drops gRPC's timestamps", () => {
    expect(explainPermissionDenied(new EtcdPermissionDeniedError("etcdserver: permission denied"), { username: "weft" })).toBe(
      `permission denied for user "weft": grant its role readwrite on the key prefix (etcdctl role grant-permission --prefix)`,
    );
    expect(withoutTimestamps(unavailable("connect ECONNREFUSED 127.0.0.1:2379").message)).toBe(
      "14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 127.0.0.1:2379. Resolution note: ",
    );
  });
});
