import { readFileSync } from "node:fs";
import { rootCertificates } from "node:tls";
import {
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdError,
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  GRPCAlreadyExistsError,
  GRPCFailedPreconditionError,
  GRPCInvalidArgumentError,
  GRPCNotFoundError,
  GRPCOutOfRangeError,
  GRPCUnauthenticatedError,
  type IOptions,
  type IKeyValue,
  type Watcher,
} from "etcd3";
import { ConfigurationError } from "../errors/configuration-error.js";
import { errorMessage } from "../errors/error-message.js";
import { EtcdCallError, WatchInterruptedError } from "./errors.js";
import type { Listing, StoredKey, WatchHandlers } from "./records.js";
import { DEFAULT_CALL_TIMEOUT_MS, type StoreOptions } from "./store-options.js";
import { StoreReachability } from "./reachability.js";

const KEEPALIVE_TIME_MS = 15_000;
const KEEPALIVE_TIMEOUT_MS = 10_000;
const WATCH_BACKOFF_FIRST_MS = 200;
const WATCH_BACKOFF_MAX_MS = 2000;

/** cockatiel's IBackoff shape (what etcd3 takes): doubling from `duration` up to `maxMs`. */
class CappedBackoff {
  constructor(
    readonly duration: number,
    private readonly maxMs: number,
  ) {}

  next(): CappedBackoff {
    return new CappedBackoff(Math.min(this.duration * 2, this.maxMs), this.maxMs);
  }
}

/**
 * The etcd v3 client weft uses: flannel's key layout under a prefix, deadlines on every call
 * and gRPC keepalive so a dead or frozen etcd surfaces as an error within seconds (the etcd3
 * package's defaults wait forever), and errors that name the endpoints and the key.
 */
export class EtcdStore {
  private readonly client: Etcd3;
  readonly prefix: string;
  private readonly endpointsText: string;
  private readonly callTimeoutMs: number;
  /** With several endpoints: one client per endpoint for renewals (see keepAliveOnce); connected on first use. */
  private readonly renewalClients: Etcd3[];
  private renewalIndex = 0;
  /** Whether etcd answers, from every call and watch stream; the daemon logs, counts and reports it. */
  readonly reachability = new StoreReachability();

  constructor(options: StoreOptions) {
    if (options.endpoints.length === 0) throw new ConfigurationError("--etcd-endpoints: no endpoint given");
    this.prefix = options.prefix.replace(/\/+$/, "");
    if (!this.prefix.startsWith("/")) throw new ConfigurationError(`--etcd-prefix: "${options.prefix}" must start with "/"`);
    this.endpointsText = options.endpoints.join(",");
    this.callTimeoutMs = options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    this.client = new Etcd3(clientOptions(options, this.callTimeoutMs));
    this.renewalClients =
      options.endpoints.length > 1 ? options.endpoints.map((endpoint) => new Etcd3(clientOptions({ ...options, endpoints: [endpoint] }, this.callTimeoutMs))) : [];
  }

  get configKey(): string {
    return `${this.prefix}/config`;
  }

  get subnetsPrefix(): string {
    return `${this.prefix}/subnets/`;
  }

  async get(key: string): Promise<StoredKey | undefined> {
    const response = await this.call("get", key, () => this.client.kv.range({ key: Buffer.from(key) }));
    const kv = response.kvs[0];
    return kv ? storedKey(kv) : undefined;
  }

  async put(key: string, value: string): Promise<void> {
    await this.call("put", key, () => this.client.kv.put({ key: Buffer.from(key), value: Buffer.from(value) }));
  }

