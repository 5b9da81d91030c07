import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseSnapshot, readSnapshot, writeSnapshot, type DataPathSnapshot } from "../../src/backend/userspace/datapath-snapshot.js";
import { allStoredFdNames, stateDirOfRun, storedFdEntries } from "../../src/backend/userspace/early-resume.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { Ipv6Subnet } from "../../src/net/ipv6.js";

describe("stateDirOfRun: the --state-dir a `weft run` will use, read before yargs", () => {
  const env = {};
  it("is the default for a plain run, the last flag in any of yargs' and Go's spellings, or FLANNELD_STATE_DIR", () => {
    expect(stateDirOfRun(["run"], env)).toBe("/var/lib/weft");
    expect(stateDirOfRun(["run", "--state-dir", "/a"], env)).toBe("/a");
    expect(stateDirOfRun(["run", "--state-dir=/a", "--state-dir=/b"], env)).toBe("/b");
    expect(stateDirOfRun(["--log-level=debug", "run", "-state-dir=/c"], env)).toBe("/c");
    expect(stateDirOfRun(["run"], { FLANNELD_STATE_DIR: "/d" })).toBe("/d");
    expect(stateDirOfRun(["run", "--state-dir=/e"], { FLANNELD_STATE_DIR: "/d" })).toBe("/e");
  });
  it("is undefined for other commands, help and version", () => {
    expect(stateDirOfRun(["leases"], env)).toBeUndefined();
    expect(stateDirOfRun([], env)).toBeUndefined();
    expect(stateDirOfRun(["run", "--help"], env)).toBeUndefined();
    expect(stateDirOfRun(["run", "-h"], env)).toBeUndefined();
    expect(stateDirOfRun(["run", "--version"], env)).toBeUndefined();
  });
});

describe("the fd store names of a data path", () => {
  it("name every fd by kind and queue, within the names a store is cleared of", () => {
    const entries = storedFdEntries({ tun: [10, 11], udp: [12, 13], udp6: [14, 15] });
    expect(entries).toEqual([
      { name: "weft-tun-0", fd: 10 }, { name: "weft-tun-1", fd: 11 },
      { name: "weft-udp-0", fd: 12 }, { name: "weft-udp-1", fd: 13 },
      { name: "weft-udp6-0", fd: 14 }, { name: "weft-udp6-1", fd: 15 },
    ]);
    const all = allStoredFdNames();
    for (const { name } of entries) expect(all).toContain(name);
    expect(storedFdEntries({ tun: [3], udp: [4], udp6: [] }).map((entry) => entry.name)).toEqual(["weft-tun-0", "weft-udp-0"]);
  });
});

describe("the data path snapshot (--state-dir/datapath.json)", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "weft-snapshot-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const snapshot: DataPathSnapshot = {
    backend: "vxlan",
    device: "weft.1",
    engine: { mode: "vxlan", tunName: "weft.1", mtu: 1450, bindAddress: "192.168.77.12", vni: 1, vtepMac: "02:00:00:00:00:01", queues: 2, persist: true, bindAddressV6: "fd77::12" },
    peers: [
      { subnet: Ipv4Subnet.parse("10.66.1.0/24"), publicIP: "192.168.77.11", vtepMac: "02:00:00:00:00:02" },
      { subnet: Ipv4Subnet.parse("10.66.2.0/24"), publicIP: "192.168.77.13", vtepMac: "02:00:00:00:00:03", ipv6: { subnet: Ipv6Subnet.parse("fd66:0:0:2::/64"), publicIPv6: "fd77::13", vtepMac: "02:00:00:00:00:03" } },
    ],
  };

  it("round-trips every field, and is absent (not an error) when never written", async () => {
    expect(await readSnapshot(dir)).toBeUndefined();
    await writeSnapshot(dir, snapshot);
    const back = await readSnapshot(dir);
    expect(back?.engine).toEqual(snapshot.engine);
    expect(back?.device).toBe("weft.1");
    expect(back?.txQueueLength).toBeUndefined();
    expect(back?.peers.map((peer) => [peer.subnet.toString(), peer.publicIP, peer.vtepMac, peer.ipv6?.subnet.toString(), peer.ipv6?.publicIPv6])).toEqual([
      ["10.66.1.0/24", "192.168.77.11", "02:00:00:00:00:02", undefined, undefined],
      ["10.66.2.0/24", "192.168.77.13", "02:00:00:00:00:03", "fd66:0:0:2::/64", "fd77::13"],
    ]);
  });

  it("carries the queue length a hand-over must put back", async () => {
    await writeSnapshot(dir, { ...snapshot, txQueueLength: 500 });
    expect((await readSnapshot(dir))?.txQueueLength).toBe(500);
  });

  it("refuses a damaged file with an error naming the file and the field", async () => {
    const path = join(dir, "datapath.json");
    const valid = { version: 1, backend: "udp", device: "flannel0", engine: { mode: "udp", tunName: "flannel%d", mtu: 1472, bindAddress: "10.0.0.1" }, peers: [] };
    const cases: [unknown, RegExp][] = [
      ["{", /not JSON/],
      [[], /not a JSON object/],
      [{ ...valid, version: 2 }, /version 2, this weft reads 1/],
      [{ ...valid, device: "a/b" }, /"device" is not a device name/],
      [{ ...valid, engine: { ...valid.engine, mode: "wireguard" } }, /engine\.mode "wireguard"/],
      [{ ...valid, engine: { ...valid.engine, mtu: "1472" } }, /engine\.mtu is not a number/],
      [{ ...valid, txQueueLength: 0 }, /txQueueLength is not a positive integer/],
      [{ ...valid, txQueueLength: "500" }, /txQueueLength is not a positive integer/],
      [{ ...valid, peers: [{ subnet: "10.66.1.0", publicIP: "10.0.0.2" }] }, /peers\[0\]\.subnet "10\.66\.1\.0" is not an IPv4 CIDR/],
      [{ ...valid, peers: [{ subnet: "10.66.1.0/24", publicIP: "10.0.0.2", ipv6: { subnet: "fd66::", publicIPv6: "fd77::2", vtepMac: "x" } }] }, /peers\[0\]\.ipv6\.subnet "fd66::" is not an IPv6 CIDR/],
    ];
    for (const [value, message] of cases) {
      const text = typeof value === "string" ? value : JSON.stringify(value);
      expect(() => parseSnapshot(text, path)).toThrow(message);
      await writeFile(path, text);
      await expect(readSnapshot(dir)).rejects.toThrow(path);
    }
  });
});
