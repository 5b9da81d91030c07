/*
 * An operator's key rotation without a restart, in a 2-host weft wireguard lab: a new key file
 * on h2 (written beside it and renamed over it, as `wg genkey > tmp && mv tmp wgkey` does) while
 * h1's container pings h2's every 10 ms. h2's daemon takes the key from the file, its lease
 * carries the new PublicKey, h1 follows; the stream loses at most a handshake's worth. Then
 * bad files (readable by others; not a key): warned about by name, the key in use stays.
 *
 *                      <p>-ul  bridge ul0, 192.168.77.0/24
 *        +---------------+-----------------+
 *   <p>-etcd .2     <p>-h1 .11        <p>-h2 .12
 *   real etcd       weft run          weft run (key file watched: rotated here)
 *                   flannel-wg (TUN, userspace WireGuard, udp/51820), MTU 1420
 *                   docker0 .1        docker0 .1
 *                      |                 |
 *                   <p>-h1c1 ~~~~~~> <p>-h2c1   ping every 10 ms
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { waitUntil } from "../../../src/lab/readiness.js";
import { startPingStream } from "../../../src/lab/ping-stream.js";
import { generateStaticKeys } from "../../../src/engine/wireguard/noise.js";
import { sleep } from "../../../src/async/sleep.js";
import { readMetrics } from "../../support/lab-metrics.js";
import { useLab } from "../../support/lab.js";
import { replaceKeyFile } from "./key-rotation-lab.js";

/** The daemon looks at the key file every 2 s (key-watch.ts): a bad file is judged within this. */
const KEY_WATCH_SETTLE_MS = 5000;

describe("wireguard key rotation without a restart (2-host weft lab)", () => {
  const lab = useLab("wgr", { hosts: 2, containersPerHost: 1, backend: "wireguard" });
  const keyFile = (host: string) => join(lab().host(host).state.stateDir, "wgkey");
  const publicKeyInLease = async (host: string): Promise<string> => {
    const listed = await lab().etcdctl(["get", "--prefix", "/coreos.com/network/subnets/"]);
    const values = listed.stdout.trim().split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line));
    const lease = values.find((value) => value.PublicIP === lab().host(host).underlayAddress);
    if (!lease) throw new Error(`no lease of ${host} in etcd:\n${listed.stdout}`);
    return lease.BackendData.PublicKey as string;
  };
  const handshakesOf = async (host: string): Promise<number> => {
    const metrics = (await readMetrics(lab().host(host)));
    return Number(/^weft_wireguard_handshakes_total (\d+)$/m.exec(metrics)?.[1]);
  };
  const h2Log = async () => readFile(lab().host("h2").state.logFile, "utf8");
  const target = () => {
    const address = lab().container("h2c1").address;
    if (!address) throw new Error("h2c1 has no address");
    return address;
  };

  it("takes a new key file on h2 during a 10 ms ping stream: new PublicKey in the lease, at most a handshake's worth lost", async () => {
    const before = await publicKeyInLease("h2");
    const { ok, table } = await lab().checkTable(); // every pair has handshaken
    expect(ok, table).toBe(true);
    const handshakesBefore = await handshakesOf("h1");
    const stream = startPingStream(lab().container("h1c1").namespace, target(), 10);
    await waitUntil("the ping stream running", async () => stream.received() >= 100, { timeoutMs: 10_000, intervalMs: 100 });
    const rotated = generateStaticKeys();
    const expected = rotated.publicKey.toString("base64");
    const rotatedAt = Date.now();
    await replaceKeyFile(keyFile("h2"), `${rotated.privateKey.toString("base64")}\n`, 0o400);
    await waitUntil("h2's lease carrying the new PublicKey", async () => (await publicKeyInLease("h2")) === expected, { timeoutMs: 15_000, intervalMs: 100 });
    const leaseAfterMs = Date.now() - rotatedAt;
    // Long enough after the switch for h1 and h2 to have handshaken with the new key and the 1 s
    // rotation handshake to have run.
    await sleep(3000);
    const result = await stream.stop();
    console.log(
      `key rotation: lease had the new key ${leaseAfterMs} ms after the file changed; ping stream ${result.sent} sent, ` +
        `${result.received} received, ${result.lost} lost, longest gap ${result.longestGapMs} ms`,
    );
    expect(before).not.toBe(expected);
    // The stream went on over sessions of the new key: h1 dropped the old key's with its lease.
    expect(await handshakesOf("h1")).toBeGreaterThan(handshakesBefore);
    expect(result.received).toBeGreaterThan(300);
    // One handshake is a round trip plus two handshake computations: tens of ms on a loaded
    // machine. A missed switch costs a REKEY_TIMEOUT (5 s, 500 echoes) or more.
    expect(result.lost).toBeLessThanOrEqual(20);
    expect(result.longestGapMs).toBeLessThan(500);
    const log = await h2Log();
    expect(log).toContain("the key file holds a new key");
    expect(log).not.toContain(rotated.privateKey.toString("base64"));
    const after = await lab().checkTable();
    expect(after.ok, after.table).toBe(true);
  }, 90_000);

  it("keeps the key in use when the new file is readable by others or not a key, and says so naming the file", async () => {
    const inUse = await publicKeyInLease("h2");
    const exposed = generateStaticKeys().privateKey.toString("base64");
    await replaceKeyFile(keyFile("h2"), `${exposed}\n`, 0o644);
    await waitUntil("the warning about the mode", async () => /lets group or others read the private key/.test(await h2Log()), { timeoutMs: KEY_WATCH_SETTLE_MS * 2, intervalMs: 200 });
    const garbage = "this-is-not-a-wireguard-key-0123456789abcdef";
    await replaceKeyFile(keyFile("h2"), garbage, 0o400);
    await waitUntil("the warning about the content", async () => /not a WireGuard key[^\n]*keeping the key in use/.test(await h2Log()), { timeoutMs: KEY_WATCH_SETTLE_MS * 2, intervalMs: 200 });
    const log = await h2Log();
    expect(log).toContain(keyFile("h2"));
    expect(log).not.toContain(exposed);
    expect(log).not.toContain(garbage);
    expect(await publicKeyInLease("h2")).toBe(inUse);
    const { ok, table } = await lab().checkTable();
    expect(ok, table).toBe(true);
  }, 60_000);
});
