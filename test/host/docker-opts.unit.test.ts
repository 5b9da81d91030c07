import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseDockerOptsFlags } from "../../src/commands/docker-opts.js";
import { DOCKER_OPTS_DEFAULTS, dockerDaemonJson, dockerOptions, formatDockerOpts, readFlannelValues, writeDockerOpts } from "../../src/host/docker-opts.js";
import { parseSubnetEnv } from "../../src/host/subnet-env.js";

/** A udp lab host's subnet.env (--ip-masq off) and what mk-docker-opts.sh prints for it (flannel-compat §3.2). */
const LAB_SUBNET_ENV = "FLANNEL_NETWORK=10.66.0.0/16\nFLANNEL_SUBNET=10.66.36.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=false\n";
const LAB_OUTPUT =
  'DOCKER_OPT_BIP="--bip=10.66.36.1/24"\n' +
  'DOCKER_OPT_IPMASQ="--ip-masq=true"\n' +
  'DOCKER_OPT_MTU="--mtu=1472"\n' +
  'DOCKER_OPTS=" --bip=10.66.36.1/24 --ip-masq=true --mtu=1472"\n';

const both = { individual: false, combined: false, combinedKey: "DOCKER_OPTS" };

describe("formatDockerOpts", () => {
  const lab = dockerOptions(parseSubnetEnv(LAB_SUBNET_ENV, "lab"), false);
  const cases: { name: string; text: string; settings?: Partial<typeof both>; existing?: string; env?: string; omitIpMasq?: boolean }[] = [
    { name: "lab output, byte for byte (neither -i nor -c = both)", text: LAB_OUTPUT },
    { name: "-i -c is the same as neither", settings: { individual: true, combined: true }, text: LAB_OUTPUT },
    {
      name: "-i only",
      settings: { individual: true },
      text: 'DOCKER_OPT_BIP="--bip=10.66.36.1/24"\nDOCKER_OPT_IPMASQ="--ip-masq=true"\nDOCKER_OPT_MTU="--mtu=1472"\n',
    },
    { name: "-c only", settings: { combined: true }, text: 'DOCKER_OPTS=" --bip=10.66.36.1/24 --ip-masq=true --mtu=1472"\n' },
    {
      name: "-c -k with the key's current value in front (one extra space, as the script)",
      settings: { combined: true, combinedKey: "DOCKER_NETWORK_OPTIONS" },
      existing: "-H unix:///var/run/docker.sock",
      text: 'DOCKER_NETWORK_OPTIONS="-H unix:///var/run/docker.sock  --bip=10.66.36.1/24 --ip-masq=true --mtu=1472"\n',
    },
    {
      name: "flannel masquerades → docker must not",
      env: LAB_SUBNET_ENV.replace("FLANNEL_IPMASQ=false", "FLANNEL_IPMASQ=true"),
      settings: { combined: true },
      text: 'DOCKER_OPTS=" --bip=10.66.36.1/24 --ip-masq=false --mtu=1472"\n',
    },
    {
      name: "-m leaves ip-masq out",
      omitIpMasq: true,
      text: 'DOCKER_OPT_BIP="--bip=10.66.36.1/24"\nDOCKER_OPT_MTU="--mtu=1472"\nDOCKER_OPTS=" --bip=10.66.36.1/24 --mtu=1472"\n',
    },
    {
      name: "no IPMASQ in the file: no ip-masq option",
      env: "FLANNEL_SUBNET=10.66.36.1/24\nFLANNEL_MTU=1450\n",
      text: 'DOCKER_OPT_BIP="--bip=10.66.36.1/24"\nDOCKER_OPT_MTU="--mtu=1450"\nDOCKER_OPTS=" --bip=10.66.36.1/24 --mtu=1450"\n',
    },
    { name: "empty file: only the (empty) combined variable", env: "", text: 'DOCKER_OPTS=""\n' },
    { name: "empty file, -i only: empty output", env: "", settings: { individual: true }, text: "" },
  ];
  for (const { name, text, settings, existing, env, omitIpMasq } of cases) {
    it(name, () => {
      const options = env === undefined && !omitIpMasq ? lab : dockerOptions(parseSubnetEnv(env ?? LAB_SUBNET_ENV, "t"), omitIpMasq ?? false);
      expect(formatDockerOpts(options, { ...both, ...settings }, existing)).toBe(text);
    });
  }
});

