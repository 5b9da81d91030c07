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
import { Backoff } from "../async/backoff.js";
import { explainAccessFailure, explainPermissionDenied, withoutTimestamps, type AccessContext } from "./access-failure.js";
import { CredentialFileError, EtcdAccessError, EtcdCallError, WatchInterruptedError } from "./errors.js";
import type { Listing, StoredKey, WatchHandlers } from "./records.js";
import { DEFAULT_CALL_TIMEOUT_MS, type StoreOptions } from "./store-options.js";
import { StoreReachability } from "./reachability.js";
import { TlsCredentialFiles, type TlsCredentials } from "./tls-credential-files.js";

const KEEPALIVE_TIME_MS = 15_000;
const KEEPALIVE_TIMEOUT_MS = 10_000;
const WATCH_BACKOFF_FIRST_MS = 200;
const WATCH_BACKOFF_MAX_MS = 2000;
/**
 * After etcd refused weft's certificate or password, calls fail at once with the same error for
 * this long (doubling) instead of asking again: each refused password costs etcd a bcrypt
 * check, and a fleet of hosts asking every second is load on the cluster. A changed TLS file
 * ends the wait at once.
 */
const REFUSAL_BACKOFF_FIRST_MS = 1000;
const REFUSAL_BACKOFF_MAX_MS = 30_000;

/** Something about the connection worth a log line; the store has no logger, the daemon has. */
export interface StoreNotice {
  level: "info" | "warn";
  message: string;
}

