/*
 * `lab up --ipv6-only` without daemons: the IPv6-only overlay plumbing.
 *
 *                     <p>-ul  bridge ul0, 192.168.77.0/24 and fd77::/64 (the underlay stays dual-stack)
 *        +-----------------------+-----------------------+
 *   <p>-etcd .2            <p>-h1 .11 fd77::11       <p>-h2 .12 fd77::12
 *                          docker0 fd66:0:0:1::1/64  docker0 fd66:0:0:2::1/64   (no IPv4)
 *                            |                         |
 *                       <p>-h1c1 fd66:0:0:1::2    <p>-h2c1 fd66:0:0:2::2
 *
 * The static subnet.env holds the IPv6 pair alone, as an IPv6-only lease's; with host-gw style
 * IPv6 routes added by hand, `check` runs (and passes) the IPv6 matrix only.
 */
import { describe, expect, it } from "vitest";
import { readFile } from "node:fs/promises";
import { formatCheckMatrix } from "../../src/lab/check.js";
import { useLab } from "../support/lab.js";

const lab = useLab("wl6o", { hosts: 2, containersPerHost: 1, daemons: "none", ipv6Only: true });

describe("IPv6-only lab topology", () => {
  it("writes an IPv6-only subnet.env and gives docker0 and the containers IPv6 only", async () => {
    const env = await readFile(lab().host("h1").state.subnetFile, "utf8");
    expect(env).toBe("FLANNEL_IPV6_NETWORK=fd66::/48\nFLANNEL_IPV6_SUBNET=fd66:0:0:1::1/64\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n");
    const bridge = await lab().host("h1").exec("ip", ["-o", "address", "show", "dev", "docker0"]);
    expect(bridge.stdout).toMatch(/inet6 fd66:0:0:1::1\/64/);
    expect(bridge.stdout).not.toMatch(/ inet /);
    expect(lab().container("h2c1").state.address).toBeUndefined();
    expect(lab().container("h2c1").state.addressV6).toBe("fd66:0:0:2::2");
    const routes = await lab().container("h2c1").exec("ip", ["-4", "route", "show"]);
    expect(routes.stdout.trim()).toBe("");
  });

  it("check runs the IPv6 matrix only, green once IPv6 routes exist", async () => {
    await lab().host("h1").exec("ip", ["-6", "route", "replace", "fd66:0:0:2::/64", "via", "fd77::12"]);
    await lab().host("h2").exec("ip", ["-6", "route", "replace", "fd66:0:0:1::/64", "via", "fd77::11"]);
    const results = await lab().check();
    const matrix = formatCheckMatrix(results);
    expect(results.filter((result) => result.family === 4)).toEqual([]);
    expect(results.filter((result) => !result.ok), matrix).toEqual([]);
    expect(results.filter((result) => result.kind === "ping")).toHaveLength(2);
    expect(matrix).toMatch(/^IPv6 ping matrix/m);
    expect(matrix).not.toMatch(/IPv4/);
  });

});
