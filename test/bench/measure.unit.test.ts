import { describe, expect, it } from "vitest";
import { cpuSecondsBetween, parsePingAverageUs, parseProcStat, parseSockperfRate, toolCommandLine, udpSample } from "../../src/bench/measure.js";
import { expandDaemonCommand } from "../../src/bench/paths.js";
import { cpusetName, inCpuset } from "../../src/lab/cpuset.js";
import { parseLinkRate, tbfArgs } from "../../src/lab/link-shaping.js";

describe("bench tool output parsers", () => {
  it("reads ping's average RTT in µs", () => {
    const out = "--- 10.66.2.2 ping statistics ---\n200 packets transmitted, 200 received, 0% packet loss, time 1000ms\nrtt min/avg/max/mdev = 0.021/0.035/0.120/0.010 ms\n";
    expect(parsePingAverageUs(out)).toBeCloseTo(35);
    expect(parsePingAverageUs("100% packet loss")).toBeUndefined();
  });

  it("reads sockperf ping-pong's round trips per second from its valid-duration line (warm-up excluded)", () => {
    const out = "sockperf: [Total Run] RunTime=1.100 sec; Warm up time=400 msec; SentMessages=25001; ReceivedMessages=25000\n" +
      "sockperf: ========= Printing statistics for Server No: 0\nsockperf: [Valid Duration] RunTime=1.000 sec; SentMessages=20001; ReceivedMessages=20000\n";
    expect(parseSockperfRate(out)).toBe(20000);
    expect(parseSockperfRate("sockperf: connection refused")).toBeUndefined();
  });

  it("reads iperf3's UDP summary as received packets/s and loss", () => {
    expect(udpSample({ end: { sum: { packets: 1000, lost_packets: 100, lost_percent: 10, seconds: 2 } } })).toEqual({ packetsPerSecond: 450, lossPercent: 10 });
    expect(() => udpSample({ end: {} })).toThrow(/no packet counts/);
  });

  it("counts per-core busy time (idle and iowait excluded) and softirq from /proc/stat", () => {
    const before = parseProcStat("cpu  1 1 1 1 1 1 1 0 0 0\ncpu0 100 0 50 800 10 5 20 0 7 0\ncpu1 10 0 10 900 0 0 5 0 0 0\nintr 1\n");
    const after = parseProcStat("cpu  1 1 1 1 1 1 1 0 0 0\ncpu0 200 0 60 850 10 5 40 0 9 0\ncpu1 10 0 10 1000 0 0 5 0 0 0\n");
    expect(before.busy).toEqual([175, 25]);
    expect(cpuSecondsBetween(before, after)).toEqual({ perCore: [1.3, 0], softirq: 0.2 });
  });
});

describe("bench modes and hooks", () => {
  it("parses tc rates and sizes tbf's burst to 1 ms at the rate, at least 64 KiB", () => {
    expect(parseLinkRate("10gbit")).toBe(1e10);
    expect(parseLinkRate("100Mbit")).toBe(1e8);
    expect(tbfArgs("eth0", 1e10)).toEqual(["qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", "10000000000bit", "burst", "1250000", "latency", "5ms"]);
    expect(tbfArgs("eth0", 1e8)[9]).toBe(String(64 * 1024));
  });

  it("joins the cpuset outside ip netns exec, and runs the tool unchanged without one", () => {
    const cpuset = { dir: "/sys/fs/cgroup/cpuset/weft-bench-wb1-h2", cpus: "1" };
    expect(cpusetName("wb1", "h2")).toBe("weft-bench-wb1-h2");
    expect(toolCommandLine({ namespace: "wb1-h2c1" }, "iperf3", ["-s"])).toEqual(["ip", ["netns", "exec", "wb1-h2c1", "iperf3", "-s"]]);
    expect(toolCommandLine({ namespace: "wb1-h2c1", cpuset }, "iperf3", ["-s"])).toEqual([
      "sh",
      ["-c", `echo $$ > ${cpuset.dir}/cgroup.procs && exec "$@"`, "sh", "ip", "netns", "exec", "wb1-h2c1", "iperf3", "-s"],
    ]);
    expect(inCpuset(undefined, "x", ["y"])).toEqual(["x", ["y"]]);
  });

  it("expands a daemon command's placeholders and names the flag for an unknown one", () => {
    const values = { etcd: "http://192.168.77.2:2379", prefix: "/coreos.com/network", iface: "eth0", address: "192.168.77.11", subnetFile: "/x/subnet.env", stateDir: "/x/state", host: "h1" };
    expect(expandDaemonCommand("d --etcd={etcd} --iface={iface} -f {subnetFile} {host}", values, "--extra d")).toBe("d --etcd=http://192.168.77.2:2379 --iface=eth0 -f /x/subnet.env h1");
    expect(() => expandDaemonCommand("d {etcdEndpoint}", values, "--extra d")).toThrow(/^--extra d: unknown placeholder \{etcdEndpoint\} in "d \{etcdEndpoint\}"; use \{etcd\}, \{prefix\}/);
  });
});
