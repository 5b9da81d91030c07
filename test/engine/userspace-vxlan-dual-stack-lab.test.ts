/*
 * `weft lab up --ipv6` with real daemons, one 3-host dual-stack lab per backend:
 *
 *                   <p>-ul  bridge ul0, 192.168.77.0/24 + fd77::/64
 *        +--------------+----------------+----------------+
 *   <p>-etcd .2     <p>-h1 .11 ::11   <p>-h2 .12 ::12   <p>-h3 .13 ::13
 *   real etcd       weft run          weft run          weft run     (EnableIPv6, fd66::/48)
 *                   docker0 v4+v6     docker0 v4+v6     docker0 v4+v6
 *                     |                  |                 |
 *                   h1c1               h2c1              h3c1
 *
 * For userspace vxlan (kernel vxlan and host-gw: test/backend/kernel-backends-dual-stack-lab.test.ts):
 * etcd holds flanneld's dual-stack key and value for every host, FLANNEL_MTU is the IPv6
 * underlay's E − 70, and `lab check` passes for both families at full size (ping matrix and the
 * largest don't-fragment ping per family, no Packet Too Big needed).
 * Needs a build (npm run build): the daemons run dist/cli.js, userspace vxlan the native engine.
 */
import { describe, expect, it } from "vitest";
import { readFile } from "node:fs/promises";
import { formatCheckMatrix } from "../../src/lab/check.js";
import { useLab } from "../support/lab.js";

const cases = [{ label: "userspace vxlan", backend: "vxlan", options: { Userspace: true }, backendType: "vxlan", mtu: 1430 }];

describe.each(cases)("dual-stack lab, $label", ({ backend, options, backendType, mtu }) => {
  const lab = useLab("wl6u", { hosts: 3, containersPerHost: 1, backend, backendOptions: options, ipv6: true });

  it("leases both families in flanneld's dual-stack key and value, and writes FLANNEL_IPV6_*", async () => {
    const listing = await lab().etcdctl(["get", "--prefix", "/coreos.com/network/subnets/"]);
    const lines = listing.stdout.trim().split("\n");
    expect(lines).toHaveLength(6);
    for (const host of lab().hosts) {
      const env = await readFile(host.state.subnetFile, "utf8");
      const v4 = /^FLANNEL_SUBNET=(\d+\.\d+\.\d+)\.1\/24$/m.exec(env)?.[1];
      const v6 = /^FLANNEL_IPV6_SUBNET=(fd66:0:0:[0-9a-f]+::)1\/64$/m.exec(env)?.[1];
      expect(env).toMatch(/^FLANNEL_IPV6_NETWORK=fd66::\/48$/m);
      expect(env).toMatch(new RegExp(`^FLANNEL_MTU=${mtu}$`, "m"));
      expect(v4 && v6, env).toBeTruthy();
      const keyIndex = lines.indexOf(`/coreos.com/network/subnets/${v4}.0-24&${v6}-64`);
      expect(keyIndex, listing.stdout).toBeGreaterThanOrEqual(0);
      const value = JSON.parse(lines[keyIndex + 1] as string) as Record<string, unknown>;
      expect(value.PublicIP).toBe(host.state.underlayAddress);
      expect(value.PublicIPv6).toBe(host.state.underlayAddressV6);
      expect(value.BackendType).toBe(backendType);
      if (backendType === "vxlan") expect(value.BackendV6Data).toMatchObject({ VNI: 1, VtepMAC: expect.stringMatching(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/) });
    }
  });

  it("passes lab check for both families", async () => {
    const results = await lab().check();
    const matrix = formatCheckMatrix(results);
    expect(results.filter((result) => !result.ok), matrix).toEqual([]);
    expect(results.filter((result) => result.family === 6 && result.kind === "ping")).toHaveLength(6);
    expect(results.filter((result) => result.family === 4 && result.kind === "ping")).toHaveLength(6);
    const df6 = results.filter((result) => result.family === 6 && result.kind === "df");
    expect(df6).toHaveLength(3);
    for (const result of df6) {
      expect(result.pathMtu, matrix).toBeUndefined();
      expect(result.payload).toBe(mtu - 48);
    }
  });
});
