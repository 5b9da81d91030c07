/*
 * `lab up --ipv6` without daemons: the dual-stack plumbing the IPv6 backends are tested on.
 *
 *                     <p>-ul  bridge ul0, 192.168.77.0/24 and fd77::/64
 *        +-----------------------+-----------------------+
 *   <p>-etcd .2            <p>-h1 .11 fd77::11       <p>-h2 .12 fd77::12
 *                          docker0 10.66.1.1/24        docker0 10.66.2.1/24
 *                                  fd66:0:0:1::1/64            fd66:0:0:2::1/64
 *                            |         |                 |         |
 *                       <p>-h1c1   <p>-h1c2         <p>-h2c1   <p>-h2c2   (.2/::2, .3/::3)
 *
 * The static subnet.env of a daemon-less lab carries FLANNEL_IPV6_SUBNET as a dual-stack lease
 * would; the test adds host-gw style routes for both families by hand, so `check` measures a
 * working overlay per family.
 */
import { describe, expect, it } from "vitest";
import { readFile } from "node:fs/promises";
import { formatCheckMatrix } from "../../src/lab/check.js";
import { useLab } from "../support/lab.js";

const lab = useLab("wlds", { hosts: 2, containersPerHost: 2, daemons: "none", ipv6: true });

describe("dual-stack lab topology", () => {
  it("gives every host an IPv6 underlay address and docker0 both families from subnet.env", async () => {
    expect(lab().state.underlay.cidrV6).toBe("fd77::/64");
    expect(lab().host("h1").state.underlayAddressV6).toBe("fd77::11");
    const addresses = await lab().host("h2").exec("ip", ["-o", "address", "show", "dev", "eth0"]);
    expect(addresses.stdout).toMatch(/inet6 fd77::12\/64 scope global/);
    expect(addresses.stdout).not.toMatch(/tentative/);
    const env = await readFile(lab().host("h1").state.subnetFile, "utf8");
    expect(env).toMatch(/^FLANNEL_IPV6_NETWORK=fd66::\/48$/m);
    expect(env).toMatch(/^FLANNEL_IPV6_SUBNET=fd66:0:0:1::1\/64$/m);
    const bridge = await lab().host("h1").exec("ip", ["-6", "-o", "address", "show", "dev", "docker0", "scope", "global"]);
    expect(bridge.stdout).toMatch(/fd66:0:0:1::1\/64/);
    expect(lab().container("h2c2").state.addressV6).toBe("fd66:0:0:2::3");
    const route = await lab().container("h2c2").exec("ip", ["-6", "route", "show", "default"]);
    expect(route.stdout).toMatch(/default via fd66:0:0:2::1 dev eth0/);
    const forwarding = await lab().host("h1").exec("sysctl", ["-n", "net.ipv6.conf.all.forwarding"]);
    expect(forwarding.stdout.trim()).toBe("1");
  });

  it("check runs both families: cross-host fails without routes, all green with routes of both families", async () => {
    const before = await lab().check();
    const v6Cross = before.find((r) => r.family === 6 && r.kind === "ping" && r.from === "h1c1" && r.to === "h2c1");
    const v6Same = before.find((r) => r.family === 6 && r.kind === "ping" && r.from === "h1c1" && r.to === "h1c2");
    expect(v6Cross?.ok).toBe(false);
    expect(v6Same?.ok).toBe(true);

    const [h1, h2] = [lab().host("h1"), lab().host("h2")];
    await h1.exec("ip", ["route", "add", "10.66.2.0/24", "via", h2.underlayAddress]);
    await h2.exec("ip", ["route", "add", "10.66.1.0/24", "via", h1.underlayAddress]);
    await h1.exec("ip", ["-6", "route", "add", "fd66:0:0:2::/64", "via", h2.state.underlayAddressV6 as string]);
    await h2.exec("ip", ["-6", "route", "add", "fd66:0:0:1::/64", "via", h1.state.underlayAddressV6 as string]);
    const after = await lab().check();
    const matrix = formatCheckMatrix(after);
    expect(matrix).toMatch(/IPv4 ping matrix/);
    expect(matrix).toMatch(/IPv6 ping matrix/);
    expect(after.filter((r) => !r.ok), matrix).toEqual([]);
    // 12 pings + 2 don't-fragment pings per family.
    expect(after.filter((r) => r.family === 6)).toHaveLength(14);
    expect(after.filter((r) => r.family === 4)).toHaveLength(14);
    expect(after.filter((r) => r.kind === "df" && r.family === 6).map((r) => r.payload)).toEqual([1452, 1452]);
    expect(after.find((r) => r.kind === "df" && r.family === 6)?.toAddress).toMatch(/^fd66:0:0:2::/);
  });
});
