import { mkdtemp, chmod, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { formatWireguardBackendData, parseWireguardBackendData } from "../../../src/backend/wireguard/backend-data.js";
import { DEFAULT_KEY_FILE, keyFilePath, loadOrCreateKey } from "../../../src/backend/wireguard/key-file.js";
import { parseWireguardOptions } from "../../../src/backend/wireguard/options.js";
import { publicKeyOf } from "../../../src/engine/wireguard/noise.js";

const KEY = "YBbW5xJ8mJzJ3n3Z8n2vU3GQm3Yw0S2mHcPqv8r1v3E=";

describe("wireguard Backend options", () => {
  it("has flannel's defaults", () => {
    const options = parseWireguardOptions({ Type: "wireguard" });
    expect(options).toMatchObject({
      listenPort: 51820, listenPortV6: 51821, mtu: undefined, presharedKey: undefined, mode: "separate",
      persistentKeepaliveSeconds: 0, tunName: "flannel-wg", implementation: "auto",
    });
  });

  it("reads every flannel option", () => {
    const options = parseWireguardOptions({
      Type: "wireguard", ListenPort: 51000, ListenPortV6: 51001, MTU: 9000, PSK: KEY, Mode: "ipv4", PersistentKeepaliveInterval: 25,
    });
    expect(options.listenPort).toBe(51000);
    expect(options.mtu).toBe(9000);
    expect(options.presharedKey?.toString("base64")).toBe(KEY);
    expect(options.mode).toBe("ipv4");
    expect(options.persistentKeepaliveSeconds).toBe(25);
  });

  it("names the field of a bad value, and never echoes a PSK", () => {
    expect(() => parseWireguardOptions({ ListenPort: 0 })).toThrow(/Backend\.ListenPort: 0 is outside 1\.\.65535/);
    expect(() => parseWireguardOptions({ Mode: "both" })).toThrow(/Backend\.Mode: "both" is not one of/);
    expect(parseWireguardOptions({ Mode: "ipv6" }).mode).toBe("ipv6"); // the device path carries it (the userspace engine refuses it at start)
    expect(() => parseWireguardOptions({ PersistentKeepaliveInterval: -1 })).toThrow(/Backend\.PersistentKeepaliveInterval/);
    expect(() => parseWireguardOptions({ MTU: 100 })).toThrow(/Backend\.MTU/);
    expect(() => parseWireguardOptions({ Implementation: "magic" })).toThrow(/Backend\.Implementation/);
    const secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlYw==";
    expect(() => parseWireguardOptions({ PSK: secret })).toThrow(/Backend\.PSK: not a WireGuard key/);
    try {
      parseWireguardOptions({ PSK: secret });
    } catch (error) {
      expect(String(error)).not.toContain(secret);
    }
  });
});

describe("wireguard BackendData", () => {
  it("is flanneld's {\"PublicKey\",\"Port\"} byte for byte", () => {
    expect(JSON.stringify(formatWireguardBackendData({ publicKey: KEY, port: 51820 }))).toBe(`{"PublicKey":"${KEY}","Port":51820}`);
  });

  it("parses flanneld's, also without a Port (older flanneld)", () => {
    expect(parseWireguardBackendData({ PublicKey: KEY, Port: 51820 }, "lease")).toEqual({ publicKey: KEY, port: 51820 });
    expect(parseWireguardBackendData({ PublicKey: KEY }, "lease")).toEqual({ publicKey: KEY, port: undefined });
    expect(parseWireguardBackendData({ PublicKey: KEY, Port: 0 }, "lease")).toEqual({ publicKey: KEY, port: undefined });
  });

  it("refuses a missing or malformed key, naming the lease", () => {
    expect(() => parseWireguardBackendData({ Port: 1 }, "/coreos.com/network/subnets/10.1.2.0-24")).toThrow(/10\.1\.2\.0-24: BackendData\.PublicKey/);
    expect(() => parseWireguardBackendData({ PublicKey: "abc" }, "L")).toThrow(/L: BackendData\.PublicKey: not a WireGuard key/);
    expect(() => parseWireguardBackendData({ PublicKey: KEY, Port: "x" }, "L")).toThrow(/BackendData\.Port/);
  });
});

describe("WIREGUARD_KEY_FILE", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "weft-wgkey-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("defaults to flanneld's /run/flannel/wgkey", () => {
    expect(keyFilePath({})).toBe(DEFAULT_KEY_FILE);
    expect(DEFAULT_KEY_FILE).toBe("/run/flannel/wgkey");
    expect(keyFilePath({ WIREGUARD_KEY_FILE: "/x/k" })).toBe("/x/k");
  });

  it("creates a missing key 0400 in base64 as flanneld does, and reads it back", async () => {
    const path = join(dir, "sub", "wgkey");
    const created = await loadOrCreateKey(path);
    expect(created.created).toBe(true);
    expect((await stat(path)).mode & 0o777).toBe(0o400);
    const text = await readFile(path, "utf8");
    expect(Buffer.from(text, "base64").equals(created.privateKey)).toBe(true);
    const again = await loadOrCreateKey(path);
    expect(again.created).toBe(false);
    expect(again.publicKey.equals(publicKeyOf(created.privateKey))).toBe(true);
  });

  it("reads a key written by `wg genkey` (with its newline)", async () => {
    const path = join(dir, "wgkey");
    await writeFile(path, `${KEY}\n`, { mode: 0o600 });
    expect((await loadOrCreateKey(path)).privateKey.toString("base64")).toBe(KEY);
  });

  it("refuses a key others can read, and a file that is no key, without showing it", async () => {
    const path = join(dir, "wgkey");
    await writeFile(path, KEY, { mode: 0o644 });
    await chmod(path, 0o644);
    await expect(loadOrCreateKey(path)).rejects.toThrow(/mode 0644 lets group or others read the private key; chmod 0400/);
    await chmod(path, 0o400);
    await rm(path, { force: true });
    await writeFile(path, "not-a-key", { mode: 0o400 });
    await expect(loadOrCreateKey(path)).rejects.toThrow(/wgkey: not a WireGuard key/);
    await expect(loadOrCreateKey(path)).rejects.not.toThrow(/not-a-key/);
  });
});
