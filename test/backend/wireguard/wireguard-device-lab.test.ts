/*
 * The wireguard backend's device path in a 3-host lab with real etcd and real daemons: h1 and h2
 * run `"Implementation": "wireguard-go"` (weft starts Debian's wireguard-go for flannel-wg and
 * configures it with wg, exactly as it configures the kernel module's device: this kernel has no
 * WireGuard, so the "kernel" path is exercised through wireguard-go; only the birth of the device
 * differs), h3 overrides it with $WEFT_WIREGUARD_IMPLEMENTATION=userspace (weft's own engine).
 * Each host has its own /run/wireguard (the lab binds <state-dir>/run-wireguard over it).
 *
 *                      <p>-ul  bridge ul0, 192.168.77.0/24
 *        +---------------+-----------------+-----------------+
 *   <p>-etcd .2     <p>-h1 .11        <p>-h2 .12        <p>-h3 .13
 *   real etcd       weft run          weft run          weft run
 *                   wireguard-go      wireguard-go      userspace engine
 *                   flannel-wg (TUN, udp/51820), MTU 1420 on every host
 *                   docker0 .1        docker0 .1        docker0 .1
 *                      |                 |                 |
 *                   <p>-h1c1          <p>-h2c1          <p>-h3c1
 */
import { readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { waitUntil } from "../../../src/lab/readiness.js";
import { startPingStream } from "../../../src/lab/ping-stream.js";
import { isAlive } from "../../../src/process/pids.js";
import { parseWgDump, type WgDump } from "../../../src/kernel/wireguard-device.js";
import { verifiedTransfer } from "../../support/tcp-transfer.js";
import { wireguardLeases, type WireguardLeaseValue } from "../../support/wireguard-go.js";
import { readEndpoint } from "../../support/lab-metrics.js";
import { withDaemonPaused } from "../../support/paused-daemon.js";
import { doctorOn, useLab } from "../../support/lab.js";

const DEVICE = "flannel-wg";
const MTU = 1500 - 80;
/** A throw-away PSK (`wg genpsk`), on every peer of every host. */
const PSK = "VK5bgp9RLb5f6ZxCebG3Dxwu+PmKbW02o7MqdZ9udhc=";
const KEEPALIVE = 25;

describe("wireguard device path (wireguard-go) with a userspace host, 3-host lab", () => {
  const lab = useLab("wgd", {
    hosts: 3, containersPerHost: 1, backend: "wireguard",
    backendOptions: { Implementation: "wireguard-go", PSK, PersistentKeepaliveInterval: KEEPALIVE },
    daemonEnv: { h3: { WEFT_WIREGUARD_IMPLEMENTATION: "userspace" } },
    // Peers removed by hand are not a kernel event: the periodic pass finds them.
    daemonArgs: ["--reconcile-interval=2"],
  });

  const leases = () => wireguardLeases(lab());
  /** The host's lease: its subnet ("10.66.3.0/24"), its etcd key and its value. */
  const leaseOf = async (host: string): Promise<{ subnet: string; key: string; value: WireguardLeaseValue }> => {
    for (const [subnet, value] of await leases()) {
      if (value.PublicIP === lab().host(host).underlayAddress) return { subnet, key: `/coreos.com/network/subnets/${subnet.replace("/", "-")}`, value };
    }
    throw new Error(`no lease of ${host} in etcd`);
  };
  const dump = async (host: string): Promise<WgDump> => parseWgDump((await lab().host(host).exec("wg", ["show", DEVICE, "dump"])).stdout, PSK);
  const peerKeys = async (host: string): Promise<string[]> => (await dump(host)).peers.map((peer) => peer.publicKey).sort();
  const http = (host: string, path: string): Promise<string> => readEndpoint(lab().host(host), path);
  const wireguardGoPid = async (host: string): Promise<number> =>
    Number((await readFile(join(lab().host(host).state.stateDir, `wireguard-go.${DEVICE}.pid`), "utf8")).trim());
  const matrixOk = async (): Promise<boolean> => (await lab().checkTable()).ok;

  it("runs wireguard-go on h1 and h2 and weft's engine on h3, and says so in the log, /readyz and /metrics", async () => {
    for (const [host, implementation] of [["h1", "wireguard-go"], ["h2", "wireguard-go"], ["h3", "userspace"]] as const) {
      expect(await http(host, "/metrics")).toMatch(new RegExp(`^weft_wireguard_implementation\\{implementation="${implementation}"\\} 1$`, "m"));
      expect(await http(host, "/metrics")).toMatch(new RegExp(`^weft_build_info\\{version="[^"]+",backend="wireguard",engine="${implementation}"\\} 1$`, "m"));
      expect(await http(host, "/readyz?verbose")).toContain(`[i] wireguardImplementation ${implementation}`);
      const log = await readFile(lab().host(host).state.logFile, "utf8");
      expect(log.match(/"msg":"wireguard: [^"]*carries the traffic/g), host).toHaveLength(1);
    }
    expect(isAlive(await wireguardGoPid("h1"))).toBe(true);
    const link = (await lab().host("h1").exec("ip", ["-o", "-d", "link", "show", DEVICE])).stdout;
    expect(link).toContain(`mtu ${MTU}`);
    expect(link).toMatch(/\btun\b/);
  });

  it("configures flannel-wg as flanneld does: key, port, /32, the Network route, one peer per lease (PSK, keepalive)", async () => {
    const own = await leaseOf("h1");
    const device = await dump("h1");
    expect(device.device.publicKey).toBe(own.value.BackendData.PublicKey);
    expect(device.device.listenPort).toBe(51820);
    expect(Object.keys(own.value.BackendData)).toEqual(["PublicKey", "Port"]);
    const expected = [];
    for (const [subnet, value] of await leases()) {
      if (subnet === own.subnet) continue;
      expected.push({
        publicKey: value.BackendData.PublicKey, endpoint: `${value.PublicIP}:${value.BackendData.Port}`, allowedIps: [subnet],
        presharedKey: "ours", persistentKeepaliveSeconds: KEEPALIVE,
      });
    }
    const actual = device.peers.map(({ publicKey, endpoint, allowedIps, presharedKey, persistentKeepaliveSeconds }) => ({
      publicKey, endpoint, allowedIps, presharedKey, persistentKeepaliveSeconds,
    }));
    expect(actual.sort((a, b) => a.publicKey.localeCompare(b.publicKey))).toEqual(expected.sort((a, b) => a.publicKey.localeCompare(b.publicKey)));
    const subnet = own.subnet;
    const address = (await lab().host("h1").exec("ip", ["-4", "-o", "addr", "show", "dev", DEVICE])).stdout;
    expect(address).toContain(`inet ${subnet.split("/")[0]}/32`);
    const route = (await lab().host("h1").exec("ip", ["route", "show", "dev", DEVICE])).stdout;
    expect(route).toContain("10.66.0.0/16");
  });

  it("passes lab check both ways between implementations: ping matrix and DF pings at the advertised MTU", async () => {
    const { ok, table } = await lab().checkTable();
    console.log(`wireguard device lab\n${table}`);
    expect(ok, table).toBe(true);
    for (const line of (await lab().host("h1").exec("wg", ["show", DEVICE, "latest-handshakes"])).stdout.trim().split("\n")) {
      expect(Number(line.split(/\s+/)[1]), line).toBeGreaterThan(0);
    }
    // The device's peers on /metrics, read from wg at the scrape.
    const metrics = await http("h1", "/metrics");
    expect(metrics).toMatch(/^weft_wireguard_peers\{state="configured"\} 2$/m);
    expect(metrics).toMatch(/^weft_wireguard_peers\{state="handshaken"\} 2$/m);
  });

  it("transfers 8 MB with matching sha256, wireguard-go → userspace and userspace → wireguard-go", async () => {
    const c1 = lab().container("h1c1");
    const c3 = lab().container("h3c1");
    const there = await verifiedTransfer(c1.namespace, c3.namespace, c3.address!, { bytes: 8 << 20 });
    expect(there.received).toBe(there.sent);
    const back = await verifiedTransfer(c3.namespace, c1.namespace, c1.address!, { bytes: 8 << 20, port: 5203 });
    expect(back.received).toBe(back.sent);
  }, 60_000);

  it("never writes a private key or the PSK into a log or /metrics, and leaves no PSK file behind", async () => {
    for (const host of ["h1", "h2", "h3"]) {
      const key = (await readFile(join(lab().host(host).state.stateDir, "wgkey"), "utf8")).trim();
      for (const other of ["h1", "h2", "h3"]) {
        expect(await readFile(lab().host(other).state.logFile, "utf8")).not.toContain(key);
        expect(await http(other, "/metrics")).not.toContain(key);
      }
      expect(await readFile(lab().host(host).state.logFile, "utf8")).not.toContain(PSK);
    }
    const left = await readdir(tmpdir()).then((names) => names.filter((entry) => entry.startsWith("weft-wg-psk-")));
    expect(left, "PSK directories of `wg set` calls").toEqual([]);
  });

  it("removes a peer from wg within ~1 s of its lease being deleted, and adds it back when the host returns", async () => {
    const h3 = await leaseOf("h3");
    await lab().stopDaemon("h3");
    await lab().etcdctl(["del", h3.key]);
    const started = Date.now();
    await waitUntil("h3's peer gone from h1's and h2's flannel-wg", async () => {
      const [a, b] = await Promise.all([peerKeys("h1"), peerKeys("h2")]);
      return !a.includes(h3.value.BackendData.PublicKey) && !b.includes(h3.value.BackendData.PublicKey);
    }, { timeoutMs: 5000, intervalMs: 50 });
    const ms = Date.now() - started;
    console.log(`peer removal after the lease was deleted: ${ms} ms`);
    expect(ms).toBeLessThan(1500);
    await lab().startDaemon("h3");
    await waitUntil("the mesh whole again", matrixOk, { timeoutMs: 20_000, intervalMs: 500 });
    expect(await peerKeys("h1")).toContain((await leaseOf("h3")).value.BackendData.PublicKey);
  }, 60_000);

  it("follows a key change of a wireguard-go host (new key file, restart): its device and its peers take the new key", async () => {
    const before = (await leaseOf("h2")).value.BackendData.PublicKey;
    await lab().stopDaemon("h2");
    await rm(join(lab().host("h2").state.stateDir, "wgkey"), { force: true });
    await lab().startDaemon("h2");
    const after = (await leaseOf("h2")).value.BackendData.PublicKey;
    expect(after).not.toBe(before);
    expect((await dump("h2")).device.publicKey).toBe(after);
    await waitUntil("h1 holding h2's new key", async () => {
      const keys = await peerKeys("h1");
      return keys.includes(after) && !keys.includes(before);
    }, { timeoutMs: 10_000, intervalMs: 100 });
    await waitUntil("the mesh carrying traffic with h2's new key", matrixOk, { timeoutMs: 20_000, intervalMs: 500 });
  }, 60_000);

  const doctor = (host: string, extra: string[] = []) => doctorOn(lab(), host, extra);

  it("weft doctor lists the device's peers as wg shows them, finds one removed by hand (exit 3), and --repair puts it back", async () => {
    const h2 = await leaseOf("h2");
    const h2Peer = `peer ${h2.value.BackendData.PublicKey} endpoint ${lab().host("h2").underlayAddress}:51820 allowed-ips ${h2.subnet} dev ${DEVICE}`;
    const clean = await doctor("h1");
    expect(clean.exitCode, `${clean.stdout}${clean.stderr}`).toBe(0);
    expect(clean.stdout).toContain(h2Peer);
    // Paused: the daemon would put the peer back before doctor looks.
    await withDaemonPaused(lab().host("h1").state.daemonPid, async () => {
      await lab().host("h1").exec("wg", ["set", DEVICE, "peer", h2.value.BackendData.PublicKey, "remove"]);
      const found = await doctor("h1");
      expect(found.exitCode, `${found.stdout}${found.stderr}`).toBe(3);
      expect(found.stdout).toContain(`add ${h2Peer}`);
      const repaired = await doctor("h1", ["--repair"]);
      expect(repaired.exitCode, `${repaired.stdout}${repaired.stderr}`).toBe(0);
      expect(await peerKeys("h1")).toContain(h2.value.BackendData.PublicKey);
    });
    expect(await matrixOk()).toBe(true);
  }, 60_000);

  it("repairs drift: a peer removed by hand comes back; a deleted device is re-created with its peers", async () => {
    const h2Key = (await leaseOf("h2")).value.BackendData.PublicKey;
    // Paused while the peer goes: the running daemon may repair it before the check below looks.
    await withDaemonPaused(lab().host("h1").state.daemonPid, async () => {
      await lab().host("h1").exec("wg", ["set", DEVICE, "peer", h2Key, "remove"]);
      expect(await peerKeys("h1")).not.toContain(h2Key);
    });
    await waitUntil("reconcile putting h2's peer back on h1", async () => (await peerKeys("h1")).includes(h2Key), { timeoutMs: 10_000, intervalMs: 200 });
    const endpoint = (await dump("h1")).peers.find((peer) => peer.publicKey === h2Key)?.endpoint;
    expect(endpoint).toBe(`${lab().host("h2").underlayAddress}:51820`);

    const oldPid = await wireguardGoPid("h1");
    await lab().host("h1").exec("ip", ["link", "del", DEVICE]);
    await waitUntil("h1's flannel-wg re-created by a new wireguard-go", async () => {
      const pid = await wireguardGoPid("h1").catch(() => 0);
      return pid !== oldPid && pid > 0 && (await dump("h1").then((d) => d.peers.length === 2, () => false));
    }, { timeoutMs: 15_000, intervalMs: 200 });
    expect(isAlive(oldPid)).toBe(false);
    await waitUntil("the mesh whole after the device came back", matrixOk, { timeoutMs: 20_000, intervalMs: 500 });
  }, 60_000);

  it("loses nothing of a 10 ms ping stream while h1's daemon is stopped (SIGTERM) and started again", async () => {
    const pid = await wireguardGoPid("h1");
    const stream = startPingStream(lab().container("h2c1").namespace, lab().container("h1c1").address!);
    await waitUntil("the ping stream running", async () => stream.received() >= 20, { timeoutMs: 5000, intervalMs: 20 });
    await lab().stopDaemon("h1");
    expect(isAlive(pid), "wireguard-go outlives the daemon").toBe(true);
    await lab().startDaemon("h1");
    const sinceStart = stream.received();
    await waitUntil("a second of stream after the restart", async () => stream.received() >= sinceStart + 100, { timeoutMs: 10_000, intervalMs: 50 });
    const result = await stream.stop();
    console.log(`ping stream across the restart: ${result.sent} sent, ${result.lost} lost, longest gap ${result.longestGapMs} ms`);
    expect(result.lost).toBe(0);
    expect(await wireguardGoPid("h1")).toBe(pid);
    const log = await readFile(lab().host("h1").state.logFile, "utf8");
    expect(log).toContain("wireguard: kept the existing device and its peers");
  }, 60_000);

  it("moves h2 to weft's userspace engine and back: the other implementation's device is taken down, the mesh stays whole", async () => {
    const pid = await wireguardGoPid("h2");
    await lab().stopDaemon("h2");
    await lab().startDaemon("h2", undefined, { WEFT_WIREGUARD_IMPLEMENTATION: "userspace" });
    expect(isAlive(pid), "h2's wireguard-go stopped").toBe(false);
    expect(await http("h2", "/readyz?verbose")).toContain("[i] wireguardImplementation userspace");
    await waitUntil("the mesh whole with h2 on userspace", matrixOk, { timeoutMs: 20_000, intervalMs: 500 });
    await lab().stopDaemon("h2");
    await lab().startDaemon("h2", undefined, {});
    expect(await http("h2", "/readyz?verbose")).toContain("[i] wireguardImplementation wireguard-go");
    expect(isAlive(await wireguardGoPid("h2"))).toBe(true);
    await waitUntil("the mesh whole with h2 back on wireguard-go", matrixOk, { timeoutMs: 20_000, intervalMs: 500 });
  }, 90_000);
});
