/**
 * What periodic probing costs the daemon: `node dist/probe/cost-benchmark.js [peers] [interval s] [seconds]`
 * (default 100 peers, 10 s, 60 s). Prints the CPU time the prober used as a share of one core.
 *
 *   <p>-a  prober (this script, re-run inside)  veth 10.199.0.1/30 ─── 10.199.0.2/30 veth  <p>-b
 *                                                                     peers' "PublicIPs" 10.240.x.y/32 and
 *                                                                     "overlay addresses" 10.200-203.x.0/32
 *
 * Every peer answers all four echoes of a round (underlay, path MTU at 1500, small and FLANNEL_MTU
 * overlay echoes); the answers come from namespace b without encapsulation, so the number is the
 * prober's own cost (sending, receiving, matching, metrics), not the kernel's vxlan work.
 * Root only; the namespaces are removed at the end, also on failure.
 */
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { Registry } from "prom-client";
import { sleep } from "../async/sleep.js";
import type { Lease } from "../lease/types.js";
import { Ipv4Subnet } from "../net/ipv4.js";
import { silentLogger } from "../observe/logger.js";
import { runCommand } from "../process/run-command.js";
import { startPeerProbing } from "./peer-prober.js";

const [peersArg, intervalArg, secondsArg] = process.argv.slice(2);
const peers = Number(peersArg ?? 100);
const intervalS = Number(intervalArg ?? 10);
const seconds = Number(secondsArg ?? 60);

/** Peer i's subnet network address (its overlay address): 10.200.0.0, 10.200.1.0, … 10.203.231.0 for 1000 peers. */
function overlayAddress(i: number): string {
  return `10.${200 + (i >> 8)}.${i & 255}.0`;
}

function fakeLeases(count: number): Lease[] {
  return Array.from({ length: count }, (_, i) => ({
    subnet: Ipv4Subnet.parse(overlayAddress(i) + "/24"),
    attrs: { publicIP: `10.240.${Math.floor(i / 250)}.${(i % 250) + 1}`, publicIPv6: null, backendType: "vxlan" },
    key: `/coreos.com/network/subnets/${overlayAddress(i)}-24`,
    reservation: false,
  }));
}

async function measureInside(): Promise<void> {
  const registry = new Registry();
  const probing = startPeerProbing({
    intervalMs: intervalS * 1000,
    backend: { type: "vxlan", options: { Type: "vxlan" } },
    overlayMtu: 1450,
    peers: () => fakeLeases(peers),
    logger: silentLogger(),
    registry,
  });
  // Let the first round warm up (JIT, ARP) before measuring.
  await sleep(Math.min(intervalS * 1000, 5000));
  const before = process.cpuUsage();
  const started = performance.now();
  await sleep(seconds * 1000);
  const used = process.cpuUsage(before);
  const wallMs = performance.now() - started;
  await probing.stop();
  const rounds = (await registry.getSingleMetricAsString("weft_probe_rounds_total")).match(/^weft_probe_rounds_total (\d+)/m)?.[1];
  const ok = (await registry.getSingleMetricAsString("weft_probe_peers")).match(/verdict="ok"} (\d+)/)?.[1];
  const cpuMs = (used.user + used.system) / 1000;
  console.log(`peers ${peers}, interval ${intervalS} s, measured ${(wallMs / 1000).toFixed(1)} s, rounds ${rounds}, peers ok ${ok}`);
  console.log(`prober CPU ${cpuMs.toFixed(1)} ms (user ${(used.user / 1000).toFixed(1)}, system ${(used.system / 1000).toFixed(1)}) = ${((cpuMs / wallMs) * 100).toFixed(3)} % of one core`);
}

async function main(): Promise<void> {
  if (process.env.WEFT_PROBE_COST_INSIDE === "1") return measureInside();
  const prefix = `wpc${randomBytes(2).toString("hex")}`;
  const [a, b] = [`${prefix}-a`, `${prefix}-b`];
  try {
    await runCommand("ip", ["netns", "add", a]);
    await runCommand("ip", ["netns", "add", b]);
    await runCommand("ip", ["-n", a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b]);
    const lines = (ns: string, address: string) => [
      ["-n", ns, "addr", "add", address, "dev", "eth0"],
      ["-n", ns, "link", "set", "eth0", "up"],
      ["-n", ns, "link", "set", "lo", "up"],
    ];
    for (const args of [...lines(a, "10.199.0.1/30"), ...lines(b, "10.199.0.2/30")]) await runCommand("ip", args);
    await runCommand("ip", ["-n", a, "route", "add", "10.200.0.0/14", "via", "10.199.0.2"]);
    await runCommand("ip", ["-n", a, "route", "add", "10.240.0.0/16", "via", "10.199.0.2"]);
    const addresses = fakeLeases(peers).flatMap((lease, i) => [`addr add ${lease.attrs.publicIP}/32 dev eth0`, `addr add ${overlayAddress(i)}/32 dev eth0`]);
    await runCommand("ip", ["-n", b, "-batch", "-"], { input: `${addresses.join("\n")}\n` });
    const child = await runCommand(process.execPath, [fileURLToPath(import.meta.url), String(peers), String(intervalS), String(seconds)], {
      netns: a,
      env: { ...process.env, WEFT_PROBE_COST_INSIDE: "1" },
      timeoutMs: (seconds + intervalS + 30) * 1000,
    });
    process.stdout.write(child.stdout);
  } finally {
    await runCommand("ip", ["netns", "del", a], { allowFailure: true });
    await runCommand("ip", ["netns", "del", b], { allowFailure: true });
  }
}

await main();