  /** Every key under `prefix`, read at one revision. */
  async list(prefix: string): Promise<Listing> {
    const response = await this.call("list", prefix, () =>
      this.client.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix) }),
    );
    return { keys: response.kvs.map(storedKey), revision: String(response.header.revision) };
  }

  /** Creates `key` only if it does not exist; attached to `leaseId` unless it is undefined. */
  async createIfAbsent(key: string, value: string, leaseId: string | undefined): Promise<boolean> {
    const response = await this.call("create", key, () =>
      this.client.kv.txn({
        compare: [{ key: Buffer.from(key), target: "Version", result: "Equal", version: 0 }],
        success: [{ request_put: { key: Buffer.from(key), value: Buffer.from(value), lease: leaseId ?? 0 } }],
      }),
    );
    return response.succeeded;
  }

  /** Replaces `key` only if nobody changed it since `modRevision`. */
  async replaceIfUnchanged(key: string, value: string, leaseId: string | undefined, modRevision: string): Promise<boolean> {
    const response = await this.call("replace", key, () =>
      this.client.kv.txn({
        compare: [{ key: Buffer.from(key), target: "Mod", result: "Equal", mod_revision: modRevision }],
        success: [{ request_put: { key: Buffer.from(key), value: Buffer.from(value), lease: leaseId ?? 0 } }],
      }),
    );
    return response.succeeded;
  }

  /** Deletes `key` only if nobody changed it since `modRevision`. */
  async deleteIfUnchanged(key: string, modRevision: string): Promise<boolean> {
    const response = await this.call("delete", key, () =>
      this.client.kv.txn({
        compare: [{ key: Buffer.from(key), target: "Mod", result: "Equal", mod_revision: modRevision }],
        success: [{ request_delete_range: { key: Buffer.from(key) } }],
      }),
    );
    return response.succeeded;
  }

  async delete(key: string): Promise<boolean> {
    const response = await this.call("delete", key, () => this.client.kv.deleteRange({ key: Buffer.from(key) }));
    return Number(response.deleted) > 0;
  }

  async grantLease(ttlSeconds: number): Promise<string> {
    const response = await this.call("grant lease for", `${ttlSeconds} s`, () =>
      this.client.leaseClient.leaseGrant({ TTL: ttlSeconds }),
    );
    return String(response.ID);
  }

  async revokeLease(leaseId: string): Promise<void> {
    await this.call("revoke lease", leaseId, () => this.client.leaseClient.leaseRevoke({ ID: leaseId }));
  }

  /** Seconds left on an etcd lease; undefined when the lease no longer exists. */
  async timeToLive(leaseId: string): Promise<number | undefined> {
    const response = await this.call("look up lease", leaseId, () =>
      this.client.leaseClient.leaseTimeToLive({ ID: leaseId }),
    );
    const ttl = Number(response.TTL);
    return ttl < 0 ? undefined : ttl;
  }

  /**
   * Refreshes an etcd lease to its granted TTL (one KeepAlive round trip). Returns the new TTL,
   * or undefined when the lease has expired. Reusing the lease is what keeps renewals from
   * leaving an orphaned etcd lease behind each time, as flanneld does.
   */
  async keepAliveOnce(leaseId: string): Promise<number | undefined> {
    if (this.renewalClients.length === 0) return this.call("renew lease", leaseId, () => keepAliveOnceWith(this.client, leaseId, this.callTimeoutMs));
    // A KeepAlive stream is opened on a random endpoint with no retry (unary calls fail over
    // inside the client): with several endpoints, one client each, the last good one first and
    // then the others in order, so a dead member costs one failed round trip, never a renewal.
    let lastError: unknown;
    for (let offset = 0; offset < this.renewalClients.length; offset++) {
      const index = (this.renewalIndex + offset) % this.renewalClients.length;
      try {
        const ttl = await this.call("renew lease", leaseId, () => keepAliveOnceWith(this.renewalClients[index] as Etcd3, leaseId, this.callTimeoutMs));
        this.renewalIndex = index;
        return ttl;
      } catch (error) {
        lastError = error;
        if (!isUnreachable((error as EtcdCallError).cause)) throw error;
      }
    }
    throw lastError;
  }

  /** Watches every key under `prefix` from `fromRevision`; call the returned function to stop. */
  async watchPrefix(prefix: string, fromRevision: string, handlers: WatchHandlers): Promise<() => Promise<void>> {
    // create() waits for etcd's answer with no deadline of its own; a watch created after we
    // gave up is cancelled as soon as it arrives.
    const creating = this.client.watch().prefix(prefix).startRevision(fromRevision).create();
    const watcher: Watcher = await this.call("watch", prefix, () =>
      withDeadline(creating, this.callTimeoutMs, () => void creating.then((late) => late.cancel()).catch(() => undefined)),
    );
    // The revision the watch must resume from; etcd3's own bookkeeping moves past it on reconnects.
    let resumeRevision = BigInt(fromRevision);
    // etcd3 re-creates the watch by itself after a broken stream; the caller hears of both ends
    // (a restarted etcd may have lost its data, which a resumed watch would never show).
    let disconnected = false;
    watcher.on("disconnected", (error: Error) => {
      this.reachability.failed(error, "watch stream");
      if (disconnected) return;
      disconnected = true;
      handlers.onDisconnected?.(error);
    });
    watcher.on("connected", () => {
      if (!disconnected) return;
      disconnected = false;
      this.reachability.answered();
      handlers.onReconnected?.();
    });
    watcher.on("data", (response) => {
      resumeRevision = BigInt(response.header.revision) + 1n;
      const events = response.events.map((event) => ({
        type: event.type === "Delete" ? ("delete" as const) : ("put" as const),
        ...storedKey(event.kv),
      }));
      handlers.onEvents(events, String(response.header.revision));
    });
    watcher.on("error", (error: Error) => {
      // etcd 3.4 cancels a compacted watch with an empty reason; ask for the revision to tell.
      void this.isCompacted(resumeRevision.toString()).then((compacted) =>
        handlers.onError(new WatchInterruptedError(prefix, this.endpointsText, compacted, error), compacted),
      );
    });
    return async () => {
      await watcher.cancel().catch(() => undefined);
    };
  }

  /**
   * True when `revision` is older than etcd's compaction point (its history is gone). etcd
   * answers a compacted and a future revision with the same OutOfRange error, so a revision past
   * the head is ruled out first; below the head, OutOfRange can only mean compacted.
   */
  async isCompacted(revision: string | number): Promise<boolean> {
    try {
      const head = await this.client.kv.range({ key: Buffer.from(this.prefix), limit: 1 });
      if (BigInt(revision) > BigInt(head.header.revision)) return false;
      await this.client.kv.range({ key: Buffer.from(this.prefix), revision, limit: 1 });
      return false;
    } catch (error) {
      return error instanceof GRPCOutOfRangeError;
    }
  }

  close(): void {
    this.client.close();
    for (const client of this.renewalClients) client.close();
  }

  private async call<T>(operation: string, subject: string, run: () => Promise<T>): Promise<T> {
    let result: T;
    try {
      result = await run();
    } catch (error) {
      const failure = new EtcdCallError(this.endpointsText, operation, subject, error);
      if (isUnreachable(error)) this.reachability.failed(failure, operation);
      else this.reachability.answered();
      throw failure;
    }
    this.reachability.answered();
    return result;
  }
}

