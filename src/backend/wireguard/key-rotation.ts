import type { BackendContext, BackendRegistration } from "../backend.js";
import type { EngineBackend, EngineBackendSpec } from "../userspace/engine-backend.js";
import type { LoadedKey } from "./key-file.js";
import { DEFAULT_KEY_WATCH_INTERVAL_MS, watchKeyFile, type KeyWatch } from "./key-watch.js";

/**
 * An operator's key rotation without a restart: a new key in the key file (key-watch.ts) goes,
 * in this order, to the running engine (every handshake from then on uses it; its sessions stay
 * until the new handshakes replace them, so nothing is lost before the peers switch), to the
 * spec (an engine re-opened later, e.g. after the device was deleted, starts with it) and then
 * to the lease (through the daemon), whose new PublicKey every peer follows: weft peers
 * handshake with it as soon as they read it, flanneld's kernel peers on their next packet, and
 * we initiate to every peer a second later (sessions.ts). Logged with both public keys.
 */
export interface KeyRotationOptions {
  context: BackendContext;
  /** The registration attrs that advertise `publicKey` (base64). */
  attrsFor(publicKey: string): BackendRegistration["attrs"];
  intervalMs?: number;
}

export class KeyRotation {
  private watch: KeyWatch | undefined;

  constructor(
    private readonly backend: EngineBackend,
    private readonly options: KeyRotationOptions,
  ) {}

  /** From `key` (just loaded for `spec`) on, follows the file; replaces an earlier follow. */
  follow(key: LoadedKey, spec: EngineBackendSpec): void {
    this.stop();
    const { context } = this.options;
    let publicKey = key.publicKey.toString("base64");
    this.watch = watchKeyFile({
      path: key.path,
      current: key.privateKey,
      intervalMs: this.options.intervalMs ?? DEFAULT_KEY_WATCH_INTERVAL_MS,
      logger: context.logger,
      onKey: async (next) => {
        const previousPublicKey = publicKey;
        publicKey = next.publicKey.toString("base64");
        const engine = this.backend.runningEngine;
        if (engine && !engine.closed) engine.setWireguardPrivateKey(next.privateKey);
        if (spec.engine.wireguard) spec.engine.wireguard.privateKey = next.privateKey;
        spec.registration.attrs = this.options.attrsFor(publicKey);
        context.logger.info({ keyFile: next.path, publicKey, previousPublicKey }, "wireguard: the key file holds a new key; using it and re-advertising the lease");
        if (!context.readvertise) {
          context.logger.warn({ keyFile: next.path }, "wireguard: no daemon to re-advertise the lease; peers keep the old PublicKey until it is written");
          return;
        }
        const written = await context.readvertise(spec.registration.attrs);
        if (written) context.logger.info({ publicKey }, "wireguard: lease re-advertised with the new PublicKey");
      },
    });
  }

  stop(): void {
    this.watch?.stop();
    this.watch = undefined;
  }
}
