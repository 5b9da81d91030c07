import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { rootCertificates } from "node:tls";
import { errorMessage } from "../errors/error-message.js";
import { CredentialFileError } from "./errors.js";

/** The --etcd-cafile/-certfile/-keyfile paths; key and certificate come together (checked by the caller). */
export interface TlsFilePaths {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

/** What the client certificate says about itself, to explain why etcd refused it. */
export interface ClientCertificateFacts {
  path: string;
  subject: string;
  issuer: string;
  validFrom: Date;
  validTo: Date;
}

/**
 * The files read and checked, as the etcd client takes them. Holds key material: never log it,
 * never put it in an error; only `client` and `warnings` are for people.
 */
export interface TlsCredentials {
  rootCertificate: Buffer;
  privateKey?: Buffer;
  certChain?: Buffer;
  client?: ClientCertificateFacts;
  /** Usable but worth saying: a key other users can read, a certificate expired or about to. */
  warnings: string[];
}

const EXPIRY_WARNING_MS = 7 * 24 * 3600_000;

/**
 * weft's TLS files, read when needed and read again when they change (a certificate agent
 * writing them after boot, a rotation, an operator fixing a wrong CA), so a running daemon
 * picks up the fix without a restart. `fingerprint()` is a few stat() calls: cheap enough to
 * ask before every etcd call.
 */
export class TlsCredentialFiles {
  constructor(private readonly paths: TlsFilePaths) {}

  /** Changes whenever a file is replaced, rewritten, appears, disappears or changes mode. */
  fingerprint(): string {
    return this.files()
      .map(([, path]) => {
        try {
          const stat = statSync(path);
          return `${path}:${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}:${stat.mode}`;
        } catch (error) {
          return `${path}:${(error as NodeJS.ErrnoException).code ?? "error"}`;
        }
      })
      .join("|");
  }

  /** Reads and checks every file; a CredentialFileError names the flag and the path of the first bad one. */
  load(now = new Date()): TlsCredentials {
    const { caFile, certFile, keyFile } = this.paths;
    const warnings: string[] = [];
    // No --etcd-cafile: the system's CAs (an empty buffer would trust nothing at all).
    const rootCertificate = caFile ? readCertificate("--etcd-cafile", caFile).pem : Buffer.from(rootCertificates.join("\n"));
    if (!certFile || !keyFile) return { rootCertificate, warnings };
    const { pem: certChain, certificate } = readCertificate("--etcd-certfile", certFile);
    const privateKey = readCredential("--etcd-keyfile", keyFile);
    let key;
    try {
      key = createPrivateKey(privateKey);
    } catch (error) {
      // Node's message names the format problem, never the key's bytes.
      throw new CredentialFileError("--etcd-keyfile", keyFile, `not a usable PEM private key (${errorMessage(error)})`, { cause: error });
    }
    if (!certificate.checkPrivateKey(key)) {
      throw new CredentialFileError("--etcd-keyfile", keyFile, `is not the key of the certificate in --etcd-certfile ${certFile}`);
    }
    const mode = statSync(keyFile).mode & 0o777;
    if (mode & 0o004) warnings.push(`--etcd-keyfile ${keyFile} is readable by every user (mode ${mode.toString(8).padStart(4, "0")}); chmod o-r it`);
    const client: ClientCertificateFacts = {
      path: certFile,
      subject: certificate.subject.replace(/\n/g, ", "),
      issuer: certificate.issuer.replace(/\n/g, ", "),
      validFrom: new Date(certificate.validFrom),
      validTo: new Date(certificate.validTo),
    };
    const validity = describeValidity(client, now);
    if (validity) warnings.push(`--etcd-certfile ${certFile}: ${validity}`);
    else if (client.validTo.getTime() - now.getTime() < EXPIRY_WARNING_MS) warnings.push(`--etcd-certfile ${certFile}: expires at ${client.validTo.toISOString()}`);
    return { rootCertificate, certChain, privateKey, client, warnings };
  }

  private files(): [string, string][] {
    const { caFile, certFile, keyFile } = this.paths;
    const named: [string, string | undefined][] = [
      ["--etcd-cafile", caFile],
      ["--etcd-certfile", certFile],
      ["--etcd-keyfile", keyFile],
    ];
    return named.filter((entry): entry is [string, string] => entry[1] !== undefined);
  }
}

/** "expired at …" or "not valid before …" when `now` is outside the certificate's validity; else undefined. */
export function describeValidity(facts: ClientCertificateFacts, now = new Date()): string | undefined {
  if (now < facts.validFrom) return `not valid before ${facts.validFrom.toISOString()} (check the clock)`;
  if (now > facts.validTo) return `expired at ${facts.validTo.toISOString()}`;
  return undefined;
}

function readCredential(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new CredentialFileError(flag, path, `cannot read: ${errorMessage(error)}`, { cause: error });
  }
}

function readCertificate(flag: string, path: string): { pem: Buffer; certificate: X509Certificate } {
  const pem = readCredential(flag, path);
  try {
    return { pem, certificate: new X509Certificate(pem) };
  } catch (error) {
    throw new CredentialFileError(flag, path, `not a PEM certificate (${errorMessage(error)})`, { cause: error });
  }
}
