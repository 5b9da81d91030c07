import { execInNamespace } from "./netns.js";

/**
 * `weft bench --link RATE`: the lab's underlay shaped like a real NIC. A token bucket (tc tbf)
 * on each host's underlay interface limits what that host sends; every packet between two hosts
 * leaves one of them, so both directions are shaped once. Removed with the namespace.
 */

const UNITS: Readonly<Record<string, number>> = { bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9, tbit: 1e12 };

/** "10gbit" → 1e10 bits/s; the units tc itself accepts for a rate, in bits. */
export function parseLinkRate(text: string, flag = "--link"): number {
  const match = /^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit|tbit)$/i.exec(text.trim());
  const bits = match ? Number(match[1]) * (UNITS[(match[2] as string).toLowerCase()] as number) : NaN;
  if (!match || !(bits >= 1e5)) {
    throw new Error(`${flag} "${text}": expected a rate of at least 100kbit with tc's units, e.g. 10gbit, 1gbit, 100mbit`);
  }
  return bits;
}

/**
 * The tc arguments for one interface: burst of 1 ms at the rate (at least 64 KiB, so TSO
 * super-packets pass whole), and a queue of 5 ms before tbf drops.
 */
export function tbfArgs(device: string, bitsPerSecond: number): string[] {
  const burstBytes = Math.max(64 * 1024, Math.round(bitsPerSecond / 8 / 1000));
  return ["qdisc", "replace", "dev", device, "root", "tbf", "rate", `${Math.round(bitsPerSecond)}bit`, "burst", String(burstBytes), "latency", "5ms"];
}

export async function shapeLink(namespace: string, device: string, bitsPerSecond: number): Promise<void> {
  await execInNamespace(namespace, "tc", tbfArgs(device, bitsPerSecond), { hint: `shaping ${device} in ${namespace} (tc tbf)` });
}
