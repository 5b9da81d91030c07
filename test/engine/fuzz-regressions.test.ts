/**
 * Regressions for what native/fuzz (libFuzzer + ASan/UBSan, see native/README.md "Fuzzing")
 * found in the engine, each reproduced through the TypeScript API with real packets
 * (topology: see two-hosts.ts; only host A runs an engine here, B is the underlay peer).
 * Crafted packets enter A's TUN from a raw IP_HDRINCL socket in namespace A (python3: Node
 * has no raw sockets).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openEngine, type Engine } from "../../src/engine/engine.js";
import { addressTun } from "../../src/engine/tun-routing.js";
import { execInNamespace } from "../../src/lab/netns.js";
import { sleep } from "../../src/lab/process.js";
import { NETWORK, SUBNET_A, SUBNET_B, TUN_A, UNDERLAY_A, UNDERLAY_B, createTwoHosts, type TwoHosts } from "./two-hosts.js";

/** Writes raw IPv4 packets (hex, header included; the kernel fills in length and checksum)
 * one by one, 100 ms apart so the engine reads each on its own, into namespace A's routing. */
async function sendRawFromA(hosts: TwoHosts, destination: string, packets: readonly string[]): Promise<void> {
  const script = [
    "import socket, sys, time",
    "s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)",
    "for h in sys.argv[2:]:",
    "    s.sendto(bytes.fromhex(h), (sys.argv[1], 0))",
    "    time.sleep(0.1)",
  ].join("\n");
  await execInNamespace(hosts.a, "python3", ["-c", script, destination, ...packets]);
}

function hexAddress(address: string): string {
  return address.split(".").map((part) => Number(part).toString(16).padStart(2, "0")).join("");
}

/** An IPv4 header (no options) with protocol `protocol` from `source` to `destination`, then `payloadHex`. */
function ipv4Hex(source: string, destination: string, protocol: number, payloadHex: string): string {
  const total = (20 + payloadHex.length / 2).toString(16).padStart(4, "0");
  return `4500${total}00010000 40${protocol.toString(16).padStart(2, "0")}0000`.replace(/ /g, "") +
    hexAddress(source) + hexAddress(destination) + payloadHex;
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after 3 s waiting for ${what}`);
    await sleep(20);
  }
  await sleep(50); // let the engine finish the read it is counting
}

let hosts: TwoHosts;
let engine: Engine;

beforeAll(async () => {
  hosts = await createTwoHosts();
  engine = openEngine({ mode: "udp", tunName: "wt0", mtu: 1472, bindAddress: UNDERLAY_A, netns: hosts.a, icmpSource: TUN_A });
  await addressTun("wt0", SUBNET_A, NETWORK, hosts.a);
  engine.setPeer({ subnet: SUBNET_B, publicIP: UNDERLAY_B });
});

afterAll(async () => {
  engine?.close();
  await hosts?.destroy();
});

describe("engine regressions found by fuzzing", () => {
  it("sends no ICMP error about an ICMP packet that ends before its type byte (fuzz_inside: read past the packet)", async () => {
    const nowhere = "10.70.99.1";
    const echo = ipv4Hex(TUN_A, nowhere, 1, "0800f7fe00000001"); // type 8: a query, answered
    const headerOnly = ipv4Hex(TUN_A, nowhere, 1, ""); // no ICMP header: may be an error, not answered
    const before = engine.counters().inside;
    await sendRawFromA(hosts, nowhere, [echo, headerOnly]);
    await until(() => (engine.counters().inside.drops.no_route ?? 0) >= (before.drops.no_route ?? 0) + 2, "2 no_route drops");
    const after = engine.counters().inside;
    // The header-only packet was read into the buffer the echo left behind: before the fix the
    // echo's type byte decided, and it got an error too.
    expect((after.detail.icmp_sent ?? 0) - (before.detail.icmp_sent ?? 0)).toBe(1);
  });
});
