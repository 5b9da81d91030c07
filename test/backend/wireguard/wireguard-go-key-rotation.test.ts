/*
 * An operator's key rotation without a restart on the wireguard backend's device path
 * (Implementation "wireguard-go"; the kernel device is configured by the same wg calls, and this
 * kernel has no WireGuard): a new key file on h1, written beside it and renamed over it, while
 * 10 ms ping streams cross h1. h1's daemon gives flannel-wg the new key through wg (peers and
 * endpoints stay), re-advertises its lease, the other hosts' peers follow; neither the daemon
 * nor wireguard-go restarts. Then bad files (readable by others, not a key) are refused by name
 * and the key in use stays, also in a device that reconcile re-creates meanwhile. Last, h2 as
 * flanneld follows a key (its daemon stopped, its device updated by hand, no handshake of its
 * own): h1 initiates to it a second after the lease carried the new key.
 *
 *                      <p>-ul  bridge ul0, 192.168.77.0/24
 *        +---------------+-----------------+-----------------+
 *   <p>-etcd .2     <p>-h1 .11        <p>-h2 .12        <p>-h3 .13
 *   real etcd       weft run          weft run          weft run
 *                   wireguard-go      wireguard-go      userspace engine
 *                   (key rotated)
 *                   flannel-wg (udp/51820), MTU 1420 on every host
 *                   docker0 .1        docker0 .1        docker0 .1
 *                      |                 |                 |
 *                   <p>-h1c1 <~~~~~~> <p>-h2c1          <p>-h3c1
 *                        \~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~^     ping streams, every 10 ms
 *
 * Mode "separate" with IPv6 (both devices re-keyed): wireguard-go-key-rotation-ipv6.test.ts.
 */
