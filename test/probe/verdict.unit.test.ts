import { describe, expect, it } from "vitest";
import { pathMtuFromRouteGet } from "../../src/probe/path-mtu-cache.js";
import { formatVerdict, judge, type Observations } from "../../src/probe/verdict.js";

const up = { sent: 3, received: 3, rttMicros: [100, 200, 300] };
const base: Observations = {
  underlay: up,
  pathMtu: { status: "fits", expected: 1500 },
  overlay: { status: "ok", bytes: 1450, rttMicros: 300 },
  encapsulation: "UDP 8472",
  overheadBytes: 50,
};

describe("judge", () => {
  it.each<[string, Partial<Observations>, string]>([
    ["everything answers", {}, "ok"],
    ["one echo of three lost", { underlay: { sent: 3, received: 2, rttMicros: [1, 2] } }, "ok"],
    ["no underlay echo answered", { underlay: { sent: 3, received: 0, rttMicros: [] }, overlay: { status: "blocked", why: "x" } }, "peer down"],
    ["a small overlay echo lost", { overlay: { status: "blocked", why: "no answer" } }, "encapsulation blocked (underlay answers, overlay does not: UDP 8472 filtered?)"],
    [
      "FLANNEL_MTU-sized overlay echoes lost, path MTU known",
      { pathMtu: { status: "smaller", expected: 1500, mtu: 1400, source: "frag-needed" }, overlay: { status: "too-big", bytes: 1450, why: "no answer" } },
      "MTU black hole: lower Backend.MTU to 1400",
    ],
    [
      "the local tunnel said how big fits",
      { overlay: { status: "too-big", bytes: 1450, why: "frag-needed", mtu: 1330 } },
      "MTU black hole: lower Backend.MTU to 1380",
    ],
    ["big overlay echoes lost, nothing says why", { overlay: { status: "too-big", bytes: 1450, why: "no answer" } }, "MTU black hole: lower Backend.MTU"],
    [
      "a smaller path MTU the encapsulation copes with (fragments cross)",
      { pathMtu: { status: "smaller", expected: 1500, mtu: 1400, source: "frag-needed" } },
      "ok",
    ],
    ["host-gw, path fits", { overlay: undefined }, "ok"],
    ["host-gw, a router says frag-needed (PMTU discovery works)", { overlay: undefined, pathMtu: { status: "smaller", expected: 1500, mtu: 1400, source: "frag-needed" } }, "ok"],
    [
      "host-gw, a silent path found by search",
      { overlay: undefined, pathMtu: { status: "smaller", expected: 1500, mtu: 1380, source: "search" } },
      "MTU black hole: lower the MTU of docker0 (dockerd --mtu) to 1380",
    ],
  ])("%s", (_what, change, expected) => {
    expect(formatVerdict(judge({ ...base, ...change }))).toBe(expected);
  });
});

describe("pathMtuFromRouteGet", () => {
  it.each<[string, string, number | undefined]>([
    [
      "a cached exception",
      '[{"dst":"10.99.1.2","gateway":"10.99.0.2","dev":"eth0","prefsrc":"10.99.0.1","flags":[],"uid":0,"cache":[],"expires":599,"metrics":[{"mtu":1400}]}]',
      1400,
    ],
    ["no exception", '[{"dst":"10.99.0.2","dev":"eth0","prefsrc":"10.99.0.1","flags":[],"uid":0,"cache":[]}]', undefined],
    ["not JSON", "Error: any", undefined],
    ["not a list", '{"mtu":1}', undefined],
  ])("%s", (_what, json, expected) => {
    expect(pathMtuFromRouteGet(json)).toBe(expected);
  });
});
