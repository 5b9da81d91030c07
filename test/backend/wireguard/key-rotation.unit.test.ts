import { chmod, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BackendContext, BackendRegistration } from "../../../src/backend/backend.js";
import { loadOrCreateKey, type LoadedKey } from "../../../src/backend/wireguard/key-file.js";
import { KeyRotation } from "../../../src/backend/wireguard/key-rotation.js";
import { networkConfigFromJson } from "../../../src/config/network-config.js";
import { generateStaticKeys } from "../../../src/engine/wireguard/noise.js";
import { silentLogger } from "../../../src/observe/logger.js";

/**
 * KeyRotation against a holder that records what happens (the contract both implementations'
 * holders meet): the data path takes the key before the lease is written, the holder hears
 * when the lease carries it, and every change is counted as taken or refused.
 */
describe("KeyRotation", () => {
  let dir: string;
  let path: string;
  let rotation: KeyRotation;
  let events: string[];
  let readvertised: BackendRegistration["attrs"][];
  let written: boolean;
  let metrics: Registry;
  let start: LoadedKey;

  const replace = async (content: string, mode: number) => {
    await writeFile(`${path}.new`, content, { mode });
    await chmod(`${path}.new`, mode);
    await rename(`${path}.new`, path);
  };
  const until = async (what: string, check: () => boolean | Promise<boolean>) => {
    for (let i = 0; i < 300; i++) {
      if (await check()) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error(`timed out waiting for ${what}`);
  };
  const counted = async (result: string): Promise<number> => {
    const text = await metrics.getSingleMetricAsString("weft_wireguard_key_rotations_total");
    return Number(new RegExp(`result="${result}"\\} (\\d+)`).exec(text)?.[1]);
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "weft-keyrot-"));
    path = join(dir, "wgkey");
    start = await loadOrCreateKey(path);
    events = [];
    readvertised = [];
    written = true;
    metrics = new Registry();
    const context: BackendContext = {
      network: networkConfigFromJson({ Network: "10.66.0.0/16", Backend: { Type: "wireguard" } }),
      options: { Type: "wireguard" },
      external: { name: "ul0", index: 0, address: "192.168.77.11", publicIP: "192.168.77.11", mtu: 1500 },
      logger: silentLogger(),
      metrics,
      stateDir: dir,
      readvertise: async (attrs) => {
        events.push("lease");
        readvertised.push(attrs);
        return written;
      },
    };
    rotation = new KeyRotation({ context, attrsFor: (publicKey) => ({ backendType: "wireguard", backendData: { PublicKey: publicKey } }), intervalMs: 20 });
    rotation.follow(start, {
      useKey: async (key) => void events.push(`use ${key.publicKey.toString("base64")}`),
      keyAdvertised: () => void events.push("advertised"),
    });
    await new Promise((resolve) => setTimeout(resolve, 50)); // the first look records the file as it is
  });
  afterEach(async () => {
    rotation.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("gives the holder the new key, then writes the lease with its public key, then says it is advertised", async () => {
    const next = generateStaticKeys();
    const publicKey = next.publicKey.toString("base64");
    await replace(next.privateKey.toString("base64"), 0o400);
    await until("the rotation advertised", () => events.includes("advertised"));
    expect(events).toEqual([`use ${publicKey}`, "lease", "advertised"]);
    expect(readvertised).toEqual([{ backendType: "wireguard", backendData: { PublicKey: publicKey } }]);
    expect(await counted("taken")).toBe(1);
    expect(await counted("refused")).toBe(0);
  });

  it("does not say advertised when the lease could not be written now", async () => {
    written = false;
    await replace(generateStaticKeys().privateKey.toString("base64"), 0o400);
    await until("the lease attempt", () => events.includes("lease"));
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(events.filter((event) => event === "advertised")).toEqual([]);
  });

  it("counts refused files and gives the holder nothing", async () => {
    await replace(generateStaticKeys().privateKey.toString("base64"), 0o644);
    await until("the first refusal", async () => (await counted("refused")) === 1);
    await replace("not-a-key", 0o400);
    await until("the second refusal", async () => (await counted("refused")) === 2);
    expect(await counted("taken")).toBe(0);
    expect(events).toEqual([]);
  });
});
