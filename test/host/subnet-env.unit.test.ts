import { mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  formatSubnetEnv,
  parseSubnetEnv,
  previousIpv6Subnet,
  previousSubnet,
  readSubnetEnv,
  subnetEnvFor,
  writeSubnetEnv,
  type SubnetEnv,
} from "../../src/host/subnet-env.js";
import { Ipv4Subnet, parseIpv4 } from "../../src/net/ipv4.js";
import { Ipv6Subnet } from "../../src/net/ipv6.js";
import { parseNetworkConfig } from "../../src/config/network-config.js";

const subnetAddress = (text: string): { address: number; prefixLength: number } => {
  const [address, length] = text.split("/") as [string, string];
  return { address: parseIpv4(address), prefixLength: Number(length) };
};

describe("formatSubnetEnv", () => {
  const cases: { name: string; env: SubnetEnv; text: string }[] = [
    {
      name: "IPv4 lab file (udp)",
      env: {
        network: Ipv4Subnet.parse("10.66.0.0/16"),
        subnetAddress: subnetAddress("10.66.36.1/24"),
        mtu: 1472,
        ipMasq: false,
      },
      text: "FLANNEL_NETWORK=10.66.0.0/16\nFLANNEL_SUBNET=10.66.36.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=false\n",
    },
    {
      name: "dual stack keeps flannel's order",
      env: {
        ipMasq: true,
        mtu: 1450,
        ipv6Subnet: "fd00:66:0:5::1/64",
        ipv6Network: "fd00:66::/56",
        subnetAddress: subnetAddress("10.66.5.1/24"),
        network: Ipv4Subnet.parse("10.66.0.0/16"),
      },
      text:
        "FLANNEL_NETWORK=10.66.0.0/16\nFLANNEL_SUBNET=10.66.5.1/24\n" +
        "FLANNEL_IPV6_NETWORK=fd00:66::/56\nFLANNEL_IPV6_SUBNET=fd00:66:0:5::1/64\n" +
        "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
    },
    { name: "only MTU and masq", env: { mtu: 1500, ipMasq: false }, text: "FLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n" },
    { name: "empty", env: {}, text: "" },
  ];
  for (const { name, env, text } of cases) {
    it(name, () => {
      expect(formatSubnetEnv(env)).toBe(text);
      // Round trip: what we write we read back unchanged.
      expect(parseSubnetEnv(text, "/run/flannel/subnet.env")).toEqual(env);
    });
  }
});