describe("dual-stack subnet file (weft's addition: mk-docker-opts.sh knows no IPv6)", () => {
  const DUAL =
    "FLANNEL_NETWORK=10.66.0.0/16\nFLANNEL_SUBNET=10.66.52.1/24\nFLANNEL_IPV6_NETWORK=fd66::/48\nFLANNEL_IPV6_SUBNET=fd66:0:0:6::1/64\n" +
    "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n";
  it("adds --ipv6 and --fixed-cidr-v6=<own IPv6 subnet>, in the script's name order", () => {
    expect(formatDockerOpts(dockerOptions(parseSubnetEnv(DUAL, "t"), false), both)).toBe(
      'DOCKER_OPT_BIP="--bip=10.66.52.1/24"\n' +
        'DOCKER_OPT_FIXED_CIDR_V6="--fixed-cidr-v6=fd66:0:0:6::/64"\n' +
        'DOCKER_OPT_IPMASQ="--ip-masq=false"\n' +
        'DOCKER_OPT_IPV6="--ipv6"\n' +
        'DOCKER_OPT_MTU="--mtu=1450"\n' +
        'DOCKER_OPTS=" --bip=10.66.52.1/24 --fixed-cidr-v6=fd66:0:0:6::/64 --ip-masq=false --ipv6 --mtu=1450"\n',
    );
  });
  it("--daemon-json gives dockerd's daemon.json keys for the same settings", () => {
    expect(dockerDaemonJson(parseSubnetEnv(DUAL, "t"), false)).toEqual({ bip: "10.66.52.1/24", "fixed-cidr-v6": "fd66:0:0:6::/64", "ip-masq": false, ipv6: true, mtu: 1450 });
    expect(dockerDaemonJson(parseSubnetEnv(LAB_SUBNET_ENV, "t"), true)).toEqual({ bip: "10.66.36.1/24", mtu: 1472 });
  });
  it("an IPv6-only file (no FLANNEL_SUBNET): no bip, as mk-docker-opts.sh; ipv6 and fixed-cidr-v6", () => {
    const v6only = parseSubnetEnv("FLANNEL_IPV6_NETWORK=fd66::/48\nFLANNEL_IPV6_SUBNET=fd66:0:0:6::1/64\nFLANNEL_MTU=1430\nFLANNEL_IPMASQ=true\n", "t");
    expect(dockerDaemonJson(v6only, false)).toEqual({ "fixed-cidr-v6": "fd66:0:0:6::/64", "ip-masq": false, ipv6: true, mtu: 1430 });
    expect([...dockerOptions(v6only, false).keys()]).toEqual(["DOCKER_OPT_MTU", "DOCKER_OPT_IPV6", "DOCKER_OPT_FIXED_CIDR_V6", "DOCKER_OPT_IPMASQ"]);
  });
  it("an IPv4-only file gets no IPv6 option", () => {
    const options = dockerOptions(parseSubnetEnv(LAB_SUBNET_ENV, "t"), false);
    expect([...options.keys()].filter((name) => name.includes("V6"))).toEqual([]);
  });
});

describe("parseDockerOptsFlags (getopts f:d:icmk:)", () => {
  const defaults = DOCKER_OPTS_DEFAULTS;
  const cases: { argv: string[]; expected: Partial<typeof defaults>; operands?: string[] }[] = [
    { argv: [], expected: {} },
    { argv: ["-f", "/a", "-d", "/b", "-i", "-c", "-k", "K", "-m"], expected: { flannelEnvFile: "/a", dockerEnvFile: "/b", individual: true, combined: true, combinedKey: "K", omitIpMasq: true } },
    { argv: ["-fa.env", "-dout.env", "-kDOCKER_NETWORK_OPTIONS"], expected: { flannelEnvFile: "a.env", dockerEnvFile: "out.env", combinedKey: "DOCKER_NETWORK_OPTIONS" } },
    { argv: ["-icm"], expected: { individual: true, combined: true, omitIpMasq: true } },
    { argv: ["-ick", "KEY"], expected: { individual: true, combined: true, combinedKey: "KEY" } },
    { argv: ["-ckKEY"], expected: { combined: true, combinedKey: "KEY" } },
    { argv: ["-k", "-x"], expected: { combinedKey: "-x" } },
    { argv: ["-f", "a", "-f", "b"], expected: { flannelEnvFile: "b" } },
    { argv: ["-i", "--", "-c"], expected: { individual: true }, operands: ["-c"] },
    { argv: ["-i", "extra", "-c"], expected: { individual: true }, operands: ["extra", "-c"] },
    { argv: ["--flannel-env=/a", "--docker-env", "/b", "--key", "K", "--individual", "--combined", "--omit-ip-masq"], expected: { flannelEnvFile: "/a", dockerEnvFile: "/b", combinedKey: "K", individual: true, combined: true, omitIpMasq: true } },
    { argv: ["--daemon-json", "-d", "/etc/docker/daemon.json"], expected: { daemonJson: true, dockerEnvFile: "/etc/docker/daemon.json" } },
  ];
  for (const { argv, expected, operands } of cases) {
    it(JSON.stringify(argv), () => {
      expect(parseDockerOptsFlags(argv)).toEqual({ options: { ...defaults, ...expected }, operands: operands ?? [] });
    });
  }
  const bad: { argv: string[]; error: RegExp }[] = [
    { argv: ["-x"], error: /^illegal option -- x$/ },
    { argv: ["-ix"], error: /illegal option -- x/ },
    { argv: ["-k"], error: /^option requires an argument -- k$/ },
    { argv: ["-i", "-f"], error: /requires an argument -- f/ },
    { argv: ["--key"], error: /requires an argument -- key/ },
    { argv: ["--constructor"], error: /illegal option --constructor/ },
    { argv: ["--individual=yes"], error: /illegal option/ },
    { argv: ["-h"], error: /^$/ },
  ];
  for (const { argv, error } of bad) {
    it(`rejects ${JSON.stringify(argv)}`, () => expect(() => parseDockerOptsFlags(argv)).toThrow(error));
  }
});

