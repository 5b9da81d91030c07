import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../../host/atomic-file.js";
import { normalizeMac } from "../../net/mac.js";
import { errorMessage } from "../../errors/error-message.js";

/**
 * The VTEP MAC must survive restarts and device re-creation: peers learn it only through our
 * lease, so a new MAC blackholes traffic until every peer re-reads the lease (flannel-compat §12 #8).
 */

/** A random locally administered unicast MAC, as flannel makes them. */
export function randomVtepMac(): string {
  const bytes = randomBytes(6);
  bytes[0] = ((bytes[0] ?? 0) & 0xfe) | 0x02;
  return [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join(":");
}

function macFile(stateDir: string, deviceName: string): string {
  return join(stateDir, `${deviceName}.vtep-mac`);
}

export async function readPersistedMac(stateDir: string, deviceName: string): Promise<string | undefined> {
  const path = macFile(stateDir, deviceName);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`cannot read the saved VTEP MAC ${path}: ${errorMessage(error)}`);
  }
  return normalizeMac(text, `${path} (delete it to get a new MAC)`);
}

/** Atomic and fsynced: a crash right after creating the device must not lose the MAC it got. */
export async function persistMac(stateDir: string, deviceName: string, mac: string): Promise<void> {
  await writeFileAtomic(macFile(stateDir, deviceName), `${mac}\n`, "VTEP MAC file (--state-dir)");
}

/** A new random MAC, saved in place of the old one (a peer advertised ours: a cloned state dir). */
export async function renewPersistedMac(stateDir: string, deviceName: string): Promise<string> {
  const mac = randomVtepMac();
  await persistMac(stateDir, deviceName, mac);
  return mac;
}
