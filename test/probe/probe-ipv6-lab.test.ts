/*
 * `weft probe`, the daemon's --peer-probe-interval and /status with IPv6 peers:
 *
 *   dual-stack kernel vxlan lab (3 hosts)            IPv6-only host-gw lab (2 hosts)
 *                 <p>-ul 192.168.77.0/24 + fd77::/64               <p>-ul (same)
 *      +-------------+-------------+                     +-------------+
 *   <p>-h1        <p>-h2        <p>-h3                 <p>-h1        <p>-h2
 *   prober        healthy       ip6 nft drops          prober        healthy
 *                               UDP 8472 (the IPv6
 *                               tunnel only)
 *
 * Expected from h1 (dual-stack): every peer has an IPv4 and an IPv6 path; h2 both ok (the IPv6
 * overlay echo is FLANNEL_MTU = 1430 bytes to flannel-v6.1's address, which with 70 bytes of vxlan
 * over IPv6 fills the 1500-byte underlay exactly); h3 IPv4 ok, IPv6 encapsulation blocked; once
 * h2's IPv6 underlay address is gone, h2's IPv6 path is "peer down" and its IPv4 path still ok.
 * IPv6-only host-gw: the peer's one path over IPv6, no overlay echo; and the daemon warns once
 * at start about the IPv4 fields (Network, SubnetLen) the IPv6-only config gives but never uses.
 * Real etcd, real daemons (dist/cli.js: build first), real vxlan devices, nft and ICMPv6 sockets.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { readFile } from "node:fs/promises";
import { type Lab } from "../../src/lab/lab.js";
import { weftCliPath } from "../../src/lab/lab-daemon.js";
import { runCommand } from "../../src/process/run-command.js";
import { untilValue } from "../support/until-value.js";
import type { PeerProbeJson } from "../../src/probe/probe-report.js";
import { Ipv6Subnet, parseIpv6 } from "../../src/net/ipv6.js";
import { useLab } from "../support/lab.js";

const INTERVAL_S = 2;

interface ProbeReport {
  ownSubnet: string;
  underlayMtu: number;
  overlayMtu: number;
  peers: PeerProbeJson[];
}

function probeCli(lab: Lab, host: string, extra: string[] = []) {
  const state = lab.host(host).state;
  return lab.host(host).exec(
    process.execPath,
    [weftCliPath(), "probe", `--etcd-endpoints=${lab.etcdEndpoint}`, `--iface=${state.underlayDevice}`, `--subnet-file=${state.subnetFile}`, ...extra],
    { allowFailure: true },
  );
}

async function probeJson(lab: Lab, host: string): Promise<ProbeReport> {
  const result = await probeCli(lab, host, ["--json"]);
  try {
    return JSON.parse(result.stdout) as ProbeReport;
  } catch {
    throw new Error(`weft probe --json on ${host} printed no JSON (exit ${result.exitCode}): ${result.stdout}${result.stderr}`);
  }
}

async function statusPage(lab: Lab, host: string): Promise<string> {
  return (await lab.host(host).exec("curl", ["-sf", `http://127.0.0.1:${lab.host(host).state.healthzPort}/status`])).stdout;
}

describe("probing a dual-stack kernel vxlan lab", () => {
  const lab = useLab("wp6", { hosts: 3, containersPerHost: 0, backend: "vxlan", ipv6: true, internet: false, daemonArgs: [`--peer-probe-interval=${INTERVAL_S}`] });
  const v4 = (host: string) => lab().host(host).state.subnet as string;
  // The host's IPv6 subnet, from docker0's address (FLANNEL_IPV6_SUBNET, e.g. fd66:0:0:4b::1/64).
  const v6 = (host: string) => new Ipv6Subnet(parseIpv6((lab().host(host).state.bridgeAddressV6 as string).split("/")[0] as string), 64).toString();

  beforeAll(async () => {
    // h3 drops vxlan over IPv6 only: its IPv4 tunnel (flannel.1) still works.
    await runCommand("nft", ["-f", "-"], {
      netns: `${lab.name}-h3`,
      input: "table ip6 weft_probe_test {\n  chain input {\n    type filter hook input priority -10;\n    udp dport 8472 drop\n  }\n}\n",
    });
  });

  it("weft probe gives each peer an IPv4 and an IPv6 path with its own verdict", async () => {
    const table = await probeCli(lab(), "h1");
    console.log(`weft probe on h1 (dual-stack vxlan, h3's IPv6 tunnel dropped):\n${table.stdout}${table.stderr}`);
    expect(table.exitCode, table.stderr).toBe(3);
    const row = (subnet: string) => table.stdout.split("\n").find((line) => line.startsWith(`${subnet} `)) ?? "";
    expect(row(v6("h2"))).toMatch(/^\S+ +fd77::12 .*1500 fits +1430 B in [\d.]+(µs|ms) +ok$/);
    expect(row(v4("h2"))).toMatch(/192\.168\.77\.12 .* ok$/);
    expect(row(v6("h3"))).toMatch(/fd77::13 .*encapsulation blocked \(underlay answers, overlay does not: UDP 8472 filtered\?\)$/);
    expect(row(v4("h3"))).toMatch(/192\.168\.77\.13 .* ok$/);
    expect(table.stdout).toMatch(/^own subnet \S+\/24 fd66:\S+\/64, underlay MTU 1500, FLANNEL_MTU 1430, 2 peer\(s\), 4 path\(s\)$/m);

    const report = await probeJson(lab(), "h1");
    expect([report.underlayMtu, report.overlayMtu]).toEqual([1500, 1430]);
    expect(report.peers.map((peer) => `${peer.subnet} ${peer.publicIP} ${peer.verdict}`).sort()).toEqual(
      [`${v4("h2")} 192.168.77.12 ok`, `${v6("h2")} fd77::12 ok`, `${v4("h3")} 192.168.77.13 ok`, `${v6("h3")} fd77::13 encapsulation-blocked`].sort(),
    );
    // A peer's IPv6 path right after its IPv4 path.
    expect(report.peers.findIndex((peer) => peer.subnet === v6("h2"))).toBe(report.peers.findIndex((peer) => peer.subnet === v4("h2")) + 1);
    const h2v6 = report.peers.find((peer) => peer.subnet === v6("h2"));
    expect(h2v6).toMatchObject({ overlayAddress: v6("h2").replace("/64", ""), pathMtu: { status: "fits", expected: 1500 }, overlay: { status: "ok", bytes: 1430 } });
    expect(h2v6?.underlay.received).toBe(3);
  });

  it("the daemon logs the IPv6 path's verdict alone and /status shows both families", async () => {
    const page = await untilValue("h1's /status shows h3's IPv6 path blocked", 6 * INTERVAL_S * 1000, async () => {
      const html = await statusPage(lab(), "h1");
      return html.includes(`<td>${v6("h3")}</td><td>IPv6</td><td>fd77::13</td><td><span class="bad">encapsulation blocked`) ? html : undefined;
    });
    expect(page).toContain(`<td>${v4("h3")}</td><td>IPv4</td><td>192.168.77.13</td><td><span class="ok">ok</span>`);
    expect(page).toContain(`<td>${v6("h2")}</td><td>IPv6</td><td>fd77::12</td><td><span class="ok">ok</span>`);
    expect(page).toContain("Peers (2, 1 with a problem)");
    const log = await readFile(lab().host("h1").state.logFile, "utf8");
    expect(log.split("\n").filter((line) => line.includes(`peer ${v6("h3")} (fd77::13): encapsulation blocked`))).toHaveLength(1);
    expect(log).not.toContain(`peer ${v4("h3")} (192.168.77.13): encapsulation blocked`);
  });

  it("a peer whose IPv6 underlay address is gone is down over IPv6 only", async () => {
    const h2 = lab().host("h2");
    await h2.exec("ip", ["-6", "address", "del", `${h2.state.underlayAddressV6}/64`, "dev", "eth0"]);
    const report = await probeJson(lab(), "h1");
    const path = (subnet: string) => report.peers.find((peer) => peer.subnet === subnet);
    expect(path(v6("h2"))).toMatchObject({ verdict: "peer-down", underlay: { received: 0, lossPercent: 100 } });
    expect(path(v4("h2"))?.verdict).toBe("ok");
  });
});

describe("probing an IPv6-only host-gw lab", () => {
  // Network and SubnetLen are decoded but unused in an IPv6-only network (as flanneld): the daemon says so once.
  const networkConfig = { EnableIPv4: false, EnableIPv6: true, IPv6Network: "fd66::/48", Network: "10.66.0.0/16", SubnetLen: 24, Backend: { Type: "host-gw" } };
  const lab = useLab("wq6", { hosts: 2, containersPerHost: 0, backend: "host-gw", ipv6Only: true, networkConfig, internet: false, daemonArgs: [`--peer-probe-interval=${INTERVAL_S}`] });

  it("probes the IPv6-only peer over IPv6 (it was skipped before), with no overlay echo for host-gw", async () => {
    const report = await probeJson(lab(), "h1");
    expect(report.ownSubnet).toMatch(/^fd66:[0-9a-f:]+\/64$/);
    expect(report.peers).toHaveLength(1);
    expect(report.peers[0]).toMatchObject({ publicIP: "fd77::12", overlayAddress: null, overlay: null, verdict: "ok", pathMtu: { status: "fits", expected: 1500 } });
    expect(report.peers[0]?.subnet).toMatch(/^fd66:[0-9a-f:]+\/64$/);
    const page = await untilValue("h1's /status has h2's verdict", 6 * INTERVAL_S * 1000, async () => {
      const html = await statusPage(lab(), "h1");
      return /<td>IPv6<\/td><td>fd77::12<\/td><td><span class="ok">ok<\/span>/.test(html) ? html : undefined;
    });
    expect(page).not.toContain("<td>IPv4</td>");
  });

  it("the daemon warned once at start about the IPv4 fields it ignores", async () => {
    const log = await readFile(lab().host("h1").state.logFile, "utf8");
    const warnings = log.split("\n").filter((line) => line.includes("given but unused"));
    expect(warnings).toHaveLength(1);
    const warning = JSON.parse(warnings[0] as string) as { level: number; msg: string; fields: string[] };
    expect(warning).toMatchObject({ level: 40, msg: "Network, SubnetLen given but unused: the network is IPv6-only (EnableIPv4: false)", fields: ["Network", "SubnetLen"] });
  });
});
