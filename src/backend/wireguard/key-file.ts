import type { Stats } from "node:fs";
import { mkdir, open, readFile, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { generateStaticKeys, publicKeyOf } from "../../engine/wireguard/noise.js";
import { parseWireguardKey } from "./options.js";

/**
 * The private key file flanneld's wireguard backend uses, so a host can switch between flanneld
 * and weft and keep its key (and its peers' view of it): `$WIREGUARD_KEY_FILE`, default
 * /run/flannel/wgkey, the key in base64 as `wg genkey` prints it. Created (directory 0755, file
 * 0400, like flanneld) when missing. An existing file must belong to us (or root) and be
 * unreadable by group and others. Errors name the file, never its content.
 */
export const DEFAULT_KEY_FILE = "/run/flannel/wgkey";

export function keyFilePath(env: NodeJS.ProcessEnv = process.env): string {
  const given = env.WIREGUARD_KEY_FILE;
  return given !== undefined && given !== "" ? given : DEFAULT_KEY_FILE;
}

export interface LoadedKey {
  privateKey: Buffer;
  publicKey: Buffer;
  path: string;
  created: boolean;
}

export async function loadOrCreateKey(path: string): Promise<LoadedKey> {
  let info;
  try {
    info = await stat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw new Error(`WIREGUARD_KEY_FILE ${path}: ${(error as Error).message}`);
    return createKey(path);
  }
  return readCheckedKey(path, info);
}

/**
 * The key in an existing file, after the mode and owner checks (a rotated file is read with
 * this). Throws naming the file and what is wrong with it, never its content.
 */
export async function readKeyFile(path: string): Promise<LoadedKey> {
  let info;
  try {
    info = await stat(path);
  } catch (error) {
    throw new Error(`WIREGUARD_KEY_FILE ${path}: ${(error as Error).message}`, { cause: error });
  }
  return readCheckedKey(path, info);
}

async function readCheckedKey(path: string, info: Stats): Promise<LoadedKey> {
  if (!info.isFile()) throw new Error(`WIREGUARD_KEY_FILE ${path}: not a regular file`);
  const uid = process.getuid?.() ?? 0;
  if (info.uid !== uid && info.uid !== 0) {
    throw new Error(`WIREGUARD_KEY_FILE ${path}: owned by uid ${info.uid}, not by us (uid ${uid}) or root; chown it`);
  }
  if ((info.mode & 0o077) !== 0) {
    throw new Error(
      `WIREGUARD_KEY_FILE ${path}: mode ${(info.mode & 0o777).toString(8).padStart(4, "0")} lets group or others read the private key; chmod 0400 it`,
    );
  }
  const privateKey = parseWireguardKey(await readFile(path, "utf8"), `WIREGUARD_KEY_FILE ${path}`);
  return { privateKey, publicKey: publicKeyOf(privateKey), path, created: false };
}

async function createKey(path: string): Promise<LoadedKey> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  const keys = generateStaticKeys();
  // O_EXCL: never overwrite a key another process wrote meanwhile.
  const file = await open(path, "wx", 0o400);
  try {
    await file.writeFile(keys.privateKey.toString("base64"));
  } finally {
    await file.close();
  }
  return { ...keys, path, created: true };
}
