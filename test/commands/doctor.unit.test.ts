import yargs, { type Argv } from "yargs";
import { describe, expect, it } from "vitest";
import { doctorCommand, doctorResultJson, findOwnLease, formatDoctorResult, type DoctorArgs, type DoctorResult } from "../../src/commands/doctor.js";
import { interfaceSelectionFromArgs } from "../../src/commands/interface-flags.js";
import { defineRunOptions } from "../../src/commands/run.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { lease } from "../backend/kernel-fixtures.js";

const mine = lease("10.66.1.0/24", { publicIP: "192.168.1.1", backendType: "vxlan" });
const other = lease("10.66.2.0/24", { publicIP: "192.168.1.2", backendType: "vxlan" });
const staleMine = lease("10.66.3.0/24", { publicIP: "192.168.1.1", backendType: "vxlan" });

describe("doctor: this host's lease", () => {
  it("takes the subnet file's lease when it advertises our PublicIP", () => {
    expect(findOwnLease([other, staleMine, mine], Ipv4Subnet.parse("10.66.1.0/24"), "192.168.1.1", "subnet.env")).toBe(mine);
  });

  it("falls back to PublicIP when the subnet file names another host's lease", () => {
    expect(findOwnLease([other, mine], Ipv4Subnet.parse("10.66.2.0/24"), "192.168.1.1", "subnet.env")).toBe(mine);
  });

  it.each<[string, string | undefined, RegExp]>([
    ["no lease has our PublicIP", "10.66.2.0/24", /names 10\.66\.2\.0\/24, whose lease advertises PublicIP 192\.168\.1\.2, not 192\.168\.1\.9, and no lease advertises PublicIP 192\.168\.1\.9/],
    ["no subnet file", undefined, /the subnet file subnet\.env names no subnet, and no lease advertises PublicIP 192\.168\.1\.9/],
  ])("fails naming what it found when %s", (_what, fromFile, message) => {
    expect(() => findOwnLease([other, mine], fromFile === undefined ? undefined : Ipv4Subnet.parse(fromFile), "192.168.1.9", "subnet.env")).toThrow(message);
  });

  it("refuses to guess between several leases with our PublicIP", () => {
    expect(() => findOwnLease([mine, staleMine], Ipv4Subnet.parse("10.66.9.0/24"), "192.168.1.1", "subnet.env")).toThrow(
      /2 leases advertise PublicIP 192\.168\.1\.1 \(10\.66\.1\.0\/24, 10\.66\.3\.0\/24\); pass the daemon's --subnet-file/,
    );
  });
});

describe("doctor and run read the interface flags alike", () => {
  const parseDoctor = (argv: string[]) => (doctorCommand.builder as (y: Argv) => Argv<DoctorArgs>)(yargs(argv)).parseSync();
  const parseRun = (argv: string[]) => defineRunOptions(yargs(argv)).parseSync();

  it.each<[string[], object]>([
    [
      ["--iface=eth1", "--iface", "eth2,10.0.0.5", "--iface-regex=^10\\.", "--iface-regex=^eth"],
      { ifaces: ["eth1", "eth2", "10.0.0.5"], ifaceRegexes: ["^10\\.", "^eth"] },
    ],
    [
      ["--public-ip=10.0.0.1", "--public-ip=10.0.0.2", "--iface-can-reach=10.0.0.7", "--iface-can-reach=10.0.0.8"],
      { ifaces: [], ifaceRegexes: [], publicIP: "10.0.0.2", ifaceCanReach: "10.0.0.8" },
    ],
  ])("%j", (argv, expected) => {
    const fromDoctor = interfaceSelectionFromArgs(parseDoctor(argv));
    expect(fromDoctor).toMatchObject(expected);
    expect(fromDoctor).toEqual(interfaceSelectionFromArgs(parseRun(argv)));
  });

  it("splits FLANNELD_IFACE on commas and takes the last --subnet-file/--state-dir", () => {
    const saved = process.env.FLANNELD_IFACE;
    process.env.FLANNELD_IFACE = "eth1,10.0.0.5";
    try {
      const args = parseDoctor(["--subnet-file=/a", "--subnet-file=/b", "--state-dir=/x", "--state-dir=/y"]);
      expect(interfaceSelectionFromArgs(args).ifaces).toEqual(["eth1", "10.0.0.5"]);
      expect([args["subnet-file"], args["state-dir"]]).toEqual(["/b", "/y"]);
    } finally {
      if (saved === undefined) delete process.env.FLANNELD_IFACE;
      else process.env.FLANNELD_IFACE = saved;
    }
  });

  it("rejects a bad --public-ip naming the flag", () => {
    expect(() => interfaceSelectionFromArgs(parseDoctor(["--public-ip=10.0.0.256"]))).toThrow(/--public-ip: "10\.0\.0\.256" is not an IPv4 address/);
  });

  it("takes --public-ipv6 as the daemon does, and rejects a bad one naming the flag", () => {
    expect(interfaceSelectionFromArgs(parseDoctor(["--public-ipv6=fd00:77::2"])).publicIPv6).toBe("fd00:77::2");
    expect(() => interfaceSelectionFromArgs(parseDoctor(["--public-ipv6=fd00::g"]))).toThrow(/--public-ipv6: "fd00::g" is not an IPv6 address/);
  });
});

