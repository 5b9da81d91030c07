/*
 * An operator's key rotation without a restart on the device path in Mode "separate"
 * (wireguard-go; the kernel device is configured by the same wg calls): a dual-stack 2-host lab,
 * a new key file on h1 while IPv4 and IPv6 pings cross it. Both of h1's devices, flannel-wg and
 * flannel-wg-v6 (two wireguard-go), take the new key, BackendData and BackendV6Data carry it,
 * h2's peers on both devices follow; no restart of the daemon or of either wireguard-go.
 *
 *                      <p>-ul  bridge ul0, 192.168.77.0/24 and fd77::/64
 *        +---------------+-----------------------+-----------------------+
 *   <p>-etcd .2     <p>-h1 .11 fd77::11       <p>-h2 .12 fd77::12
 *   real etcd       weft run (key rotated)    weft run
 *                   flannel-wg    udp/51820 (IPv4 subnets)
 *                   flannel-wg-v6 udp/51821 (IPv6 subnets)
 *                   docker0 10.66.x.1/24 and fd66:0:0:x::1/64
 *                      |                         |
 *                   <p>-h1c1 ~~~~~~~~~~~~~~~> <p>-h2c1   IPv4 and IPv6 pings, every 10 ms
 */
import { describe, expect, it } from "vitest";
import { waitUntil } from "../../../src/lab/readiness.js";
import { startPingStream } from "../../../src/lab/ping-stream.js";
import { generateStaticKeys } from "../../../src/engine/wireguard/noise.js";
import { isAlive } from "../../../src/process/pids.js";
import { sleep } from "../../../src/async/sleep.js";
import { MAX_GAP_MS, MAX_LOST_PER_STREAM, V4, V6, describeStream, labTools, peerSettings, pingCount, replaceKeyFile } from "./key-rotation-lab.js";
import { useLab } from "../../support/lab.js";

describe('key rotation without a restart in Mode "separate" (flannel-wg and flannel-wg-v6), dual-stack 2-host lab', () => {
  const ipv6Network = "fd66::/48";
  const lab = useLab("wgk6", {
    hosts: 2, containersPerHost: 1, backend: "wireguard", ipv6: true, ipv6Network,
    networkConfig: { Network: "10.66.0.0/16", EnableIPv6: true, IPv6Network: ipv6Network, Backend: { Type: "wireguard", Implementation: "wireguard-go" } },
    daemonArgs: ["--reconcile-interval=2"],
  });
  const tools = labTools(lab);

  it("gives both devices the new key, advertises it in BackendData and BackendV6Data, h2's peers on both follow, IPv4 and IPv6 go on", async () => {
    const { ok, table } = await lab().checkTable();
    expect(ok, table).toBe(true);
    const before = await tools.leaseOf("h1");
    expect(before.BackendV6Data?.PublicKey).toBe(before.BackendData.PublicKey);
    const daemonPid = tools.daemonPid("h1");
    const goPids = [await tools.wireguardGoPid("h1", V4), await tools.wireguardGoPid("h1", V6)];
    const peersBefore = [peerSettings(await tools.dump("h1", V4)), peerSettings(await tools.dump("h1", V6))];
    const targetV6 = lab().container("h2c1").state.addressV6;
    if (!targetV6) throw new Error("h2c1 has no IPv6 address");

    const v4 = startPingStream(lab().container("h1c1").namespace, tools.containerAddress("h2c1"));
    // 800 pings every 10 ms: about 8 s, across the rotation.
    const v6 = pingCount(lab().container("h1c1").namespace, targetV6, 800);
    await waitUntil("the IPv4 ping stream running", async () => v4.received() >= 100, { timeoutMs: 10_000, intervalMs: 50 });
    const rotated = generateStaticKeys();
    const expected = rotated.publicKey.toString("base64");
    await replaceKeyFile(tools.keyFile("h1"), `${rotated.privateKey.toString("base64")}\n`, 0o400);
    await waitUntil("h1's lease carrying the new key in both halves", async () => {
      const lease = await tools.leaseOf("h1");
      return lease.BackendData.PublicKey === expected && lease.BackendV6Data?.PublicKey === expected;
    }, { timeoutMs: 15_000, intervalMs: 50 });
    await waitUntil("h2's peers on both devices following", async () =>
      (await tools.dump("h2", V4)).peers.some((peer) => peer.publicKey === expected) && (await tools.dump("h2", V6)).peers.some((peer) => peer.publicKey === expected),
    { timeoutMs: 10_000, intervalMs: 50 });
    const [v6Result, v4Result] = await Promise.all([v6, sleep(3000).then(() => v4.stop())]);
    console.log(`Mode separate: ${describeStream("IPv4 h1c1 -> h2c1", v4Result)}; IPv6 h1c1 -> h2c1: ${v6Result.sent} sent, ${v6Result.received} received, ${v6Result.sent - v6Result.received} lost`);

    const lease = await tools.leaseOf("h1");
    expect(lease.BackendData).toEqual({ PublicKey: expected, Port: 51820 });
    expect(lease.BackendV6Data).toEqual({ PublicKey: expected, Port: 51821 });
    for (const device of [V4, V6]) expect((await tools.dump("h1", device)).device.publicKey, device).toBe(expected);
    for (const device of [V4, V6]) expect((await tools.dump("h2", device)).peers.map((peer) => peer.publicKey), `h2's ${device}`).not.toContain(before.BackendData.PublicKey);
    expect([peerSettings(await tools.dump("h1", V4)), peerSettings(await tools.dump("h1", V6))]).toEqual(peersBefore);
    expect(tools.daemonPid("h1")).toBe(daemonPid);
    expect(isAlive(daemonPid)).toBe(true);
    expect([await tools.wireguardGoPid("h1", V4), await tools.wireguardGoPid("h1", V6)]).toEqual(goPids);
    expect(goPids.every((pid) => isAlive(pid))).toBe(true);
    expect(v4Result.lost).toBeLessThanOrEqual(MAX_LOST_PER_STREAM);
    expect(v4Result.longestGapMs).toBeLessThan(MAX_GAP_MS);
    expect(v6Result.sent - v6Result.received).toBeLessThanOrEqual(MAX_LOST_PER_STREAM);
    expect(await tools.log("h1")).not.toContain(rotated.privateKey.toString("base64"));
    const after = await lab().checkTable();
    expect(after.ok, after.table).toBe(true);
  }, 90_000);
});