import { readdir, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { describe, expect, it } from "vitest";
import { waitUntil } from "../../../src/lab/readiness.js";
import { startPingStream, type PingStream, type PingStreamResult } from "../../../src/lab/ping-stream.js";
import { generateStaticKeys } from "../../../src/engine/wireguard/noise.js";
import { isAlive } from "../../../src/process/pids.js";
import { sleep } from "../../../src/async/sleep.js";
import { metricSum, readMetrics } from "../../support/lab-metrics.js";
import { KEY_WATCH_MS, MAX_GAP_MS, MAX_LOST_PER_STREAM, V4, describeStream, labTools, peerSettings, replaceKeyFile } from "./key-rotation-lab.js";
import { useLab } from "../../support/lab.js";

/** Rotations per run: each is one loss sample per stream. */
const ROTATIONS = 3;

describe("key rotation without a restart on the device path (wireguard-go), 3-host lab", () => {
  const lab = useLab("wgk", {
    hosts: 3, containersPerHost: 1, backend: "wireguard",
    backendOptions: { Implementation: "wireguard-go" },
    daemonEnv: { h3: { WEFT_WIREGUARD_IMPLEMENTATION: "userspace" } },
    // A reconcile pass every 2 s: one that held the devices to the old key would show within a rotation.
    daemonArgs: ["--reconcile-interval=2"],
  });
  const tools = labTools(lab);

  it(`rotates h1's key ${ROTATIONS} times under 10 ms ping streams: device, lease and peers take it, no restart, at most a handshake's worth lost`, async () => {
    const { ok, table } = await lab().checkTable(); // every pair has handshaken
    expect(ok, table).toBe(true);
    const daemonPid = tools.daemonPid("h1");
    const goPid = await tools.wireguardGoPid("h1");
    const peersBefore = peerSettings(await tools.dump("h1"));
    const privateKeys = [(await readFile(tools.keyFile("h1"), "utf8")).trim()];
    const results: PingStreamResult[] = [];
    for (let round = 1; round <= ROTATIONS; round++) {
      const before = (await tools.leaseOf("h1")).BackendData.PublicKey;
      const streams: [string, PingStream][] = [
        ["h1c1 -> h2c1 (wireguard-go peer)", startPingStream(lab().container("h1c1").namespace, tools.containerAddress("h2c1"))],
        ["h2c1 -> h1c1", startPingStream(lab().container("h2c1").namespace, tools.containerAddress("h1c1"))],
        ["h1c1 -> h3c1 (userspace peer)", startPingStream(lab().container("h1c1").namespace, tools.containerAddress("h3c1"))],
      ];
      await waitUntil("the ping streams running", async () => streams.every(([, stream]) => stream.received() >= 100), { timeoutMs: 10_000, intervalMs: 50 });
      const rotated = generateStaticKeys();
      const expected = rotated.publicKey.toString("base64");
      privateKeys.push(rotated.privateKey.toString("base64"));
      const rotatedAt = Date.now();
      await replaceKeyFile(tools.keyFile("h1"), `${rotated.privateKey.toString("base64")}\n`, 0o400);
      await waitUntil("h1's lease carrying the new PublicKey", async () => (await tools.leaseOf("h1")).BackendData.PublicKey === expected, { timeoutMs: 15_000, intervalMs: 50 });
      const leaseAfterMs = Date.now() - rotatedAt;
      await waitUntil("h2's device peer following h1's new key", async () => {
        const keys = (await tools.dump("h2")).peers.map((peer) => peer.publicKey);
        return keys.includes(expected) && !keys.includes(before);
      }, { timeoutMs: 10_000, intervalMs: 50 });
      // Past the second-later re-initiation and a reconcile pass that would put an old key back.
      await sleep(3000);
      for (const [what, stream] of streams) {
        const result = await stream.stop();
        results.push(result);
        console.log(`rotation ${round}, lease ${leaseAfterMs} ms after the file: ${describeStream(what, result)}`);
      }

      expect((await tools.dump("h1")).device.publicKey).toBe(expected);
      const h2Peer = (await tools.dump("h2")).peers.find((peer) => peer.publicKey === expected);
      expect(h2Peer?.endpoint).toBe(`${lab().host("h1").underlayAddress}:51820`);
      expect(h2Peer?.latestHandshakeSeconds, "h2 handshaken with h1's new key").toBeGreaterThanOrEqual(Math.floor(rotatedAt / 1000) - 1);
      expect(metricSum(await readMetrics(lab().host("h1")), "weft_wireguard_key_rotations_total", { result: "taken" })).toBe(round);
    }

    expect(tools.daemonPid("h1"), "no restart of h1's daemon").toBe(daemonPid);
    expect(isAlive(daemonPid)).toBe(true);
    expect(await tools.wireguardGoPid("h1"), "h1's wireguard-go kept").toBe(goPid);
    expect(isAlive(goPid)).toBe(true);
    // Peers and endpoints as they were (the devices of h2 and h3 kept their keys).
    expect(peerSettings(await tools.dump("h1"))).toEqual(peersBefore);
    const log = await tools.log("h1");
    expect(log.match(/"msg":"wireguard: [^"]*carries the traffic/g), "one start").toHaveLength(1);
    expect(log.match(/the key file holds a new key/g)).toHaveLength(ROTATIONS);
    expect(log).not.toMatch(/repairing the WireGuard device that drifted/);
    for (const host of ["h1", "h2", "h3"]) {
      const text = await tools.log(host);
      for (const key of privateKeys) expect(text, `${host}'s log`).not.toContain(key);
      for (const key of privateKeys) expect(await readMetrics(lab().host(host)), `${host}'s /metrics`).not.toContain(key);
    }
    // The key went to wg through a file of its own, removed when wg returned.
    expect((await readdir(tmpdir())).filter((entry) => entry.startsWith("weft-wg-private-key-"))).toEqual([]);
    for (const result of results) {
      expect(result.received).toBeGreaterThan(300);
      expect(result.lost).toBeLessThanOrEqual(MAX_LOST_PER_STREAM);
      expect(result.longestGapMs).toBeLessThan(MAX_GAP_MS);
    }
    const after = await lab().checkTable();
    expect(after.ok, after.table).toBe(true);
  }, 120_000);

  it("refuses a new file readable by others and one that is not a key, naming the file; the key in use stays and traffic goes on", async () => {
    const inUse = (await tools.leaseOf("h1")).BackendData.PublicKey;
    const refusedBefore = metricSum(await readMetrics(lab().host("h1")), "weft_wireguard_key_rotations_total", { result: "refused" });
    const stream = startPingStream(lab().container("h1c1").namespace, tools.containerAddress("h2c1"));
    await waitUntil("the ping stream running", async () => stream.received() >= 50, { timeoutMs: 10_000, intervalMs: 50 });
    const exposed = generateStaticKeys().privateKey.toString("base64");
    await replaceKeyFile(tools.keyFile("h1"), `${exposed}\n`, 0o644);
    await waitUntil("the warning about the mode", async () => /lets group or others read the private key[^\n]*keeping the key in use/.test(await tools.log("h1")), { timeoutMs: KEY_WATCH_MS * 4, intervalMs: 100 });
    const garbage = "this-is-not-a-wireguard-key-0123456789abcdef";
    await replaceKeyFile(tools.keyFile("h1"), garbage, 0o400);
    await waitUntil("the warning about the content", async () => /not a WireGuard key[^\n]*keeping the key in use/.test(await tools.log("h1")), { timeoutMs: KEY_WATCH_MS * 4, intervalMs: 100 });
    await sleep(2500); // a reconcile pass with the garbage in the file
    const result = await stream.stop();
    console.log(describeStream("bad key files on h1, h1c1 -> h2c1", result));
    expect(result.lost).toBe(0);

    const log = await tools.log("h1");
    const warnings = log.split("\n").filter((line) => line.includes("keeping the key in use"));
    expect(warnings.length).toBeGreaterThanOrEqual(2);
    for (const warning of warnings) expect(warning).toContain(tools.keyFile("h1"));
    expect(log).not.toContain(exposed);
    expect(log).not.toContain(garbage);
    expect((await tools.leaseOf("h1")).BackendData.PublicKey).toBe(inUse);
    expect((await tools.dump("h1")).device.publicKey).toBe(inUse);
    expect((await tools.dump("h2")).peers.map((peer) => peer.publicKey)).toContain(inUse);
    expect(metricSum(await readMetrics(lab().host("h1")), "weft_wireguard_key_rotations_total", { result: "refused" })).toBe(refusedBefore + 2);
  }, 60_000);

  it("re-creates a deleted device with the key in use, not the refused file's, and the mesh carries traffic", async () => {
    const inUse = (await tools.leaseOf("h1")).BackendData.PublicKey;
    const oldPid = await tools.wireguardGoPid("h1");
    await lab().host("h1").exec("ip", ["link", "del", V4]);
    await waitUntil("h1's flannel-wg re-created by a new wireguard-go with its peers", async () => {
      const pid = await tools.wireguardGoPid("h1").catch(() => 0);
      return pid !== oldPid && pid > 0 && (await tools.dump("h1").then((dump) => dump.peers.length === 2, () => false));
    }, { timeoutMs: 15_000, intervalMs: 200 });
    expect((await tools.dump("h1")).device.publicKey).toBe(inUse);
    await waitUntil("the mesh whole after the device came back", async () => (await lab().checkTable()).ok, { timeoutMs: 20_000, intervalMs: 500 });
  }, 60_000);

  it("initiates to a peer that follows the new key without a handshake of its own (flanneld's way) a second after the lease carried it", async () => {
    const h1Before = (await tools.leaseOf("h1")).BackendData.PublicKey;
    const h1Subnet = (await tools.dump("h2")).peers.find((peer) => peer.publicKey === h1Before)?.allowedIps;
    if (!h1Subnet) throw new Error("h2's device has no peer for h1");
    // h2's device, its wireguard-go and its peers stay; from now on the test configures it.
    await lab().stopDaemon("h2");
    const stream = startPingStream(lab().container("h1c1").namespace, tools.containerAddress("h2c1"));
    await waitUntil("the ping stream running", async () => stream.received() >= 100, { timeoutMs: 10_000, intervalMs: 50 });
    const rotated = generateStaticKeys();
    const expected = rotated.publicKey.toString("base64");
    await replaceKeyFile(tools.keyFile("h1"), `${rotated.privateKey.toString("base64")}\n`, 0o400);
    await waitUntil("h1's lease carrying the new PublicKey", async () => (await tools.leaseOf("h1")).BackendData.PublicKey === expected, { timeoutMs: 15_000, intervalMs: 20 });
    await lab().host("h2").exec("wg", ["set", V4, "peer", h1Before, "remove", "peer", expected, "endpoint", `${lab().host("h1").underlayAddress}:51820`, "allowed-ips", h1Subnet.join(",")]);
    await waitUntil("h1 initiating to h2 again", async () => (await tools.log("h1")).includes("initiated handshakes with the rotated key"), { timeoutMs: 5000, intervalMs: 100 });
    await sleep(1500);
    const result = await stream.stop();
    console.log(describeStream("h1c1 -> h2c1, h2 following by hand", result));
    const h2Peer = (await tools.dump("h2")).peers.find((peer) => peer.publicKey === expected);
    expect(h2Peer?.latestHandshakeSeconds, "h2 handshaken with h1's new key").toBeGreaterThan(0);
    // One second and a handshake, not REKEY_TIMEOUT (5 s): the packets staged until then are dropped with the peer configured again.
    // Measured 61-68 lost, gaps 1.08-1.14 s (docs/wireguard.md); without it ~500 lost, REKEY_TIMEOUT.
    expect(result.longestGapMs).toBeLessThan(2500);
    expect(result.lost).toBeLessThan(150);
    await lab().startDaemon("h2");
    await waitUntil("the mesh whole with h2's daemon back", async () => (await lab().checkTable()).ok, { timeoutMs: 20_000, intervalMs: 500 });
  }, 60_000);
});