describe("doctor output", () => {
  const drift: DoctorResult = {
    backend: "vxlan",
    device: "eth0",
    ownSubnet: "10.66.1.0/24",
    ownIpv6Subnet: null,
    peers: 2,
    report: {
      desired: [
        { kind: "route", destination: Ipv4Subnet.parse("10.66.2.0/24"), gateway: "10.66.2.0", device: "flannel.1", onlink: true },
        { kind: "neigh", address: "10.66.2.0", mac: "02:22:22:22:22:22", device: "flannel.1" },
      ],
      actual: [{ kind: "neigh", address: "10.66.2.0", mac: "02:22:22:22:22:22", device: "flannel.1" }],
      changes: [
        { action: "add-address", device: "flannel.1", address: "10.66.1.0/32" },
        { action: "add", object: { kind: "route", destination: Ipv4Subnet.parse("10.66.2.0/24"), gateway: "10.66.2.0", device: "flannel.1", onlink: true } },
      ],
    },
    refused: ["10.66.3.0/24: lease /coreos.com/network/subnets/10.66.3.0-24 is of backend type \"udp\", not \"vxlan\": every host of a network must use the same backend"],
    repaired: false,
  };

  it("prints desired, actual and changes as sorted lines, then the verdict", () => {
    expect(formatDoctorResult(drift)).toBe(
      [
        "backend vxlan, underlay eth0, own subnet 10.66.1.0/24, 2 peer lease(s)",
        "desired (2):",
        "  neigh 10.66.2.0 lladdr 02:22:22:22:22:22 dev flannel.1 permanent",
        "  route 10.66.2.0/24 via 10.66.2.0 dev flannel.1 onlink",
        "actual (1):",
        "  neigh 10.66.2.0 lladdr 02:22:22:22:22:22 dev flannel.1 permanent",
        "changes needed (2):",
        "  add address 10.66.1.0/32 to flannel.1",
        "  add route 10.66.2.0/24 via 10.66.2.0 dev flannel.1 onlink",
        "peers that cannot be served (1):",
        `  ${drift.refused[0]}`,
        "out of sync: 2 change(s) needed; run `weft doctor --repair` (the daemon also repairs on its next reconcile)",
        "",
      ].join("\n"),
    );
    expect(formatDoctorResult({ ...drift, report: { desired: [], actual: [], changes: [] }, refused: [] })).toBe(
      [
        "backend vxlan, underlay eth0, own subnet 10.66.1.0/24, 2 peer lease(s)",
        "desired (0):",
        "  (none)",
        "actual (0):",
        "  (none)",
        "changes needed (0):",
        "  (none)",
        "in sync: the kernel matches the leases",
        "",
      ].join("\n"),
    );
    // A dual-stack host names both of its subnets.
    expect(formatDoctorResult({ ...drift, ownIpv6Subnet: "fd66:0:0:1::/64" }).split("\n")[0]).toBe(
      "backend vxlan, underlay eth0, own subnet 10.66.1.0/24 and fd66:0:0:1::/64, 2 peer lease(s)",
    );
  });

  it("--json keeps the report as the same lines, in the reconcile's order", () => {
    expect(JSON.parse(JSON.stringify(doctorResultJson(drift)))).toEqual({
      backend: "vxlan",
      device: "eth0",
      ownSubnet: "10.66.1.0/24",
      ownIpv6Subnet: null,
      peers: 2,
      report: {
        desired: ["route 10.66.2.0/24 via 10.66.2.0 dev flannel.1 onlink", "neigh 10.66.2.0 lladdr 02:22:22:22:22:22 dev flannel.1 permanent"],
        actual: ["neigh 10.66.2.0 lladdr 02:22:22:22:22:22 dev flannel.1 permanent"],
        changes: ["add address 10.66.1.0/32 to flannel.1", "add route 10.66.2.0/24 via 10.66.2.0 dev flannel.1 onlink"],
      },
      refused: drift.refused,
      repaired: false,
    });
    expect(Object.keys(doctorResultJson(drift))).toEqual(["backend", "device", "ownSubnet", "ownIpv6Subnet", "peers", "report", "refused", "repaired"]);
  });
});
