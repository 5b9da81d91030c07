/*
 * `weft probe` and the daemon's --peer-probe-interval against the four cases of the issue:
 *
 *                      <p>-ul  bridge ul0 192.168.77.0/24; also a router (.250) for h4 and h6
 *      +---------+---------+---------+---------+ - - - - - - - - - -+- - - - - - - - - - -+
 *   <p>-etcd  <p>-h1    <p>-h2    <p>-h3    <p>-h5               veth h4 mtu 1400      veth h6 mtu 1400
 *   .2        .11       .12       .13       .15                  (routed, proxy ARP)   (routed, proxy ARP,
 *   etcd      prober    healthy   nft drops stopped,                  |                 fragments dropped)
 *                                 UDP 8472  eth0 down            <p>-h4 .14               |
 *                                 in input                       eth0 mtu 1400         <p>-h6 .16
 *                                                                                      eth0 mtu 1400
 * (h6's hop drops fragments and what it would have to fragment; DF packets still get frag-needed.)
 *
 * Every host runs `weft run --peer-probe-interval=3` (vxlan). Expected from h1:
 *   h2 ok; h3 encapsulation blocked; h4 ok with path MTU 1400 < 1500 from the router's
 *   frag-needed (its outer packets are fragmented and get through); h5 peer down;
 *   h6 MTU black hole, lower Backend.MTU to 1400 (the hop drops the fragments).
 * Real etcd, real daemons (dist/cli.js: build first), real vxlan devices and nft rules.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { weftCliPath } from "../../src/lab/lab-daemon.js";
import { runCommand } from "../../src/process/run-command.js";
import { untilValue } from "../support/until-value.js";
import { useLab } from "../support/lab.js";

const INTERVAL_S = 3;
const HOP_MTU = 1400;
const ROUTER_ADDRESS = "192.168.77.250";
const lab = useLab("wpr", {
  hosts: 6,
  containersPerHost: 0,
  backend: "vxlan",
  internet: false,
  deferredHosts: ["h4", "h6"],
  daemonArgs: [`--peer-probe-interval=${INTERVAL_S}`],
});
const { name, labDir } = lab;

const subnet = (host: string) => lab().host(host).state.subnet as string;
const ns = (role: string) => `${name}-${role}`;

async function metrics(host: string): Promise<string> {
  const script = `fetch("http://127.0.0.1:${lab().host(host).state.healthzPort}/metrics").then((r) => r.text()).then((t) => process.stdout.write(t))`;
  return (await lab().host(host).exec(process.execPath, ["-e", script])).stdout;
}

function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Moves host `h` off the bridge behind the ul namespace acting as a router, with a smaller MTU on that hop. */
async function routeBehindHop(host: string, dropFragments: boolean): Promise<void> {
  const address = lab().host(host).state.underlayAddress;
  const ul = ns("ul");
  await runCommand("ip", ["-n", ul, "link", "set", host, "nomaster"]);
  await runCommand("ip", ["-n", ul, "link", "set", host, "mtu", String(HOP_MTU)]);
  await runCommand("ip", ["-n", ul, "addr", "add", `${ROUTER_ADDRESS}/32`, "dev", host]);
  await runCommand("ip", ["-n", ul, "route", "add", `${address}/32`, "dev", host]);
  await runCommand("ip", ["-n", ns(host), "link", "set", "eth0", "mtu", String(HOP_MTU)]);
  await runCommand("sysctl", ["-qw", `net.ipv4.conf.${host}.proxy_arp=1`, `net.ipv4.neigh.${host}.proxy_delay=0`], { netns: ul });
  if (dropFragments) {
    await runCommand("nft", ["-f", "-"], { netns: ul, input: [
        "table ip weft_probe_test {",
        "  chain forward {",
        "    type filter hook forward priority 0;",
        `    oifname "${host}" ip frag-off & 0x3fff != 0 drop`,
        `    oifname "${host}" ip length > ${HOP_MTU} drop`,
        "  }",
        "}",
        "",
      ].join("\n"), });
  }
}

function probeCli(host: string, extra: string[] = []) {
  const state = lab().host(host).state;
  return lab().host(host).exec(
    process.execPath,
    [weftCliPath(), "probe", `--etcd-endpoints=${lab().etcdEndpoint}`, `--iface=${state.underlayDevice}`, `--subnet-file=${state.subnetFile}`, ...extra],
    { allowFailure: true },
  );
}

beforeAll(async () => {
  const ul = ns("ul");
  await runCommand("ip", ["-n", ul, "addr", "add", `${ROUTER_ADDRESS}/24`, "dev", "ul0"]);
  await runCommand("sysctl", ["-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.ul0.proxy_arp=1", "net.ipv4.neigh.ul0.proxy_delay=0"], { netns: ul });
  await routeBehindHop("h4", false);
  await routeBehindHop("h6", true);
  await Promise.all([lab().startDaemon("h4"), lab().startDaemon("h6")]);
  // h5 is switched off: its daemon stops (the lease stays until its TTL) and its link goes down.
  await lab().stopDaemon("h5");
  await runCommand("ip", ["-n", ns("h5"), "link", "set", "eth0", "down"]);
}, 120_000);

