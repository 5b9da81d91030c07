import type { NativeAddon, NativeHandle, NativeWireguardInterface } from "../native-addon.js";

/**
 * The addon's handshake admission (native/src/wireguard.c, native/README.md "WireGuard"): before a
 * handshake message is queued for JavaScript, the outside thread checks its mac1 against the key
 * given here and, while the queue is loaded, holds its source to a token bucket. Declared beside
 * its one caller (engine.ts) rather than in NativeAddon, which predates it.
 */
export interface NativeAdmission {
  /** HASH("mac1----" || our public key) for the interface; null: no mac1 check in C. */
  wgSetMac1Key(handle: NativeHandle, key: Buffer | null, iface?: NativeWireguardInterface): void;
}

function hasAdmission(addon: NativeAddon): addon is NativeAddon & NativeAdmission {
  return "wgSetMac1Key" in addon && typeof addon.wgSetMac1Key === "function";
}

/** The admission calls of a loaded addon; throws if the build predates them. */
export function nativeAdmission(addon: NativeAddon): NativeAdmission {
  if (!hasAdmission(addon)) {
    throw new Error("the weft engine addon has no wgSetMac1Key (built before handshake admission): rebuild it with `npm run build:native`");
  }
  return addon;
}
