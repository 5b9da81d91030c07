/*
 * Pure parts of the lab, no namespaces are created. The plan under test:
 *
 *                       demo-ul  (ul0, 192.168.77.0/24)
 *        +----------------+----------------+----------------+---------------+
 *   demo-etcd .2      demo-h1 .11      demo-h2 .12      demo-h3 .13     demo-inet .254
 *                     |       |        |       |        |       |
 *                 demo-h1c1 demo-h1c2 demo-h2c1 …
 *
 * plus the name pattern `lab down` uses to find leftovers, and the CLI's raw-argv parsing.
 */
import { describe, expect, it } from "vitest";
import { execCommandLine } from "../../src/commands/lab.js";
import { allNamespaces, labNamespacePattern, planTopology } from "../../src/lab/topology-plan.js";

const base = { labDir: "/tmp/x", backend: "vxlan", internet: true, ipMasq: false, daemons: "weft" as const, underlayMtu: 1500 };

describe("planTopology", () => {
  it("names every namespace <name>-<role> and gives hosts .11, .12 … on the underlay", () => {
    const state = planTopology({ ...base, name: "demo", hosts: 3, containersPerHost: 2 });
    expect(allNamespaces(state)).toEqual([
      "demo-ul", "demo-etcd", "demo-inet", "demo-h1", "demo-h2", "demo-h3",
      "demo-h1c1", "demo-h1c2", "demo-h2c1", "demo-h2c2", "demo-h3c1", "demo-h3c2",
    ]);
    expect(state.hosts.map((host) => host.underlayAddress)).toEqual(["192.168.77.11", "192.168.77.12", "192.168.77.13"]);
    expect(state.etcd.endpoint).toBe("http://192.168.77.2:2379");
    expect(state.internet?.address).toBe("192.168.77.254");
    expect(state.hosts[1]?.subnetFile).toBe("/tmp/x/h2/subnet.env");
    expect(state.containers[3]).toMatchObject({ name: "h2c2", host: "h2", hostVeth: "vc2" });
  });

  it("plans a dual-stack underlay with --ipv6 (fd77::11 beside .11) and none without", () => {
    const dual = planTopology({ ...base, name: "demo", hosts: 3, containersPerHost: 0, ipv6: true });
    expect(dual.underlay.cidrV6).toBe("fd77::/64");
    expect(dual.hosts.map((host) => host.underlayAddressV6)).toEqual(["fd77::11", "fd77::12", "fd77::13"]);
    const single = planTopology({ ...base, name: "demo", hosts: 1, containersPerHost: 0 });
    expect(single.underlay.cidrV6).toBeUndefined();
    expect(single.hosts[0]?.underlayAddressV6).toBeUndefined();
  });

  it.each([
    [{ hosts: 0, containersPerHost: 1 }, /--hosts 0/],
    [{ hosts: 201, containersPerHost: 1 }, /--hosts 201/],
    [{ hosts: 2, containersPerHost: 51 }, /--containers 51/],
    [{ hosts: 1.5, containersPerHost: 1 }, /--hosts 1.5/],
  ])("rejects %o with a message naming the flag", (counts, message) => {
    expect(() => planTopology({ ...base, name: "demo", ...counts })).toThrow(message);
  });

  it("rejects a lab name that cannot prefix a namespace name", () => {
    expect(() => planTopology({ ...base, name: "bad name", hosts: 1, containersPerHost: 1 })).toThrow(/lab name "bad name"/);
  });
});

describe("labNamespacePattern", () => {
  it.each([
    ["weft-ul", true], ["weft-etcd", true], ["weft-inet", true], ["weft-h12", true], ["weft-h3c4", true],
    ["weft-foo-h1", false], ["weft-h1x", false], ["weftx-h1", false], ["other-h1", false], ["weft-", false],
  ])("%s matches lab weft: %s", (namespace, expected) => {
    expect(labNamespacePattern("weft").test(namespace)).toBe(expected);
  });

  it("escapes regex characters in the name", () => {
    expect(labNamespacePattern("a.b").test("axb-h1")).toBe(false);
    expect(labNamespacePattern("a.b").test("a.b-h1")).toBe(true);
  });
});

describe("lab CLI argv", () => {
  it.each([
    [["lab", "exec", "h1", "--", "ip", "-4", "route"], ["ip", "-4", "route"]],
    [["lab", "exec", "h1c1", "ping", "-c", "010", "x"], ["ping", "-c", "010", "x"]],
    [["lab", "exec", "--name", "demo", "h1", "ip", "r"], ["ip", "r"]],
    [["lab", "exec", "--name=demo", "--lab-dir", "/d", "h1", "ip"], ["ip"]],
    [["lab", "exec", "h1"], []],
  ])("exec %j runs %j", (argv, command) => {
    expect(execCommandLine(argv)).toEqual(command);
  });

});