/** One KeepAlive round trip on `client`: the new TTL, or undefined when the lease has expired. */
async function keepAliveOnceWith(client: Etcd3, leaseId: string, timeoutMs: number): Promise<number | undefined> {
  const stream = await client.leaseClient.leaseKeepAlive({ deadline: Date.now() + timeoutMs });
  try {
    const reply = new Promise<number>((resolve, reject) => {
      stream.on("data", (response: { TTL: string | number }) => resolve(Number(response.TTL)));
      stream.on("error", reject);
      stream.on("end", () => reject(new Error("keepalive stream ended without a reply")));
    });
    stream.write({ ID: leaseId });
    const ttl = await reply;
    return ttl > 0 ? ttl : undefined;
  } finally {
    stream.end();
    stream.cancel();
  }
}

/**
 * True when the error says etcd did not answer (unavailable, deadline, broken stream, open
 * circuit); false for an answer that refused the request (a bad lease, no permission).
 */
function isUnreachable(error: unknown): boolean {
  const answered = [
    EtcdError,
    EtcdLeaseInvalidError,
    EtcdAuthenticationFailedError,
    EtcdPermissionDeniedError,
    GRPCInvalidArgumentError,
    GRPCNotFoundError,
    GRPCOutOfRangeError,
    GRPCFailedPreconditionError,
    GRPCUnauthenticatedError,
    GRPCAlreadyExistsError,
  ];
  return !answered.some((errorClass) => error instanceof errorClass);
}

