import { execFile, execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import yargs from "yargs";
import { describe, expect, it } from "vitest";
import { daemonOptionsFromArgs, defineRunOptions } from "../../src/commands/run.js";
import { weftCliPath } from "../../src/lab/lab-daemon.js";
import { hasNetAdmin } from "../../src/host/privileges.js";

const execFileAsync = promisify(execFile);

function parse(argv: string[]) {
  return daemonOptionsFromArgs(defineRunOptions(yargs(argv)).parseSync());
}

/** yargs reads FLANNELD_* from the environment of the process: parse in a child with that environment. */
function parseWithEnv(argv: string[], env: Record<string, string>) {
  const script = `
    const { default: yargs } = await import("yargs");
    const { daemonOptionsFromArgs, defineRunOptions } = await import(${JSON.stringify(new URL("../../dist/commands/run.js", import.meta.url).href)});
    console.log(JSON.stringify(daemonOptionsFromArgs(defineRunOptions(yargs(${JSON.stringify(argv)})).parseSync())));`;
  const output = execFileSync(process.execPath, ["--input-type=module", "-e", script], { env: { ...process.env, ...env }, cwd: process.cwd() });
  return JSON.parse(output.toString()) as ReturnType<typeof daemonOptionsFromArgs>;
}

async function weftRun(args: string[], env: Record<string, string> = {}) {
  try {
    await execFileAsync(process.execPath, [weftCliPath(), "run", ...args], { env: { ...process.env, ...env }, timeout: 10_000 });
    return { code: 0, stderr: "" };
  } catch (error) {
    const failure = error as { code: number; stderr: string };
    return { code: failure.code, stderr: failure.stderr };
  }
}

describe("weft run flags", () => {
  it("has flanneld's defaults", () => {
    const options = parse([]);
    expect(options.store).toMatchObject({ endpoints: ["http://127.0.0.1:4001", "http://127.0.0.1:2379"], prefix: "/coreos.com/network" });
    expect(options.subnetFile).toBe("/run/flannel/subnet.env");
    expect(options.renewMarginMs).toBe(60 * 60_000);
    expect(options.leaseTtlSeconds).toBe(86_400);
    expect(options.ipMasq).toBe(false);
    expect(options.forwardRules).toBe(true);
    expect(options.healthz).toBeUndefined();
  });

  it("reads FLANNELD_* variables, and the command line wins", () => {
    const options = parseWithEnv(["--etcd-prefix=/cli"], {
      FLANNELD_ETCD_ENDPOINTS: "http://10.0.0.1:2379,http://10.0.0.2:2379",
      FLANNELD_ETCD_PREFIX: "/env",
      FLANNELD_IFACE: "eth1,10.0.0.5",
      FLANNELD_IP_MASQ: "true",
      FLANNELD_HEALTHZ_PORT: "9471",
      FLANNELD_PUBLIC_IPV6: "fd00:77::2",
    });
    expect(options.store.endpoints).toEqual(["http://10.0.0.1:2379", "http://10.0.0.2:2379"]);
    expect(options.store.prefix).toBe("/cli");
    expect(options.interfaceSelection.ifaces).toEqual(["eth1", "10.0.0.5"]);
    expect(options.ipMasq).toBe(true);
    expect(options.healthz).toEqual({ host: "0.0.0.0", port: 9471 });
    expect(options.interfaceSelection.publicIPv6).toBe("fd00:77::2");
  });

  it("takes --iface and --iface-regex repeatedly, in order", () => {
    const options = parse(["--iface=eth1", "--iface", "eth2", "--iface-regex=^10\\.", "--iface-regex=^eth"]);
    expect(options.interfaceSelection.ifaces).toEqual(["eth1", "eth2"]);
    expect(options.interfaceSelection.ifaceRegexes).toEqual(["^10\\.", "^eth"]);
  });

  it("probes peers only when --peer-probe-interval asks (off by default)", () => {
    expect(parse([]).peerProbeIntervalMs).toBeUndefined();
    expect(parse(["--peer-probe-interval=0"]).peerProbeIntervalMs).toBeUndefined();
    expect(parse(["--peer-probe-interval=30"]).peerProbeIntervalMs).toBe(30_000);
  });

  it("renews at half the TTL when the margin is longer than the TTL", () => {
    expect(parse(["--subnet-lease-ttl=600", "--subnet-lease-renew-margin=60"]).renewMarginMs).toBe(300_000);
  });

  it.each([
    [["--subnet-lease-renew-margin=0"], /--subnet-lease-renew-margin: 0 is outside 1\.\.1439 minutes/],
    [["--subnet-lease-renew-margin=1440"], /--subnet-lease-renew-margin: 1440 is outside/],
    [["--etcd-endpoints=localhost:2379"], /--etcd-endpoints: "localhost:2379" is not an http\(s\):\/\/host:port URL/],
    [["--public-ip=10.0.0.256"], /--public-ip: "10\.0\.0\.256" is not an IPv4 address/],
    [["--iface-can-reach=example"], /--iface-can-reach: "example" is not an IPv4 or IPv6 address/],
    [["--public-ipv6=10.0.0.1"], /--public-ipv6: "10\.0\.0\.1" is not an IPv6 address/],
    [["--public-ipv6=fd00::zz"], /--public-ipv6: "fd00::zz" is not an IPv6 address/],
    [["--healthz-port=70000"], /--healthz-port: 70000 is not a port number/],
    [["--kube-subnet-mgr"], /--kube-subnet-mgr: weft uses etcd only/],
    [["--peer-probe-interval=0.5"], /--peer-probe-interval: 0\.5 must be 0 \(off\) or at least 1 second/],
    [["--peer-probe-interval=-3"], /--peer-probe-interval: -3 must be 0/],
  ])("rejects %s naming the flag", (argv, message) => {
    expect(() => parse(argv)).toThrow(message);
  });

  it("exits 78 (EX_CONFIG) with a line naming the flag for an unknown flag, a bad value or choice, and accepts Go-style single dashes", async () => {
    const unknown = await weftRun(["--bogus-flag"]);
    expect(unknown.code).toBe(78);
    expect(unknown.stderr).toMatch(/^weft: Unknown arguments?: bogus-flag/);
    const bad = await weftRun(["-subnet-lease-renew-margin=5000"]);
    expect(bad.code).toBe(78);
    expect(bad.stderr).toBe("weft: --subnet-lease-renew-margin: 5000 is outside 1..1439 minutes\n");
    const fromEnv = await weftRun([], { FLANNELD_SUBNET_LEASE_RENEW_MARGIN: "0" });
    expect(fromEnv.code).toBe(78);
    expect(fromEnv.stderr).toContain("--subnet-lease-renew-margin: 0 is outside");
    const choice = await weftRun(["--log-level=loud"]);
    expect(choice.code).toBe(78);
    expect(choice.stderr).toMatch(/^weft: Invalid values:\n\s+Argument: log-level, Given: "loud"/);
  });

  it("exits 78 for TLS flags that contradict; an unreadable --etcd-cafile is retried, naming the file (it may be written later)", async () => {
    const half = await weftRun(["--etcd-keyfile=/nonexistent/weft.key", "--iface=none-such"]);
    expect(half.code).toBe(78);
    expect(half.stderr).toBe("weft: --etcd-keyfile and --etcd-certfile must be given together for TLS\n");
    const stateDir = await mkdtemp(join(tmpdir(), "weft-runflags-"));
    try {
      // Never reaches the network: the CA file is read before any connection. Stopped by the timeout's SIGTERM.
      const args = [weftCliPath(), "run", "--etcd-cafile=/nonexistent/weft-ca.pem", "--etcd-endpoints=https://127.0.0.1:9", `--state-dir=${stateDir}`, `--subnet-file=${join(stateDir, "subnet.env")}`, "--iptables-forward-rules=false"];
      const started = Date.now();
      const run = await execFileAsync(process.execPath, args, { timeout: 5000 }).catch((error: { stdout: string; stderr: string }) => error);
      // Still running (retrying) until the timeout's SIGTERM ended it.
      expect(Date.now() - started).toBeGreaterThanOrEqual(4900);
      // The JSON log (stderr): the file named on each retry's line, and no fatal "weft: …" line.
      expect(run.stderr).toContain("cannot use the network config: etcd https://127.0.0.1:9: get /coreos.com/network/config: --etcd-cafile /nonexistent/weft-ca.pem: cannot read: ENOENT");
      expect(run.stderr).not.toMatch(/^weft: /m);
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  it("refuses to start without CAP_NET_ADMIN, saying what needs it (exit 78: a deployment error)", async () => {
    let failure: { code: number; stderr: string } | undefined;
    try {
      // Root without CAP_NET_ADMIN: still able to read the checkout wherever it lives (an
      // unprivileged uid may not be, e.g. under a 0700 mktemp directory).
      await execFileAsync("setpriv", ["--bounding-set=-net_admin", "--inh-caps=-net_admin", process.execPath, weftCliPath(), "run", "--etcd-endpoints=http://127.0.0.1:9"], { timeout: 10_000 });
    } catch (error) {
      failure = error as { code: number; stderr: string };
    }
    expect(failure?.code).toBe(78);
    expect(failure?.stderr).toMatch(/^weft: installing traffic rules \(--ip-masq, --iptables-forward-rules\) needs root or CAP_NET_ADMIN/);
  });

  it.each([
    ["CapEff:\t000001fffeffffff\n", true],
    ["CapEff:\t0000000000001000\n", true],
    ["CapEff:\t0000000000000000\n", false],
    ["CapEff:\t0000000000002000\n", false],
  ])("reads CAP_NET_ADMIN from %j", (status, expected) => {
    expect(hasNetAdmin(status)).toBe(expected);
  });
});