describe("writeDockerOpts", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "weft-docker-opts-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes the lab file from a subnet file, no route conflict on this host", async () => {
    const flannelEnvFile = join(dir, "subnet.env");
    const dockerEnvFile = join(dir, "out", "docker_opts.env");
    await writeFile(flannelEnvFile, LAB_SUBNET_ENV);
    const result = await writeDockerOpts({ ...DOCKER_OPTS_DEFAULTS, flannelEnvFile, dockerEnvFile }, {});
    expect(await readFile(dockerEnvFile, "utf8")).toBe(LAB_OUTPUT);
    expect(result).toMatchObject({ text: LAB_OUTPUT, missingSubnet: false, fileFound: true });
  });

  it("environment FLANNEL_* fill in what the file lacks, the file wins, inherited DOCKER_OPT_* are kept in name order", async () => {
    const flannelEnvFile = join(dir, "partial.env");
    const dockerEnvFile = join(dir, "partial.out");
    await writeFile(flannelEnvFile, "FLANNEL_SUBNET=10.66.36.1/24\n");
    await writeDockerOpts(
      { ...DOCKER_OPTS_DEFAULTS, flannelEnvFile, dockerEnvFile },
      { FLANNEL_SUBNET: "10.66.99.1/24", FLANNEL_MTU: "1450", FLANNEL_IPMASQ: "", DOCKER_OPT_DNS: "--dns=10.0.0.2", DOCKER_OPTS: "-D" },
    );
    expect(await readFile(dockerEnvFile, "utf8")).toBe(
      'DOCKER_OPT_BIP="--bip=10.66.36.1/24"\nDOCKER_OPT_DNS="--dns=10.0.0.2"\nDOCKER_OPT_MTU="--mtu=1450"\n' +
        'DOCKER_OPTS="-D  --bip=10.66.36.1/24 --dns=10.0.0.2 --mtu=1450"\n',
    );
  });

  it("--daemon-json writes a daemon.json from a dual-stack subnet file", async () => {
    const flannelEnvFile = join(dir, "dual.env");
    const dockerEnvFile = join(dir, "daemon.json");
    await writeFile(flannelEnvFile, "FLANNEL_SUBNET=10.66.52.1/24\nFLANNEL_IPV6_NETWORK=fd66::/48\nFLANNEL_IPV6_SUBNET=fd66:0:0:6::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n");
    await writeDockerOpts({ ...DOCKER_OPTS_DEFAULTS, flannelEnvFile, dockerEnvFile, daemonJson: true }, {});
    expect(await readFile(dockerEnvFile, "utf8")).toBe(
      '{\n  "bip": "10.66.52.1/24",\n  "fixed-cidr-v6": "fd66:0:0:6::/64",\n  "ip-masq": true,\n  "ipv6": true,\n  "mtu": 1450\n}\n',
    );
  });

  it("a missing subnet file is not an error (as the script) but is reported", async () => {
    const dockerEnvFile = join(dir, "missing.out");
    const result = await writeDockerOpts({ ...DOCKER_OPTS_DEFAULTS, flannelEnvFile: join(dir, "absent.env"), dockerEnvFile }, {});
    expect(result).toMatchObject({ missingSubnet: true, fileFound: false, conflicts: [] });
    expect(await readFile(dockerEnvFile, "utf8")).toBe('DOCKER_OPTS=""\n');
  });

  it("errors name the file, line and key, or the bad -k", async () => {
    const flannelEnvFile = join(dir, "bad.env");
    await writeFile(flannelEnvFile, "FLANNEL_SUBNET=10.66.36.1/24\nFLANNEL_IPMASQ=maybe\n");
    const dockerEnvFile = join(dir, "bad.out");
    await expect(writeDockerOpts({ ...DOCKER_OPTS_DEFAULTS, flannelEnvFile, dockerEnvFile }, {})).rejects.toThrow(
      `${flannelEnvFile}:2: FLANNEL_IPMASQ="maybe" is not true or false`,
    );
    await expect(readFlannelValues(join(dir, "absent.env"), { FLANNEL_MTU: "x" })).rejects.toThrow(/environment variable FLANNEL_MTU.*"x"/);
    await expect(writeDockerOpts({ ...DOCKER_OPTS_DEFAULTS, combinedKey: "DOCKER-OPTS", dockerEnvFile }, {})).rejects.toThrow(
      /-k: "DOCKER-OPTS" is not a shell variable name/,
    );
  });
});
