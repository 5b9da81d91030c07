/**
 * weft's wireguard device path in Mode "separate" on a dual-stack network against a peer set up
 * by hand the way flanneld's wireguard backend (device.go, wireguard_network.go) sets up its two
 * devices: flannel-wg on ListenPort with the IPv4 subnet address /32 and the Network route,
 * flannel-wg-v6 on ListenPortV6 with the IPv6 subnet address /128 and the IPv6Network route, one
 * key file for both, one peer per device (endpoint PublicIP:Port / [PublicIPv6]:Port, AllowedIPs
 * the subnet of that family). weft gets that peer's lease as flanneld writes it (BackendData and
 * BackendV6Data). Device names are unique per run: wg's sockets in /run/wireguard are shared by
 * every namespace on the machine. At the end `weft cleanup` stops both of weft's wireguard-go.
 *
 *        <p>a  (weft, wireguard-go started by weft)         <p>b  (flanneld's layout by hand)
 *   +-----------------------------------------+      +-----------------------------------------+
 *   | <p>wg    10.70.1.0/32, 10.70.0.0/16     |      | <p>fw    10.70.2.0/32, 10.70.0.0/16     |
 *   |          udp/51820                      |      |          udp/51820                      |
 *   | <p>wg-v6 fd70:0:0:1::/128, fd70::/48    |      | <p>fw-v6 fd70:0:0:2::/128, fd70::/48    |
 *   |          udp/51821                      |      |          udp/51821                      |
 *   | ul0 192.168.90.1/24, fd70:90::1/64 -----+-veth-+----- ul0 192.168.90.2/24, fd70:90::2/64 |
 *   +-----------------------------------------+      +-----------------------------------------+
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWireguardBackend, type WireguardBackend } from "../../../src/backend/wireguard/wireguard-backend.js";
import { cleanupHost } from "../../../src/commands/cleanup.js";
import { runningWireguardGo } from "../../../src/kernel/wireguard-go.js";
import { WireguardDevice } from "../../../src/kernel/wireguard-device.js";
import { execInNamespace, ipBatch } from "../../../src/lab/netns.js";
import { isAlive, terminatePids } from "../../../src/process/pids.js";
import { NETWORK, NETWORK6, SUBNET_A, SUBNET_B, SUBNET6_A, SUBNET6_B, TUN_A, TUN_B, TUN6_A, TUN6_B, UNDERLAY_A, UNDERLAY_B, UNDERLAY6_A, UNDERLAY6_B, addIpv6Underlay, createTwoHosts, ping, type TwoHosts } from "../../engine/two-hosts.js";
import { newWireguardGoKey, startFlannelStyleWireguardGo, startWireguardGoRetryingUapi, type RunningWireguardGo } from "../../support/wireguard-go.js";
import { backendContext, lease } from "../kernel-fixtures.js";

const MTU = 1500 - 80;

let hosts: TwoHosts;
let dir: string;
let stateDir: string;
let backend: WireguardBackend;
let weftDevices: { v4: string; v6: string };
let weftKey: string;
let flannel: { v4: RunningWireguardGo; v6: RunningWireguardGo } | undefined;

beforeAll(async () => {
  hosts = await createTwoHosts();
  await addIpv6Underlay(hosts);
  dir = await mkdtemp(join(tmpdir(), "weft-wg6-interop-"));
  stateDir = await mkdtemp(join(tmpdir(), "weft-wg6-interop-state-"));
  weftDevices = { v4: `${hosts.prefix}wg`, v6: `${hosts.prefix}wg-v6` };

  // The flanneld side: one key file, two wireguard-go devices, each addressed and routed by family.
  const goKey = await newWireguardGoKey(hosts.b, dir, "flannel-key");
  const v4 = await startFlannelStyleWireguardGo({
    namespace: hosts.b, device: `${hosts.prefix}fw`, dir, listenPort: 51820, keyFile: "flannel-key", address: TUN_B, network: NETWORK.toString(), mtu: MTU,
  });
  // flannel-wg-v6 as flanneld's ConfigureV6 leaves it: the IPv6 subnet address /128 and the IPv6Network route.
  const v6Device = `${hosts.prefix}fw-v6`;
  const v6Pid = await startWireguardGoRetryingUapi(new WireguardDevice(v6Device, hosts.b), dir);
  const v6: RunningWireguardGo = { device: v6Device, wg: v4.wg, stop: () => terminatePids([v6Pid], 2000) };
  flannel = { v4, v6 };
  await v6.wg(["set", v6Device, "private-key", join(dir, "flannel-key"), "listen-port", "51821"]);
  await ipBatch(hosts.b, [
    `address add ${TUN6_B}/128 dev ${v6Device} nodad`,
    `link set ${v6Device} mtu ${MTU} up`,
    `route add ${NETWORK6.toString()} dev ${v6Device}`,
  ]);

  // The weft side, through the backend's own choice and start.
  const context = await backendContext(
    { Type: "wireguard", Implementation: "wireguard-go", TunName: weftDevices.v4 },
    { name: "ul0", address: UNDERLAY_A, addressV6: UNDERLAY6_A },
    stateDir,
    { Network: NETWORK.toString(), EnableIPv6: true, IPv6Network: NETWORK6.toString() },
  );
  backend = createWireguardBackend(context, { netns: hosts.a, env: {}, keyFile: join(dir, "weft-key") });
  const registration = await backend.register();
  const attrs = registration.attrs as { backendData: { PublicKey: string; Port: number }; backendV6Data: { PublicKey: string; Port: number } };
  weftKey = attrs.backendData.PublicKey;
  expect(attrs.backendV6Data).toEqual({ PublicKey: weftKey, Port: 51821 });
  await backend.activate(lease(SUBNET_A.toString(), { publicIP: UNDERLAY_A, publicIPv6: UNDERLAY6_A, ...registration.attrs }, SUBNET6_A.toString()));
  await backend.applyPeers([{
    kind: "added",
    lease: lease(SUBNET_B.toString(), {
      publicIP: UNDERLAY_B, publicIPv6: UNDERLAY6_B, backendType: "wireguard",
      backendData: { PublicKey: goKey, Port: 51820 }, backendV6Data: { PublicKey: goKey, Port: 51821 },
    }, SUBNET6_B.toString()),
  }]);

  // flanneld's peers for weft's lease, one per device.
  await v4.wg(["set", v4.device, "peer", weftKey, "endpoint", `${UNDERLAY_A}:51820`, "allowed-ips", SUBNET_A.toString()]);
  await v6.wg(["set", v6.device, "peer", weftKey, "endpoint", `[${UNDERLAY6_A}]:51821`, "allowed-ips", SUBNET6_A.toString()]);
}, 40_000);

afterAll(async () => {
  await backend?.stop();
  if (stateDir && hosts) await cleanupHost({ dryRun: false, netns: hosts.a, stateDir }).catch(() => undefined);
  await flannel?.v4.stop();
  await flannel?.v6.stop();
  await hosts?.destroy();
  for (const path of [dir, stateDir]) if (path) await rm(path, { recursive: true, force: true });
});

describe("weft wireguard-go, Mode separate ⇄ flanneld's two-device layout (wireguard-go + wg + ip)", () => {
  it("weft's flannel-wg-v6 holds flanneld's peer at [PublicIPv6]:ListenPortV6 with its IPv6 subnet", async () => {
    const dump = (await execInNamespace(hosts.a, "wg", ["show", weftDevices.v6, "dump"])).stdout.trim().split("\n");
    expect(dump[0]?.split("\t")[2]).toBe("51821");
    const peer = dump[1]?.split("\t") ?? [];
    expect([peer[2], peer[3]]).toEqual([`[${UNDERLAY6_B}]:51821`, SUBNET6_B.toString()]);
  });

  it("pings IPv4 both ways (flannel-wg ⇄ flannel-wg)", async () => {
    await ping(hosts.b, TUN_A, { count: 2, timeoutSeconds: 2 }); // the first request waits for the handshake
    const ba = await ping(hosts.b, TUN_A, { count: 5 });
    expect(ba.received, ba.output).toBe(5);
    const ab = await ping(hosts.a, TUN_B, { count: 5 });
    expect(ab.received, ab.output).toBe(5);
  });

  it("pings IPv6 both ways (flannel-wg-v6 ⇄ flannel-wg-v6), weft initiating first", async () => {
    await ping(hosts.a, TUN6_B, { count: 2, timeoutSeconds: 2 });
    const ab = await ping(hosts.a, TUN6_B, { count: 5 });
    expect(ab.received, ab.output).toBe(5);
    const ba = await ping(hosts.b, TUN6_A, { count: 5 });
    expect(ba.received, ba.output).toBe(5);
    const shown = await flannel?.v6.wg(["show", flannel.v6.device, "latest-handshakes"]);
    expect(Number(shown?.trim().split(/\s+/)[1])).toBeGreaterThan(0);
  });

  it("carries DF pings at the advertised MTU over IPv6, and not one byte more", async () => {
    const ab = await ping(hosts.a, TUN6_B, { count: 2, size: MTU - 48, dontFragment: true });
    expect(ab.received, ab.output).toBe(2);
    const tooBig = await ping(hosts.a, TUN6_B, { count: 1, size: MTU - 47, dontFragment: true });
    expect(tooBig.received).toBe(0);
  });

  it("`weft cleanup` stops both wireguard-go weft started, and their devices go", async () => {
    const pids = [await runningWireguardGo(stateDir, weftDevices.v4), await runningWireguardGo(stateDir, weftDevices.v6)];
    expect(pids.every((pid) => pid !== undefined && isAlive(pid))).toBe(true);
    await backend.stop();
    const done = await cleanupHost({ dryRun: false, netns: hosts.a, stateDir });
    for (const device of [weftDevices.v4, weftDevices.v6]) expect(done).toContainEqual(expect.stringContaining(`and with it device ${device}`));
    expect(pids.some((pid) => isAlive(pid as number))).toBe(false);
    const links = (await execInNamespace(hosts.a, "ip", ["-o", "link", "show"])).stdout;
    expect(links).not.toContain(weftDevices.v4);
  });
});
