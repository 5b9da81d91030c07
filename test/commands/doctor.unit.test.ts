import yargs, { type Argv } from "yargs";
import { describe, expect, it } from "vitest";
import { doctorCommand, findOwnLease, type DoctorArgs } from "../../src/commands/doctor.js";
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
});
