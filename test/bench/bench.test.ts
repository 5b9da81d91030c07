/*
 * `weft bench` end to end, through the CLI, in real labs (one per path, built and torn down by
 * the bench itself):
 *
 *   host:   <lab>-h1 ── underlay ul0 ── <lab>-h2                       (no daemons)
 *   vxlan:  <lab>-h1c1 ─ docker0 ─ h1 [weft run, flannel.1] ═ ul0 ═ h2 [weft run] ─ docker0 ─ <lab>-h2c1
 *   extra:  as vxlan, the daemons started by --extra (weft itself here), hosts pinned to a core
 *           each (--cpu pinned), every underlay interface shaped to 100 Mbit/s (--link)
 *
 * Asserts the report's shape and that every figure is a sane positive number, never a timing;
 * the one bound is the shaped link's rate, a functional ceiling with a 4x margin.
 */
import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BenchReport, BenchRep, PathResult } from "../../src/bench/results.js";
import { weftCliPath } from "../../src/lab/lab-daemon.js";
import { listNamespaces } from "../../src/lab/netns.js";

const cli = weftCliPath();
let dir: string;

function weft(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

function expectSaneRep(rep: BenchRep): void {
  expect(rep.errors).toEqual([]);
  for (const run of [rep.tcp1, rep.tcp4]) {
    expect(run?.gbps).toBeGreaterThan(0);
    expect(run?.bytes).toBeGreaterThan(0);
    expect(run?.machineCpuSeconds).toBeGreaterThan(0);
    expect(run?.perCoreCpuSeconds.length).toBeGreaterThan(0);
  }
  for (const value of [rep.idleRttUs, rep.loadedRttUs, rep.requestsPerSecond, rep.udpPacketsPerSecond]) expect(value).toBeGreaterThan(0);
  expect(rep.udpLossPercent).toBeGreaterThanOrEqual(0);
  expect(rep.udpLossPercent).toBeLessThan(100);
}

async function expectTornDown(result: PathResult): Promise<void> {
  expect((await listNamespaces()).filter((namespace) => namespace.startsWith(`${result.lab.name}-`))).toEqual([]);
  expect(existsSync(result.lab.dir)).toBe(false);
  const cpusets = existsSync("/sys/fs/cgroup/cpuset") ? readdirSync("/sys/fs/cgroup/cpuset") : [];
  expect(cpusets.filter((entry) => entry.startsWith(`weft-bench-${result.lab.name}-`))).toEqual([]);
}

beforeAll(async () => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`npm run build:ts\` first`);
  dir = await mkdtemp(join(tmpdir(), "weft-bench-test-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("weft bench (real labs)", () => {
  it("measures host and kernel vxlan, writes JSON, SVG and markdown, and tears every lab down", { timeout: 150_000 }, async () => {
    const files = { json: join(dir, "a.json"), svg: join(dir, "a.svg"), markdown: join(dir, "a.md") };
    const run = await weft(["bench", "--paths=host,vxlan", "--reps=1", "--duration=1", `--json=${files.json}`, `--svg=${files.svg}`, `--markdown=${files.markdown}`]);
    expect(run.stderr).toBe(""); // Not a terminal: no progress line.
    expect(run.code).toBe(0);
    const report = JSON.parse(await readFile(files.json, "utf8")) as BenchReport;
    expect(report.settings).toEqual({ paths: ["host", "vxlan"], reps: 1, duration: 1, cpu: "shared" });
    expect(report.results.map((result) => [result.id, result.error, result.mtu, result.reps.length])).toEqual([
      ["host", undefined, 1500, 1],
      ["vxlan", undefined, 1450, 1],
    ]);
    const [host, vxlan] = report.results as [PathResult, PathResult];
    for (const result of report.results) expectSaneRep(result.reps[0] as BenchRep);
    expect(host.reps[0]?.tcp1?.daemonCpuSeconds).toBeUndefined(); // No daemons on the underlay path.
    expect(vxlan.reps[0]?.tcp1?.daemonCpuSeconds).toBeGreaterThanOrEqual(0);
    expect(vxlan.reps[0]?.daemonRssMiB).toBeGreaterThan(10);
    for (const result of report.results) await expectTornDown(result);

    expect(run.stdout).toMatch(/^\| weft vxlan \(kernel\) \| 1450 \| [\d.]+ \| /m);
    expect(run.stdout).toMatch(/^\| host \(underlay\) \| 1500 \| [\d.]+ [\d.]+× \| /m);
    expect(await readFile(files.markdown, "utf8")).toBe(run.stdout);
    const svg = await readFile(files.svg, "utf8");
    expect(svg.match(/class="bar"/g)).toHaveLength(8);
    expect(svg.match(/class="reference"/g)).toHaveLength(4);
  });

  it("runs another daemon per host with --extra, pinned to a core per host, over a shaped link", { timeout: 150_000 }, async () => {
    const json = join(dir, "b.json");
    const command = `${process.execPath} ${cli} run --etcd-endpoints={etcd} --iface={iface} --subnet-file={subnetFile} --state-dir={stateDir}`;
    const run = await weft(["bench", "--paths=again", "--extra", `again:vxlan=${command}`, "--reps=1", "--duration=1", "--cpu=pinned", "--link=100mbit", `--json=${json}`]);
    expect(run.code).toBe(0);
    const report = JSON.parse(await readFile(json, "utf8")) as BenchReport;
    const [again] = report.results as [PathResult];
    expect(again).toMatchObject({ id: "again", daemons: "again", mtu: 1450, cores: { h1: "0", h2: "1" } });
    expect(again.error).toBeUndefined();
    expectSaneRep(again.reps[0] as BenchRep);
    expect(again.reps[0]?.daemonRssMiB).toBeGreaterThan(10);
    expect(again.reps[0]?.tcp1?.gbps).toBeLessThan(0.4); // tbf at 100 Mbit/s on the underlay.
    await expectTornDown(again);
  });
});