/** A watch the store can end itself, when it replaces the client the watch runs on. */
interface OpenWatch {
  end(reason: Error): void;
}

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
  readonly prefix: string;
  private readonly endpointsText: string;
  private readonly callTimeoutMs: number;
  private readonly options: StoreOptions;
  /** Undefined until the TLS files could be read (they are read on first use, and again when they change). */
  private client: Etcd3 | undefined;
  /** With several endpoints: one client per endpoint for renewals (see keepAliveOnce); connected on first use. */
  private renewalClients: Etcd3[] = [];
  private renewalIndex = 0;
  private readonly tlsFiles: TlsCredentialFiles | undefined;
  /** The TLS files' fingerprint the clients were built from, and the last one that failed to load. */
  private builtFrom: string | undefined;
  private failedLoad: { fingerprint: string; error: CredentialFileError } | undefined;
  private access: AccessContext;
  /** Set while etcd refuses our certificate or password: the error, and when to ask again. */
  private refusal: { error: EtcdAccessError; retryAt: number } | undefined;
  /** The newest failure to reach etcd, for when etcd3's circuit breaker hides it. */
  private lastConnectionFailure: Error | undefined;
  private readonly refusalBackoff = new Backoff(REFUSAL_BACKOFF_FIRST_MS, REFUSAL_BACKOFF_MAX_MS);
  private readonly openWatches = new Set<OpenWatch>();
  private readonly noticeListeners: ((notice: StoreNotice) => void)[] = [];
  private readonly pendingNotices: StoreNotice[] = [];
  private closed = false;
  /** Whether etcd answers, from every call and watch stream; the daemon logs, counts and reports it. */
  readonly reachability = new StoreReachability();

  /**
   * Throws a ConfigurationError for flags that contradict each other; the TLS files are read
   * later, on first use (a missing or broken file is an error of each call, naming the file).
   */
  constructor(options: StoreOptions) {
    if (options.endpoints.length === 0) throw new ConfigurationError("--etcd-endpoints: no endpoint given");
    this.prefix = options.prefix.replace(/\/+$/, "");
    if (!this.prefix.startsWith("/")) throw new ConfigurationError(`--etcd-prefix: "${options.prefix}" must start with "/"`);
    if (Boolean(options.keyFile) !== Boolean(options.certFile)) {
      throw new ConfigurationError("--etcd-keyfile and --etcd-certfile must be given together for TLS");
    }
    if (Boolean(options.username) !== Boolean(options.password)) {
      throw new ConfigurationError("--etcd-username and --etcd-password must be given together");
    }
    this.options = options;
    this.endpointsText = options.endpoints.join(",");
    this.callTimeoutMs = options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    this.access = { caFile: options.caFile, username: options.username };
    const plain = options.endpoints.filter((endpoint) => endpoint.startsWith("http://"));
    if (options.password && plain.length > 0 && !options.caFile && !options.certFile) {
      this.notice("warn", `--etcd-password goes in clear text to ${plain.join(",")}: use https:// endpoints (and --etcd-cafile)`);
    }
    // A CA alone means TLS without a client certificate: verify the server only.
    if (options.caFile || options.certFile) this.tlsFiles = new TlsCredentialFiles(options);
    else this.buildClients(undefined);
  }

  /**
   * Hears warnings (a key file every user can read, a certificate about to expire, a password
   * sent in clear text) and reloads; notices from before the first observer are replayed to it.
   */
  observeNotices(listener: (notice: StoreNotice) => void): void {
    this.noticeListeners.push(listener);
    for (const notice of this.pendingNotices.splice(0)) listener(notice);
  }

  get configKey(): string {
    return `${this.prefix}/config`;
  }

  get subnetsPrefix(): string {
    return `${this.prefix}/subnets/`;
  }

  async get(key: string): Promise<StoredKey | undefined> {
    const response = await this.call("get", key, (client) => client.kv.range({ key: Buffer.from(key) }));
    const kv = response.kvs[0];
    return kv ? storedKey(kv) : undefined;
  }

  async put(key: string, value: string): Promise<void> {
    await this.call("put", key, (client) => client.kv.put({ key: Buffer.from(key), value: Buffer.from(value) }));
  }

  /** Every key under `prefix`, read at one revision. */
  async list(prefix: string): Promise<Listing> {
    const response = await this.call("list", prefix, (client) =>
      client.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix) }),
    );
    return { keys: response.kvs.map(storedKey), revision: String(response.header.revision) };
  }

  /** Creates `key` only if it does not exist; attached to `leaseId` unless it is undefined. */
  async createIfAbsent(key: string, value: string, leaseId: string | undefined): Promise<boolean> {
    const response = await this.call("create", key, (client) =>
      client.kv.txn({
        compare: [{ key: Buffer.from(key), target: "Version", result: "Equal", version: 0 }],
        success: [{ request_put: { key: Buffer.from(key), value: Buffer.from(value), lease: leaseId ?? 0 } }],
      }),
    );
    return response.succeeded;
  }

  /** Replaces `key` only if nobody changed it since `modRevision`. */
  async replaceIfUnchanged(key: string, value: string, leaseId: string | undefined, modRevision: string): Promise<boolean> {
    const response = await this.call("replace", key, (client) =>
      client.kv.txn({
        compare: [{ key: Buffer.from(key), target: "Mod", result: "Equal", mod_revision: modRevision }],
        success: [{ request_put: { key: Buffer.from(key), value: Buffer.from(value), lease: leaseId ?? 0 } }],
      }),
    );
    return response.succeeded;
  }

  /** Deletes `key` only if nobody changed it since `modRevision`. */
  async deleteIfUnchanged(key: string, modRevision: string): Promise<boolean> {
    const response = await this.call("delete", key, (client) =>
      client.kv.txn({
        compare: [{ key: Buffer.from(key), target: "Mod", result: "Equal", mod_revision: modRevision }],
        success: [{ request_delete_range: { key: Buffer.from(key) } }],
      }),
    );
    return response.succeeded;
  }

  async delete(key: string): Promise<boolean> {
    const response = await this.call("delete", key, (client) => client.kv.deleteRange({ key: Buffer.from(key) }));
    return Number(response.deleted) > 0;
  }

  async grantLease(ttlSeconds: number): Promise<string> {
    const response = await this.call("grant lease for", `${ttlSeconds} s`, (client) =>
      client.leaseClient.leaseGrant({ TTL: ttlSeconds }),
    );
    return String(response.ID);
  }

  async revokeLease(leaseId: string): Promise<void> {
    await this.call("revoke lease", leaseId, (client) => client.leaseClient.leaseRevoke({ ID: leaseId }));
  }

  /** Seconds left on an etcd lease; undefined when the lease no longer exists. */
  async timeToLive(leaseId: string): Promise<number | undefined> {
    const response = await this.call("look up lease", leaseId, (client) =>
      client.leaseClient.leaseTimeToLive({ ID: leaseId }),
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
    if (this.options.endpoints.length === 1) return this.call("renew lease", leaseId, (client) => keepAliveOnceWith(client, leaseId, this.callTimeoutMs));
    // A KeepAlive stream is opened on a random endpoint with no retry (unary calls fail over
    // inside the client): with several endpoints, one client each, the last good one first and
    // then the others in order, so a dead member costs one failed round trip, never a renewal.
    let lastError: unknown;
    for (let offset = 0; offset < this.options.endpoints.length; offset++) {
      const index = (this.renewalIndex + offset) % this.options.endpoints.length;
      try {
        // Looked up inside the call: the first call of a store builds the clients.
        const ttl = await this.call("renew lease", leaseId, () => keepAliveOnceWith(this.renewalClients[index] as Etcd3, leaseId, this.callTimeoutMs));
        this.renewalIndex = index;
        return ttl;
      } catch (error) {
        lastError = error;
        const cause = (error as EtcdCallError).cause;
        // A refused certificate or password, or a bad TLS file, is the same on every member.
        if (!isUnreachable(cause) || cause instanceof EtcdAccessError || cause instanceof CredentialFileError) throw error;
      }
    }
    throw lastError;
  }

  /** Watches every key under `prefix` from `fromRevision`; call the returned function to stop. */
  async watchPrefix(prefix: string, fromRevision: string, handlers: WatchHandlers): Promise<() => Promise<void>> {
    const watcher: Watcher = await this.call("watch", prefix, (client) => {
      // create() waits for etcd's answer with no deadline of its own; a watch created after we
      // gave up is cancelled as soon as it arrives.
      const creating = client.watch().prefix(prefix).startRevision(fromRevision).create();
      return withDeadline(creating, this.callTimeoutMs, () => void creating.then((late) => late.cancel()).catch(() => undefined));
    });
    // The revision the watch must resume from; etcd3's own bookkeeping moves past it on reconnects.
    let resumeRevision = BigInt(fromRevision);
    // onError is the watch's last word: said once, whichever way it ends.
    let ended = false;
    const open: OpenWatch = {
      end: (reason) => {
        if (ended) return;
        ended = true;
        this.openWatches.delete(open);
        void watcher.cancel().catch(() => undefined);
        handlers.onError(new WatchInterruptedError(prefix, this.endpointsText, false, reason), false);
      },
    };
    this.openWatches.add(open);
    // etcd3 re-creates the watch by itself after a broken stream; the caller hears of both ends
    // (a restarted etcd may have lost its data, which a resumed watch would never show).
    let disconnected = false;
    watcher.on("disconnected", (error: Error) => {
      const explained = this.explain(error);
      this.reachability.failed(explained, "watch stream");
      // etcd3 would re-create the watch with the refused credentials every 2 s, bypassing the
      // refusal back-off; end it, the caller lists again through it. Changed TLS files: the
      // clients are rebuilt and every watch ended (see buildClients).
      if (explained instanceof EtcdAccessError) {
        this.refused(explained);
        open.end(explained);
        return;
      }
      this.refreshTlsFiles();
      if (disconnected) return;
      disconnected = true;
      handlers.onDisconnected?.(explained);
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
      if (ended) return;
      ended = true;
      this.openWatches.delete(open);
      // etcd 3.4 cancels a compacted watch with an empty reason; ask for the revision to tell.
      void this.isCompacted(resumeRevision.toString()).then((compacted) =>
        handlers.onError(new WatchInterruptedError(prefix, this.endpointsText, compacted, error), compacted),
      );
    });
    return async () => {
      ended = true;
      this.openWatches.delete(open);
      await watcher.cancel().catch(() => undefined);
    };
  }

  /**
   * True when `revision` is older than etcd's compaction point (its history is gone). etcd
   * answers a compacted and a future revision with the same OutOfRange error, so a revision past
   * the head is ruled out first; below the head, OutOfRange can only mean compacted.
   */
  async isCompacted(revision: string | number): Promise<boolean> {
    const client = this.client;
    if (!client) return false;
    try {
      const head = await client.kv.range({ key: Buffer.from(this.prefix), limit: 1 });
      if (BigInt(revision) > BigInt(head.header.revision)) return false;
      await client.kv.range({ key: Buffer.from(this.prefix), revision, limit: 1 });
      return false;
    } catch (error) {
      return error instanceof GRPCOutOfRangeError;
    }
  }

  close(): void {
    this.closed = true;
    this.client?.close();
    for (const client of this.renewalClients) client.close();
  }

  private async call<T>(operation: string, subject: string, run: (client: Etcd3) => Promise<T>): Promise<T> {
    let client: Etcd3;
    try {
      client = this.usableClient();
    } catch (error) {
      throw this.failed(operation, subject, this.explain(error));
    }
    let result: T;
    try {
      result = await run(client);
    } catch (error) {
      const explained = this.explain(error);
      if (explained instanceof EtcdAccessError) this.refused(explained);
      if (isUnreachable(explained)) this.lastConnectionFailure = explained;
      throw this.failed(operation, subject, explained);
    }
    this.lastConnectionFailure = undefined;
    this.refusal = undefined;
    this.refusalBackoff.reset();
    this.reachability.answered();
    return result;
  }

  /** The error a failed call throws; counted as etcd unreachable unless etcd answered (a refused request). */
  private failed(operation: string, subject: string, explained: Error): EtcdCallError {
    const failure = new EtcdCallError(this.endpointsText, operation, subject, explained);
    if (isUnreachable(explained)) this.reachability.failed(failure, operation);
    else this.reachability.answered();
    return failure;
  }

  /**
   * The client to call etcd with: rebuilt first when the TLS files changed. Throws the refusal
   * while its back-off lasts (no network), or the CredentialFileError of a file not usable yet.
   */
  private usableClient(): Etcd3 {
    this.refreshTlsFiles();
    const client = this.client;
    if (!client) throw (this.failedLoad as { error: CredentialFileError }).error;
    if (this.refusal && Date.now() < this.refusal.retryAt) throw this.refusal.error;
    return client;
  }

  /** Reads the TLS files again if they changed since the clients were built (or last failed to load). */
  private refreshTlsFiles(): void {
    if (!this.tlsFiles || this.closed) return;
    const fingerprint = this.tlsFiles.fingerprint();
    if (fingerprint === this.builtFrom || fingerprint === this.failedLoad?.fingerprint) return;
    let credentials: TlsCredentials;
    try {
      credentials = this.tlsFiles.load();
    } catch (error) {
      if (!(error instanceof CredentialFileError)) throw error;
      this.failedLoad = { fingerprint, error };
      // A half-written rotation must not cut a working connection: keep the clients in use.
      if (this.client) this.notice("warn", `etcd ${this.endpointsText}: keeping the TLS credentials in use: ${error.message}`);
      return;
    }
    this.failedLoad = undefined;
    for (const warning of credentials.warnings) this.notice("warn", `etcd ${this.endpointsText}: ${warning}`);
    if (this.client) this.notice("info", `etcd ${this.endpointsText}: TLS files changed; connecting with the new ones`);
    this.builtFrom = fingerprint;
    this.access = { ...this.access, client: credentials.client };
    this.buildClients(credentials);
  }

  /** (Re)builds every client; watches on replaced ones end with onError, so callers watch again on the new. */
  private buildClients(credentials: TlsCredentials | undefined): void {
    const replaced = [this.client, ...this.renewalClients].filter((client): client is Etcd3 => client !== undefined);
    this.client = new Etcd3(clientOptions(this.options, this.callTimeoutMs, credentials));
    this.renewalClients =
      this.options.endpoints.length > 1
        ? this.options.endpoints.map((endpoint) => new Etcd3(clientOptions({ ...this.options, endpoints: [endpoint] }, this.callTimeoutMs, credentials)))
        : [];
    // New credentials deserve a try at once.
    this.refusal = undefined;
    this.refusalBackoff.reset();
    if (replaced.length === 0) return;
    const reason = new Error("the TLS files changed; watching again with the new ones");
    for (const watch of [...this.openWatches]) watch.end(reason);
    for (const client of replaced) client.close();
  }

  /** etcd refused the certificate or password: calls fail with `error` until the back-off ends. */
  private refused(error: EtcdAccessError): void {
    this.refusal = { error, retryAt: Date.now() + this.refusalBackoff.next() };
  }

  /** The client's error as an operator reads it (access problems, circuit breaker, timestamps). */
  private explain(error: unknown): Error {
    if (!(error instanceof Error)) return new Error(String(error));
    if (error instanceof EtcdAccessError || error instanceof CredentialFileError) return error;
    const access = explainAccessFailure(error, this.access);
    if (access) return access;
    // etcd3's breaker opens after 3 failed calls in a row and then says only that: repeat the
    // failure that opened it, so one problem reads the same on every retry.
    if ((error as { isBrokenCircuitError?: boolean }).isBrokenCircuitError) {
      return this.refusal?.error ?? this.lastConnectionFailure ?? new Error("not calling for a few seconds after repeated failures", { cause: error });
    }
    const permission = explainPermissionDenied(error, this.access);
    if (permission) return Object.assign(new EtcdPermissionDeniedError(permission), { cause: error });
    if (withoutTimestamps(error.message) !== error.message) {
      // Same class (code branches on it), stable text (a problem that repeats reads the same).
      return Object.assign(Object.create(Object.getPrototypeOf(error) as object) as Error, error, { message: withoutTimestamps(error.message), cause: error });
    }
    return error;
  }

  private notice(level: StoreNotice["level"], message: string): void {
    const notice = { level, message };
    if (this.noticeListeners.length === 0) this.pendingNotices.push(notice);
    for (const listener of this.noticeListeners) listener(notice);
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

function clientOptions(options: StoreOptions, callTimeoutMs: number, tls: TlsCredentials | undefined): IOptions {
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
  if (tls) result.credentials = { rootCertificate: tls.rootCertificate, ...(tls.privateKey && tls.certChain ? { privateKey: tls.privateKey, certChain: tls.certChain } : {}) };
  if (options.username && options.password) result.auth = { username: options.username, password: options.password };
  return result;
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
