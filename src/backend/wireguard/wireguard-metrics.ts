import { Counter, Gauge, type Registry } from "prom-client";
import type { WireguardStatus } from "../../engine/engine.js";

/**
 * The wireguard backend's own metrics, read at every scrape from the running engine (nothing is
 * pushed): which data path runs, the handshakes it completed, handshake messages it dropped by
 * reason, and the peers it has. Never a key: public keys are not exported either (a label per
 * peer would grow without bound on rotation).
 */
export type WireguardStatusSource = () => WireguardStatus | undefined;

const sourcesByRegistry = new WeakMap<Registry, Set<WireguardStatusSource>>();

function statuses(sources: Iterable<WireguardStatusSource>): WireguardStatus[] {
  const result: WireguardStatus[] = [];
  for (const source of sources) {
    const status = source();
    if (status) result.push(status);
  }
  return result;
}

function register(registry: Registry, implementation: string): Set<WireguardStatusSource> {
  const sources = new Set<WireguardStatusSource>();
  new Gauge({
    name: "weft_wireguard_implementation",
    help: "The WireGuard data path in use (1): userspace (weft's engine) or kernel",
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
    collect() {
      this.reset();
      this.inc(statuses(sources).reduce((sum, status) => sum + status.handshakesCompleted, 0));
    },
  });
  new Counter({
    name: "weft_wireguard_handshake_drops_total",
    help: "WireGuard handshake messages dropped, by reason",
    labelNames: ["reason"],
    registers: [registry],
    collect() {
      this.reset();
      for (const status of statuses(sources)) {
        for (const [reason, count] of Object.entries(status.handshakeDrops)) this.inc({ reason }, count);
      }
    },
  });
  new Gauge({
    name: "weft_wireguard_peers",
    help: "WireGuard peers, and how many have completed a handshake",
    labelNames: ["state"],
    registers: [registry],
    collect() {
      this.reset();
      const peers = statuses(sources).flatMap((status) => status.peers);
      this.set({ state: "configured" }, peers.length);
      this.set({ state: "handshaken" }, peers.filter((peer) => peer.lastHandshakeAgeMs !== null).length);
    },
  });
  sourcesByRegistry.set(registry, sources);
  return sources;
}

/** Adds a source to the registry's wireguard metrics (registered on first use); returns its removal. */
export function exportWireguardStatus(registry: Registry, implementation: string, source: WireguardStatusSource): () => void {
  const sources = sourcesByRegistry.get(registry) ?? register(registry, implementation);
  sources.add(source);
  return () => sources.delete(source);
}
