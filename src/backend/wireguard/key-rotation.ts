import type { BackendContext, BackendRegistration } from "../backend.js";
import type { EngineBackend, EngineBackendSpec } from "../userspace/engine-backend.js";
import type { LoadedKey } from "./key-file.js";
import { DEFAULT_KEY_WATCH_INTERVAL_MS, watchKeyFile, type KeyWatch } from "./key-watch.js";
import { keyRotationCounter } from "./wireguard-metrics.js";

/**
 * An operator's key rotation without a restart: a new key in the key file (key-watch.ts) goes,
 * in this order, to the data path (`KeyHolder.useKey`: every handshake from then on uses it)
 * and then to the lease (through the daemon), whose new PublicKey every peer follows. Logged
 * with both public keys, counted in weft_wireguard_key_rotations_total. Data path first, so a
 * peer that reads the new key and initiates to it finds it already in use.
 *   - userspace (engineKeyHolder): the running engine and the spec (an engine re-opened later
 *     starts with it); the engine's sessions stay until new handshakes replace them, and it
 *     initiates to every peer a second later (sessions.ts);
 *   - kernel, wireguard-go (device-backend.ts useKey): every device's private key, and the
 *     key reconcile holds the devices to; the devices drop their sessions for sending at once,
 *     weft peers initiate to the new key when they read it (device-plan.ts `initiate`), and a
 *     second after the lease was written the device initiates to the peers that did not.
 */
export interface KeyHolder {
  /** Puts `key` in use; resolves once it is (or what could not take it now is left to a repair). */
  useKey(key: LoadedKey): Promise<void>;
  /** The lease carries the new key now. */
  keyAdvertised?(): void;
}

export interface KeyRotationOptions {
  context: BackendContext;
  /** The registration attrs that advertise `publicKey` (base64). */
  attrsFor(publicKey: string): BackendRegistration["attrs"];
  intervalMs?: number;
}

export class KeyRotation {
  private watch: KeyWatch | undefined;

  constructor(private readonly options: KeyRotationOptions) {}

  /** From `key` (in use now) on, follows the file into `holder`; replaces an earlier follow. */
  follow(key: LoadedKey, holder: KeyHolder): void {
    this.stop();
    const { context } = this.options;
    const rotations = keyRotationCounter(context.metrics);
    let publicKey = key.publicKey.toString("base64");
    this.watch = watchKeyFile({
      path: key.path,
      current: key.privateKey,
      intervalMs: this.options.intervalMs ?? DEFAULT_KEY_WATCH_INTERVAL_MS,
      logger: context.logger,
      onRefused: () => rotations.inc({ result: "refused" }),
      onKey: async (next) => {
        const previousPublicKey = publicKey;
        publicKey = next.publicKey.toString("base64");
        await holder.useKey(next);
        rotations.inc({ result: "taken" });
        context.logger.info({ keyFile: next.path, publicKey, previousPublicKey }, "wireguard: the key file holds a new key; using it and re-advertising the lease");
        if (!context.readvertise) {
          context.logger.warn({ keyFile: next.path }, "wireguard: no daemon to re-advertise the lease; peers keep the old PublicKey until it is written");
          return;
        }
        const written = await context.readvertise(this.options.attrsFor(publicKey));
        if (!written) return;
        context.logger.info({ publicKey }, "wireguard: lease re-advertised with the new PublicKey");
        holder.keyAdvertised?.();
      },
    });
  }

  stop(): void {
    this.watch?.stop();
    this.watch = undefined;
  }
}

/** The userspace implementation's holder: the running engine, and the spec a re-opened engine starts with. */
export function engineKeyHolder(backend: EngineBackend, spec: EngineBackendSpec, attrsFor: KeyRotationOptions["attrsFor"]): KeyHolder {
  return {
    useKey: async (next) => {
      const engine = backend.runningEngine;
      if (engine && !engine.closed) engine.setWireguardPrivateKey(next.privateKey);
      if (spec.engine.wireguard) spec.engine.wireguard.privateKey = next.privateKey;
      spec.registration.attrs = attrsFor(next.publicKey.toString("base64"));
    },
  };
}
