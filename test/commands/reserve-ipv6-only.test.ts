/*
 * `weft reserve` / `unreserve` in an IPv6-only network: the built CLI (dist/cli.js, build first)
 * against a real etcd. The reservation is the key flanneld would name (0.0.0.0-0&<v6>-<len>),
 * with PublicIP 0.0.0.0 and the host's PublicIPv6, and no etcd lease.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { useEtcd } from "../support/etcd.js";

const CLI = resolve("dist/cli.js");
const fixture = useEtcd();

function weft(prefix: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing; run \`npm run build:ts\` first`);
  const result = spawnSync(process.execPath, [CLI, ...args, `--etcd-endpoints=${fixture().server.endpoint}`, `--etcd-prefix=${prefix}`], { encoding: "utf8" });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("weft reserve in an IPv6-only network", () => {
  it("reserves 0.0.0.0-0&<v6> for a PublicIPv6 without a TTL, refuses an IPv4 subnet, and unreserves by the IPv6 subnet", async () => {
    const store = fixture().newStore();
    const prefix = store.configKey.replace(/\/config$/, "");
    await store.put(store.configKey, '{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd66::/48","Backend":{"Type":"vxlan"}}');
    const key = `${store.subnetsPrefix}0.0.0.0-0&fd66:0:0:6::-64`;

    const reserved = weft(prefix, ["reserve", "fd66:0:0:6::/64", "FD77::11"]);
    expect(reserved, reserved.stderr).toMatchObject({ status: 0, stdout: `reserved ${key} for fd77::11 (no TTL)\n` });
    const stored = await store.get(key);
    expect(stored).toMatchObject({ value: '{"PublicIP":"0.0.0.0","PublicIPv6":"fd77::11"}', leaseId: "0" });

    const v4 = weft(prefix, ["reserve", "10.66.6.0/24", "192.168.77.11"]);
    expect(v4.status).toBe(1);
    expect(v4.stderr).toMatch(/subnet: 10\.66\.6\.0\/24 is IPv4, but the network is IPv6-only \(EnableIPv4: false\)/);
    const notV6 = weft(prefix, ["reserve", "fd66:0:0:7::/64", "192.168.77.11"]);
    expect(notV6.stderr).toMatch(/public-ip \(the host's PublicIPv6 for an IPv6 subnet\): "192\.168\.77\.11" is not an IPv6 address/);
    const taken = weft(prefix, ["reserve", "fd66:0:0:6::/64", "fd77::12"]);
    expect(taken.stderr).toMatch(/is held by fd77::11; pass --force to give it to fd77::12/);

    const removed = weft(prefix, ["unreserve", "fd66:0:0:6::/64"]);
    expect(removed, removed.stderr).toMatchObject({ status: 0, stdout: `removed the reservation ${key}\n` });
    expect(await store.get(key)).toBeUndefined();
  });
});
