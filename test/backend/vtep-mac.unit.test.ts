import { mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { persistMac, randomVtepMac, readPersistedMac, renewPersistedMac } from "../../src/backend/vxlan/vtep-mac.js";

describe("saved VTEP MAC", () => {
  const dirs: string[] = [];
  const stateDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), "weft-vtep-mac-"));
    dirs.push(dir);
    return dir;
  };
  afterAll(async () => {
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it("round-trips, creating the state dir, world-readable whatever the umask", async () => {
    const dir = join(await stateDir(), "nested", "state");
    const mac = randomVtepMac();
    const umask = process.umask(0o077);
    try {
      await persistMac(dir, "flannel.1", mac);
    } finally {
      process.umask(umask);
    }
    expect(await readPersistedMac(dir, "flannel.1")).toBe(mac);
    expect((await stat(join(dir, "flannel.1.vtep-mac"))).mode & 0o777).toBe(0o644);
  });

  it("a renewal replaces a cloned MAC by a new locally administered unicast one, saved", async () => {
    const dir = await stateDir();
    const cloned = randomVtepMac();
    await persistMac(dir, "flannel.1", cloned);
    const renewed = await renewPersistedMac(dir, "flannel.1");
    expect(renewed).not.toBe(cloned);
    expect(Number.parseInt(renewed.slice(0, 2), 16) & 0x03).toBe(0x02);
    expect(await readPersistedMac(dir, "flannel.1")).toBe(renewed);
  });

  it("concurrent saves never fail on a shared temp file and leave no temp files behind", async () => {
    const dir = await stateDir();
    const macs = Array.from({ length: 8 }, () => randomVtepMac());
    await Promise.all(macs.map((mac) => persistMac(dir, "flannel.1", mac)));
    expect(macs).toContain(await readPersistedMac(dir, "flannel.1"));
    expect(await readdir(dir)).toEqual(["flannel.1.vtep-mac"]);
  });

  it("names the file and --state-dir when it cannot write", async () => {
    const notADir = join(await stateDir(), "a-file");
    await writeFile(notADir, "");
    await expect(persistMac(notADir, "flannel.1", randomVtepMac())).rejects.toThrow(/VTEP MAC file \(--state-dir\) .*a-file\/flannel\.1\.vtep-mac/);
  });
});