describe("peer probing in a 6-host vxlan lab", () => {
  it("the daemon's metrics count the peers per verdict, without per-peer labels", async () => {
    const text = await untilValue("h1 reports 1 down, 1 black hole, 3 ok", 30_000, async () => {
      const current = await metrics("h1");
      const counts = ["ok", "peer-down", "mtu-black-hole", "encapsulation-blocked"].map((verdict) => sample(current, `weft_probe_peers{verdict="${verdict}"}`));
      return counts.join(",") === "3,1,1,0" ? current : undefined;
    });
    expect(text).toMatch(/^weft_probe_rtt_seconds_count \d+/m);
    expect(sample(text, "weft_probe_rtt_seconds_count")).toBeGreaterThan(0);
    expect(sample(text, 'weft_probe_failures_total{probe="underlay"}')).toBeGreaterThan(0);
    expect(sample(text, 'weft_probe_failures_total{probe="overlay"}')).toBeGreaterThan(0);
    expect(text).not.toMatch(/weft_probe_\w+\{[^}]*\b(subnet|public_?ip|peer|address)="/i);
  });

  it("an nft rule dropping UDP 8472 on a peer shows in the metric within one interval, and in one log line naming it", async () => {
    await runCommand("nft", ["-f", "-"], {
      netns: ns("h3"),
      input: "table inet weft_probe_test {\n  chain input {\n    type filter hook input priority -10;\n    udp dport 8472 drop\n  }\n}\n",
    });
    const started = performance.now();
    await untilValue("h1 counts h3 as encapsulation-blocked", 4 * INTERVAL_S * 1000, async () =>
      sample(await metrics("h1"), 'weft_probe_peers{verdict="encapsulation-blocked"}') === 1 ? true : undefined,
    );
    const elapsed = performance.now() - started;
    console.log(`h3's blocked encapsulation reached h1's metric after ${Math.round(elapsed)} ms (interval ${INTERVAL_S} s)`);
    // One interval plus the round in flight (its echoes time out after 1 s); slack for a loaded machine.
    expect(elapsed).toBeLessThan((2 * INTERVAL_S + 3) * 1000);
    const log = await readFile(lab().host("h1").state.logFile, "utf8");
    // Said once, when it happens: another line only after another verdict came between (on a
    // loaded machine a round's underlay echoes can time out too: "peer down", then blocked again).
    const h3 = log.split("\n").filter((line) => line.includes(`peer ${subnet("h3")} (192.168.77.13): `));
    const verdicts = h3.map((line) => /"verdict":"([^"]+)"/.exec(line)?.[1]);
    expect(verdicts.filter((verdict) => verdict === "encapsulation-blocked").length, h3.join("\n")).toBeGreaterThanOrEqual(1);
    expect(verdicts.at(-1), h3.join("\n")).toBe("encapsulation-blocked");
    for (let i = 1; i < verdicts.length; i++) expect(verdicts[i], h3.join("\n")).not.toBe(verdicts[i - 1]);
    expect(log).toContain(`peer ${subnet("h5")} (192.168.77.15): peer down`);
    expect(log).toContain(`peer ${subnet("h6")} (192.168.77.16): MTU black hole: lower Backend.MTU to ${HOP_MTU}`);
  });

  it("a live /metrics passes promtool check metrics, and every weft_ series in it is in docs/metrics.md", async () => {
    const text = await metrics("h1");
    const lint = await runCommand("promtool", ["check", "metrics"], { input: text, allowFailure: true, purpose: "linting /metrics (apt-get install prometheus)" });
    // prom-client's standard gauges nodejs_active_{handles,requests,resources}_total are named so
    // upstream (generic Node.js dashboards use these names): the one lint accepted, nothing of weft's.
    const findings = `${lint.stdout}${lint.stderr}`.split("\n").filter((line) => line.trim() !== "");
    const upstream = /^nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/;
    expect(findings.filter((line) => !upstream.test(line))).toEqual([]);
    expect(text).toMatch(/^weft_build_info\{version="[^"]+",backend="vxlan",engine="kernel"\} 1$/m);
    expect(text).toMatch(/^weft_ready\{check="backend"\} 1$/m);
    expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
    expect(sample(text, "weft_lease_expiry_timestamp_seconds")).toBeGreaterThan(Date.now() / 1000);
    expect(sample(text, 'weft_etcd_request_duration_seconds_count{call="list"}')).toBeGreaterThan(0);
    expect(sample(text, 'weft_backend_kernel_programming_duration_seconds_count{backend="vxlan"}')).toBeGreaterThan(0);
    const documented = await readFile(join(import.meta.dirname, "../../docs/metrics.md"), "utf8");
    const families = new Set([...text.matchAll(/^# TYPE (weft_\w+) /gm)].map((match) => match[1] as string));
    expect([...families].filter((family) => !documented.includes(`\`${family}\``))).toEqual([]);
  });

  it("weft probe prints the verdict of each case", async () => {
    const result = await probeCli("h1");
    console.log(`weft probe on h1:\n${result.stdout}${result.stderr}`);
    expect(result.exitCode, result.stderr).toBe(3);
    const row = (host: string) => result.stdout.split("\n").find((line) => line.startsWith(`${subnet(host)} `)) ?? "";
    expect(row("h2")).toMatch(/1500 fits .* ok$/);
    expect(row("h3")).toMatch(/1500 fits .*encapsulation blocked \(underlay answers, overlay does not: UDP 8472 filtered\?\)$/);
    expect(row("h4")).toMatch(/path MTU 1400 < 1500 \((frag-needed|pmtu-cache)\) .* ok$/);
    expect(row("h5")).toMatch(/100% .* peer down$/);
    expect(row("h6")).toMatch(/path MTU 1400 < 1500 .*MTU black hole: lower Backend\.MTU to 1400$/);
    expect(row("h2")).toMatch(/\d+µs|\d+\.\d{3}ms/);
  });

  it("weft probe --json has the structured values", async () => {
    const result = await probeCli("h1", ["--json"]);
    const report = JSON.parse(result.stdout) as { underlayMtu: number; overlayMtu: number; peers: Array<{ subnet: string; verdict: string; lowerMtuTo?: number; pathMtu: { status: string; mtu?: number }; underlay: { lossPercent: number } }> };
    expect([report.underlayMtu, report.overlayMtu]).toEqual([1500, 1450]);
    const peer = (host: string) => report.peers.find((candidate) => candidate.subnet === subnet(host));
    expect(peer("h2")?.verdict).toBe("ok");
    expect(peer("h3")?.verdict).toBe("encapsulation-blocked");
    expect(peer("h4")).toMatchObject({ verdict: "ok", pathMtu: { status: "smaller", mtu: HOP_MTU } });
    expect(peer("h5")).toMatchObject({ verdict: "peer-down", underlay: { lossPercent: 100 } });
    expect(peer("h6")).toMatchObject({ verdict: "mtu-black-hole", lowerMtuTo: HOP_MTU });
  });

  it("/status renders in headless Chromium from h1: lease, peers with verdicts and RTTs, etcd reachable", async () => {
    const profile = join(labDir, "chromium-profile");
    const screenshot = join(labDir, "status.png");
    const url = `http://127.0.0.1:${lab().host("h1").state.healthzPort}/status`;
    const chromium = (extra: string[]) =>
      lab().host("h1").exec("chromium", ["--headless", "--no-sandbox", "--disable-gpu", `--user-data-dir=${profile}`, "--window-size=1100,1000", ...extra, url], { timeoutMs: 60_000 });
    // --dump-dom prints the DOM after Chromium has parsed and laid out the page: the rendered text.
    const dom = (await chromium(["--dump-dom"])).stdout;
    await chromium([`--screenshot=${screenshot}`]);
    const png = await readFile(screenshot);
    console.log(`/status screenshot: ${screenshot} (${png.length} bytes)`);
    expect(png.subarray(1, 4).toString()).toBe("PNG");
    expect(png.length).toBeGreaterThan(10_000);
    expect(dom).toContain(`<td>${subnet("h1")}</td>`);
    expect(dom).toMatch(/<span class="ok">reachable<\/span>/);
    expect(dom).toContain("Peers (5, 3 with a problem)");
    expect(dom).toMatch(new RegExp(`<td>${subnet("h3").replace(/\./g, "\\.")}</td><td>IPv4</td><td>192\\.168\\.77\\.13</td><td><span class="bad">encapsulation blocked`));
    expect(dom).toMatch(/<td>\d+(\.\d{3} ms| µs)<\/td>/);
    expect(dom).not.toMatch(/<script/);
  });

  it("weft doctor includes the probe verdicts", async () => {
    const state = lab().host("h1").state;
    const result = await lab().host("h1").exec(
      process.execPath,
      [weftCliPath(), "doctor", `--etcd-endpoints=${lab().etcdEndpoint}`, `--iface=eth0`, `--subnet-file=${state.subnetFile}`, `--state-dir=${state.stateDir}`],
      { allowFailure: true },
    );
    expect(result.stdout).toContain("peer probes (5 peer(s), 3 with a problem)");
    expect(result.stdout).toContain("encapsulation blocked");
    expect(result.exitCode).toBe(3);
  });
});