describe("parseSubnetEnv", () => {
  const ok: { name: string; text: string; env: SubnetEnv }[] = [
    {
      name: "godotenv leniency: comments, export, quotes, CRLF, inline comment, unknown keys",
      text:
        "# written by hand\r\n\r\nexport FLANNEL_NETWORK=\"10.66.0.0/16\"\r\nFLANNEL_SUBNET='10.66.36.1/24'\r\n" +
        "FLANNEL_MTU=1472 # udp\r\nMY_OWN=1\r\nFLANNEL_IPMASQ=true\r\n",
      env: {
        network: Ipv4Subnet.parse("10.66.0.0/16"),
        subnetAddress: subnetAddress("10.66.36.1/24"),
        mtu: 1472,
        ipMasq: true,
      },
    },
    {
      name: "network host bits are masked as flannel does",
      text: "FLANNEL_NETWORK=10.66.3.7/16\n",
      env: { network: Ipv4Subnet.parse("10.66.0.0/16") },
    },
    { name: "later line wins", text: "FLANNEL_MTU=1400\nFLANNEL_MTU=1450\n", env: { mtu: 1450 } },
  ];
  for (const { name, text, env } of ok) {
    it(name, () => expect(parseSubnetEnv(text, "f")).toEqual(env));
  }

  const bad: { text: string; error: RegExp }[] = [
    { text: "FLANNEL_NETWORK=10.66.0.0\n", error: /^\/x\/subnet\.env:1: FLANNEL_NETWORK="10\.66\.0\.0" is not an IPv4 CIDR/ },
    { text: "\nFLANNEL_SUBNET=10.66.300.1/24\n", error: /^\/x\/subnet\.env:2: FLANNEL_SUBNET="10\.66\.300\.1\/24"/ },
    { text: "FLANNEL_SUBNET=10.66.3.1/33\n", error: /:1: FLANNEL_SUBNET=.*prefix length/ },
    { text: "FLANNEL_MTU=abc\n", error: /:1: FLANNEL_MTU="abc" is not an MTU/ },
    { text: "FLANNEL_MTU=70000\n", error: /FLANNEL_MTU="70000"/ },
    { text: "FLANNEL_IPMASQ=yes\n", error: /:1: FLANNEL_IPMASQ="yes" is not true or false/ },
    { text: "FLANNEL_MTU=1472\njunk\n", error: /:2: "junk" is not a KEY=value line/ },
    { text: 'FLANNEL_SUBNET="10.66.3.1/24\n', error: /:1: FLANNEL_SUBNET has an unterminated " quote/ },
    { text: "FLANNEL_IPV6_NETWORK=fd66::\n", error: /^\/x\/subnet\.env:1: FLANNEL_IPV6_NETWORK="fd66::" is not an IPv6 CIDR/ },
    { text: "FLANNEL_IPV6_NETWORK=10.66.0.0/16\n", error: /:1: FLANNEL_IPV6_NETWORK="10\.66\.0\.0\/16" is not an IPv6 CIDR/ },
    { text: "FLANNEL_IPV6_SUBNET=fd66:0:0:6::zz/64\n", error: /:1: FLANNEL_IPV6_SUBNET="fd66:0:0:6::zz\/64" is not an IPv6 address with prefix length/ },
    { text: "FLANNEL_IPV6_SUBNET=fd66:0:0:6::1/129\n", error: /:1: FLANNEL_IPV6_SUBNET=.*prefix length/ },
  ];
  for (const { text, error } of bad) {
    it(`rejects ${JSON.stringify(text)}`, () => expect(() => parseSubnetEnv(text, "/x/subnet.env")).toThrow(error));
  }
});

describe("previousSubnet", () => {
  const cases: { env: SubnetEnv; expected: string | undefined }[] = [
    { env: { subnetAddress: subnetAddress("10.66.36.1/24") }, expected: "10.66.36.0/24" },
    { env: { subnetAddress: subnetAddress("10.66.36.129/25") }, expected: "10.66.36.128/25" },
    { env: { network: Ipv4Subnet.parse("10.66.0.0/16") }, expected: undefined },
  ];
  for (const { env, expected } of cases) {
    it(`${JSON.stringify(env.subnetAddress)} → ${expected}`, () => expect(previousSubnet(env)?.toString()).toBe(expected));
  }
});

describe("previousIpv6Subnet", () => {
  it("masks FLANNEL_IPV6_SUBNET to its subnet, as flanneld's net.ParseCIDR", () => {
    const env = parseSubnetEnv("FLANNEL_IPV6_SUBNET=FD66:0:0:6::1/64\n", "f");
    expect(previousIpv6Subnet(env)?.toString()).toBe("fd66:0:0:6::/64");
    expect(previousIpv6Subnet(parseSubnetEnv("FLANNEL_SUBNET=10.66.36.1/24\n", "f"))).toBeUndefined();
  });
});

describe("subnetEnvFor (what flanneld's WriteSubnetFile writes)", () => {
  const lease = { subnet: Ipv4Subnet.parse("10.66.52.0/24"), ipv6Subnet: Ipv6Subnet.parse("fd66:0:0:6::/64") };
  it("dual stack: the IPv6 pair after the IPv4 one, each subnet's first address", () => {
    const config = parseNetworkConfig('{"Network":"10.66.0.0/16","EnableIPv6":true,"IPv6Network":"fd66::/48","Backend":{"Type":"alloc"}}');
    expect(formatSubnetEnv(subnetEnvFor(config, lease, { mtu: 1450, ipMasq: true }))).toBe(
      "FLANNEL_NETWORK=10.66.0.0/16\nFLANNEL_SUBNET=10.66.52.1/24\nFLANNEL_IPV6_NETWORK=fd66::/48\nFLANNEL_IPV6_SUBNET=fd66:0:0:6::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
    );
  });
  it("IPv6 only (EnableIPv4: false): no FLANNEL_NETWORK/FLANNEL_SUBNET, as flanneld's WriteSubnetFile", () => {
    const config = parseNetworkConfig('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd66::/48","Backend":{"Type":"vxlan"}}');
    const text = formatSubnetEnv(subnetEnvFor(config, { ipv6Subnet: Ipv6Subnet.parse("fd66:0:0:6::/64") }, { mtu: 1430, ipMasq: true }));
    expect(text).toBe("FLANNEL_IPV6_NETWORK=fd66::/48\nFLANNEL_IPV6_SUBNET=fd66:0:0:6::1/64\nFLANNEL_MTU=1430\nFLANNEL_IPMASQ=true\n");
    // Read back: the previous IPv6 subnet, and no IPv4 one.
    const env = parseSubnetEnv(text, "f");
    expect(previousIpv6Subnet(env)?.toString()).toBe("fd66:0:0:6::/64");
    expect(previousSubnet(env)).toBeUndefined();
  });
  it("IPv4 only: no IPv6 lines, whatever the lease says", () => {
    const config = parseNetworkConfig('{"Network":"10.66.0.0/16","Backend":{"Type":"alloc"}}');
    expect(formatSubnetEnv(subnetEnvFor(config, lease, { mtu: 1500, ipMasq: false }))).toBe(
      "FLANNEL_NETWORK=10.66.0.0/16\nFLANNEL_SUBNET=10.66.52.1/24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n",
    );
  });
});

describe("writeSubnetEnv / readSubnetEnv", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "weft-subnet-env-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const env: SubnetEnv = {
    network: Ipv4Subnet.parse("10.66.0.0/16"),
    subnetAddress: subnetAddress("10.66.36.1/24"),
    mtu: 1472,
    ipMasq: false,
  };

  it("returns undefined for a missing file", async () => {
    expect(await readSubnetEnv(join(dir, "absent.env"))).toBeUndefined();
  });

  it("creates the parent dir 0755 and the file 0644 under a strict umask, leaves no temp file", async () => {
    const path = join(dir, "run", "flannel", "subnet.env");
    const oldUmask = process.umask(0o077);
    try {
      await writeSubnetEnv(path, env);
    } finally {
      process.umask(oldUmask);
    }
    expect((await stat(path)).mode & 0o777).toBe(0o644);
    // mkdir's mode is also reduced by the umask; only the created leaf matters for flannel compatibility.
    expect((await stat(join(dir, "run", "flannel"))).isDirectory()).toBe(true);
    expect(await readFile(path, "utf8")).toBe(formatSubnetEnv(env));
    expect(await readdir(join(dir, "run", "flannel"))).toEqual(["subnet.env"]);
    expect(await readSubnetEnv(path)).toEqual(env);
  });

  it("parent dir is 0755 under the usual umask", async () => {
    const path = join(dir, "fresh", "subnet.env");
    const oldUmask = process.umask(0o022);
    try {
      await writeSubnetEnv(path, env);
    } finally {
      process.umask(oldUmask);
    }
    expect((await stat(join(dir, "fresh"))).mode & 0o777).toBe(0o755);
  });

  it("replaces an existing file atomically: concurrent readers see the old or the new file, never a mix", async () => {
    const path = join(dir, "swap.env");
    const other: SubnetEnv = { ...env, subnetAddress: subnetAddress("10.66.99.1/24"), mtu: 1450 };
    await writeSubnetEnv(path, env);
    const seen = new Set<string>();
    let writing = true;
    const reader = (async () => {
      while (writing) seen.add(await readFile(path, "utf8"));
    })();
    for (let i = 0; i < 50; i++) await writeSubnetEnv(path, i % 2 === 0 ? other : env);
    writing = false;
    await reader;
    for (const text of seen) expect([formatSubnetEnv(env), formatSubnetEnv(other)]).toContain(text);
    expect(await readdir(dir)).not.toContainEqual(expect.stringMatching(/\.tmp$/));
  });

  it("read errors name the file and line", async () => {
    const path = join(dir, "broken.env");
    await writeFile(path, "FLANNEL_NETWORK=10.66.0.0/16\nFLANNEL_MTU=big\n");
    await expect(readSubnetEnv(path)).rejects.toThrow(`${path}:2: FLANNEL_MTU="big"`);
  });

  it("a write into an unwritable place names the file", async () => {
    const blocker = join(dir, "blocker");
    await writeFile(blocker, "");
    await expect(writeSubnetEnv(join(blocker, "subnet.env"), env)).rejects.toThrow(/subnet file .*blocker\/subnet\.env: cannot create directory/);
  });
});