function clientOptions(options: StoreOptions, callTimeoutMs: number): IOptions {
  const result: IOptions = {
    hosts: options.endpoints,
    dialTimeout: callTimeoutMs,
    // Unary calls get a deadline; streams (watch, keepalive) are watched by gRPC keepalive pings.
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    grpcOptions: {
      // etcd refuses pings more often than every 5 s, and any ping with no stream open
      // (--grpc-keepalive-min-time, PermitWithoutStream=false): at exactly 5 s, timer jitter
      // made etcd answer "excess pings" and close the connection. 15 s + a 10 s timeout still
      // notices a dead etcd within 25 s, and a slow one (4 s round trips) stays connected.
      "grpc.keepalive_time_ms": KEEPALIVE_TIME_MS,
      "grpc.keepalive_timeout_ms": KEEPALIVE_TIMEOUT_MS,
      "grpc.keepalive_permit_without_calls": 0,
      "grpc.initial_reconnect_backoff_ms": 200,
      "grpc.max_reconnect_backoff_ms": 5000,
    },
    // etcd3's own watch re-creation backs off to 30 s: after an etcd restart the watch (and with
    // it the re-listing that finds a lost lease or config) came back up to 30 s late.
    faultHandling: { watchBackoff: new CappedBackoff(WATCH_BACKOFF_FIRST_MS, WATCH_BACKOFF_MAX_MS) },
  };
  if (options.keyFile && options.certFile) {
    result.credentials = {
      rootCertificate: readCaFile(options.caFile),
      privateKey: readRequiredCredential(options.keyFile, "--etcd-keyfile"),
      certChain: readRequiredCredential(options.certFile, "--etcd-certfile"),
    };
  } else if (options.keyFile || options.certFile) {
    throw new ConfigurationError("--etcd-keyfile and --etcd-certfile must be given together for TLS");
  } else if (options.caFile) {
    // A CA alone means TLS without a client certificate: verify the server only.
    result.credentials = { rootCertificate: readCaFile(options.caFile) };
  }
  if (options.username || options.password) {
    if (!options.username || !options.password) {
      throw new ConfigurationError("--etcd-username and --etcd-password must be given together");
    }
    result.auth = { username: options.username, password: options.password };
  }
  return result;
}

/** No --etcd-cafile: trust the system's CAs (an empty buffer would trust nothing at all). */
function systemRootCertificates(): Buffer {
  return Buffer.from(rootCertificates.join("\n"));
}

function readCaFile(path: string | undefined): Buffer {
  return path ? readRequiredCredential(path, "--etcd-cafile") : systemRootCertificates();
}

function readRequiredCredential(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new ConfigurationError(`${flag}: cannot read ${path}: ${errorMessage(error)}`, { cause: error });
  }
}

/** Rejects when `promise` takes longer than `ms`; `onLate` cleans up what arrives after that. */
function withDeadline<T>(promise: Promise<T>, ms: number, onLate: () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      onLate();
      reject(new Error(`no answer within ${ms} ms`));
    }, ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

function storedKey(kv: IKeyValue): StoredKey {
  return {
    key: kv.key.toString(),
    value: kv.value.toString(),
    leaseId: String(kv.lease ?? "0"),
    modRevision: String(kv.mod_revision),
  };
}

/** The range end that covers every key starting with `prefix`. */
function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}
