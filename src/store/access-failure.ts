import { EtcdAuthenticationFailedError, EtcdPermissionDeniedError } from "etcd3";
import { errorMessage } from "../errors/error-message.js";
import { EtcdAccessError } from "./errors.js";
import { describeValidity, type ClientCertificateFacts } from "./tls-credential-files.js";

/** What weft presented to etcd, to say which file or flag to check. Never the password. */
export interface AccessContext {
  /** --etcd-cafile, if given (else the system's CAs were trusted). */
  caFile?: string;
  /** The client certificate in use, if any. */
  client?: ClientCertificateFacts;
  username?: string;
  now?: Date;
}

/**
 * gRPC reports every failed TLS handshake as "14 UNAVAILABLE: No connection established. Last
 * error: <OpenSSL's words> (<timestamp>)", and etcd3 a refused password as "etcdserver:
 * authentication failed". This turns those into what an operator checks: which side refused
 * which certificate, which flag or file, which user. Undefined for anything else (etcd down,
 * a refused request): the caller keeps the client's error.
 */
export function explainAccessFailure(error: unknown, context: AccessContext): EtcdAccessError | undefined {
  if (error instanceof EtcdAuthenticationFailedError) {
    return new EtcdAccessError("auth", `authentication failed for user "${context.username ?? "?"}": wrong --etcd-password, or no such user in etcd`, { cause: error });
  }
  const text = withoutTimestamps(errorMessage(error));
  if (/authentication is not enabled/i.test(text)) {
    return new EtcdAccessError("auth", `user "${context.username ?? "?"}" given, but etcd has authentication turned off: drop --etcd-username/--etcd-password or run "etcdctl auth enable"`, { cause: error });
  }
  const handshake = handshakeProblem(text, context);
  return handshake ? new EtcdAccessError("tls", `TLS handshake failed: ${handshake}`, { cause: error }) : undefined;
}

/** A refused request (not a refused connection): which user lacks which permission. */
export function explainPermissionDenied(error: unknown, context: AccessContext): string | undefined {
  if (!(error instanceof EtcdPermissionDeniedError)) return undefined;
  const who = context.username ? `user "${context.username}"` : "an unauthenticated client (no --etcd-username)";
  return `permission denied for ${who}: grant its role readwrite on the key prefix (etcdctl role grant-permission --prefix)`;
}

/** gRPC's connection messages carry a timestamp: without it, one problem reads the same every time. */
export function withoutTimestamps(message: string): string {
  return message.replace(/ \(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\)/g, "");
}

function handshakeProblem(text: string, context: AccessContext): string | undefined {
  // The other side's TLS alert: etcd refused (or did not get) our client certificate. Checked
  // first: "alert certificate expired" is about our certificate, not etcd's.
  if (/alert (bad certificate|certificate unknown|unknown ca|certificate expired|certificate revoked|unsupported certificate|certificate required|handshake failure|access denied)/i.test(text)) {
    return clientCertificateRefused(context);
  }
  if (/unable to verify the first certificate|unable to get (local )?issuer certificate|self[- ]signed certificate|certificate signature failure/i.test(text)) {
    const ca = context.caFile ? `check --etcd-cafile ${context.caFile}` : "no --etcd-cafile given, the system's CAs were tried";
    return `etcd's certificate is signed by an unknown authority (${ca})`;
  }
  if (/certificate has expired/i.test(text)) return "etcd's server certificate has expired (renew it on the etcd side)";
  if (/certificate is not yet valid/i.test(text)) return "etcd's server certificate is not valid yet (check the clocks)";
  const altName = /Hostname\/IP does not match certificate's altnames: (.+?)(?:\. Resolution note|$)/i.exec(text);
  if (altName) return `etcd's certificate is not for this address (${altName[1]}); use an endpoint its certificate names`;
  if (/wrong version number|packet length too long|unknown protocol|http request/i.test(text)) {
    return "etcd does not speak TLS at this address (an https:// endpoint, or TLS files, for a plain http etcd)";
  }
  return undefined;
}

function clientCertificateRefused(context: AccessContext): string {
  const { client } = context;
  if (!client) return "etcd requires a client certificate (--client-cert-auth): give --etcd-certfile and --etcd-keyfile";
  const validity = describeValidity(client, context.now);
  if (validity) return `etcd refused our client certificate: --etcd-certfile ${client.path} ${validity}`;
  return `etcd refused our client certificate --etcd-certfile ${client.path} (issuer "${client.issuer}"): is it signed by a CA in etcd's --trusted-ca-file, and for client use?`;
}
