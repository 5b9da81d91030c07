import { Counter, Gauge, type Registry } from "prom-client";

/**
 * The wireguard backend's own metrics, read at every scrape from the running data path (nothing
 * is pushed): which implementation runs, the handshakes it completed, handshake messages it
 * dropped by reason, the cookie replies it sent and whether it is under load, and the peers it
 * has. weft's engine counts handshakes, drops and cookie replies; a device (kernel,
 * wireguard-go) shows only each peer's latest handshake, so for it those stay 0.
 * Never a key: public keys are not exported either (a label per peer would grow without bound
 * on rotation). Key rotations are counted where they happen (keyRotationCounter, below).
 */
export interface WireguardPathStatus {
  /** Absent: the implementation does not count them. */
  handshakesCompleted?: number;
  handshakeDrops?: Record<string, number>;
  /** Whitepaper §5.3: cookie replies sent, and whether handshakes need a valid mac2 now. */
  cookieRepliesSent?: number;
  underLoad?: boolean;
  peers: readonly { lastHandshakeAgeMs: number | null }[];
}

/** What a device backend reports (wg show dump has no handshake or drop counters). */
export type WireguardDeviceStatus = Pick<WireguardPathStatus, "peers">;

export type WireguardStatusSource = () => WireguardPathStatus | undefined | Promise<WireguardPathStatus | undefined>;

const sourcesByRegistry = new WeakMap<Registry, Set<WireguardStatusSource>>();

async function statuses(sources: Iterable<WireguardStatusSource>): Promise<WireguardPathStatus[]> {
  const read = await Promise.all([...sources].map((source) => source()));
  return read.filter((status): status is WireguardPathStatus => status !== undefined);
}

function register(registry: Registry, implementation: string): Set<WireguardStatusSource> {
  const sources = new Set<WireguardStatusSource>();
  new Gauge({
    name: "weft_wireguard_implementation",
    help: "The WireGuard implementation in use (1): userspace (weft's engine), kernel or wireguard-go",
    labelNames: ["implementation"],
    registers: [registry],
    collect() {
      this.reset();
      this.set({ implementation }, 1);
    },
  });
  new Counter({
    name: "weft_wireguard_handshakes_total",
    help: "WireGuard handshakes completed (as initiator or responder)",
    registers: [registry],
    async collect() {
      this.reset();
      this.inc((await statuses(sources)).reduce((sum, status) => sum + (status.handshakesCompleted ?? 0), 0));
    },
  });
  new Counter({
    name: "weft_wireguard_handshake_drops_total",
    help: "WireGuard handshake messages dropped, by reason (userspace: bad_mac1 includes those the engine dropped before its event queue)",
    labelNames: ["reason"],
    registers: [registry],
    async collect() {
      this.reset();
      for (const status of await statuses(sources)) {
        for (const [reason, count] of Object.entries(status.handshakeDrops ?? {})) this.inc({ reason }, count);
      }
    },
  });
  new Counter({
    name: "weft_wireguard_cookie_replies_total",
    help: "WireGuard cookie replies sent: handshake messages under load without a valid mac2 (whitepaper 5.3)",
    registers: [registry],
    async collect() {
      this.reset();
      this.inc((await statuses(sources)).reduce((sum, status) => sum + (status.cookieRepliesSent ?? 0), 0));
    },
  });
  new Gauge({
    name: "weft_wireguard_under_load",
    help: "1 while the WireGuard handshake is under load: initiations and responses need a valid mac2 and are rate-limited per source",
    registers: [registry],
    async collect() {
      this.set((await statuses(sources)).some((status) => status.underLoad === true) ? 1 : 0);
    },
  });
  new Gauge({
    name: "weft_wireguard_peers",
    help: "WireGuard peers, and how many have completed a handshake",
    labelNames: ["state"],
    registers: [registry],
    async collect() {
      this.reset();
      const peers = (await statuses(sources)).flatMap((status) => status.peers);
      this.set({ state: "configured" }, peers.length);
      this.set({ state: "handshaken" }, peers.filter((peer) => peer.lastHandshakeAgeMs !== null).length);
    },
  });
  sourcesByRegistry.set(registry, sources);
  return sources;
}

export type KeyRotationResult = "taken" | "refused";

const KEY_ROTATIONS = "weft_wireguard_key_rotations_total";

/**
 * Key file changes seen without a restart (key-rotation.ts), for every implementation: "taken"
 * (the new key in use on the data path and advertised), "refused" (the file failed the start-up
 * checks or went away; the key in use stays). Registered on first use.
 */
export function keyRotationCounter(registry: Registry): Counter<"result"> {
  const existing = registry.getSingleMetric(KEY_ROTATIONS) as Counter<"result"> | undefined;
  if (existing) return existing;
  const counter = new Counter({
    name: KEY_ROTATIONS,
    help: "WireGuard key file changes seen without a restart: taken (the new key in use and advertised) or refused (the file failed the checks; the key in use stays)",
    labelNames: ["result"],
    registers: [registry],
  });
  for (const result of ["taken", "refused"] satisfies KeyRotationResult[]) counter.inc({ result }, 0);
  return counter;
}

/** Adds a source to the registry's wireguard metrics (registered on first use); returns its removal. */
export function exportWireguardStatus(registry: Registry, implementation: string, source: WireguardStatusSource): () => void {
  const sources = sourcesByRegistry.get(registry) ?? register(registry, implementation);
  sources.add(source);
  return () => sources.delete(source);
}
