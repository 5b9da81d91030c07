import { chmod, mkdtemp, rename, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { watchKeyFile, type KeyWatch } from "../../../src/backend/wireguard/key-watch.js";
import type { LoadedKey } from "../../../src/backend/wireguard/key-file.js";
import { generateStaticKeys } from "../../../src/engine/wireguard/noise.js";

/** The key file watch (an operator's rotation): new keys taken, bad files refused by name, the content never said. */
describe("watchKeyFile", () => {
  let dir: string;
  let path: string;
  let watch: KeyWatch | undefined;
  const keys: LoadedKey[] = [];
  const warnings: string[] = [];
  const logger = { info: () => undefined, warn: (object: object, message: string) => void warnings.push(`${JSON.stringify(object)} ${message}`) };
  const start = generateStaticKeys();

  const replace = async (content: string, mode: number) => {
    await writeFile(`${path}.new`, content, { mode });
    await chmod(`${path}.new`, mode);
    await rename(`${path}.new`, path);
  };
  const until = async (what: string, check: () => boolean) => {
    for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
    if (!check()) throw new Error(`timed out waiting for ${what}`);
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "weft-keywatch-"));
    path = join(dir, "wgkey");
    await writeFile(path, start.privateKey.toString("base64"), { mode: 0o400 });
    keys.length = 0;
    warnings.length = 0;
    watch = watchKeyFile({ path, current: start.privateKey, intervalMs: 20, logger, onKey: async (key) => void keys.push(key) });
    await new Promise((resolve) => setTimeout(resolve, 50)); // the first look records the file as it is
  });
  afterEach(async () => {
    watch?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("hands over a new key written beside the file and renamed over it", async () => {
    const next = generateStaticKeys();
    await replace(`${next.privateKey.toString("base64")}\n`, 0o400);
    await until("the new key", () => keys.length === 1);
    expect(keys[0]!.publicKey.equals(next.publicKey)).toBe(true);
    expect(keys[0]!.path).toBe(path);
    expect(warnings).toEqual([]);
  });

  it("ignores a touch that leaves the same key", async () => {
    const later = new Date(Date.now() + 5000);
    await utimes(path, later, later);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(keys).toEqual([]);
    expect(warnings).toEqual([]);
  });

  it("refuses a file others can read and one that is not a key, naming the file, never the content; then takes a good one", async () => {
    const exposed = generateStaticKeys().privateKey.toString("base64");
    await replace(exposed, 0o644);
    await until("the mode warning", () => warnings.length === 1);
    expect(warnings[0]).toContain(path);
    expect(warnings[0]).toContain("mode 0644");
    expect(warnings[0]).toContain("keeping the key in use");
    const garbage = "not-a-key-but-a-secret-nonetheless";
    await replace(garbage, 0o400);
    await until("the content warning", () => warnings.length === 2);
    expect(warnings[1]).toContain("not a WireGuard key");
    for (const warning of warnings) {
      expect(warning).not.toContain(exposed);
      expect(warning).not.toContain(garbage);
    }
    expect(keys).toEqual([]);
    const next = generateStaticKeys();
    await replace(next.privateKey.toString("base64"), 0o400);
    await until("the good key", () => keys.length === 1);
    expect(keys[0]!.publicKey.equals(next.publicKey)).toBe(true);
  });

  it("keeps the key in use when the file goes away, and says so once", async () => {
    await rm(path);
    await until("the warning", () => warnings.length === 1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("is gone; keeping the key in use");
    expect(keys).toEqual([]);
  });
});
