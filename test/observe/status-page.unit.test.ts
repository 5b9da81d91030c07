import { describe, expect, it } from "vitest";
import { escapeHtml, renderStatusPage, type StatusModel } from "../../src/observe/status-page.js";

const model: StatusModel = {
  version: "0.1.0",
  backend: "vxlan",
  hostname: "h1",
  lease: { subnet: "10.66.5.0/24", publicIP: "192.168.77.11", expiresAt: new Date("2030-01-02T03:04:05Z"), reservation: false },
  etcd: { endpoints: "http://192.168.77.2:2379", reachable: true },
  ready: { ready: true, checks: { lease: true, backend: true } },
  peers: [
    { paths: [{ family: 4, subnet: "10.66.10.0/24", publicIP: "192.168.77.13", verdict: "encapsulation-blocked", advice: "encapsulation blocked (underlay answers, overlay does not: UDP 8472 filtered?)", rttMicros: 412 }] },
    {
      paths: [
        { family: 4, subnet: "10.66.9.0/24", publicIP: "192.168.77.12", verdict: "ok", advice: "ok", rttMicros: 1234 },
        { family: 6, subnet: "fd66:0:0:9::/64", publicIP: "fd77::12", verdict: "peer-down", advice: "peer down" },
      ],
    },
    { paths: [{ family: 4, subnet: "10.66.11.0/24", publicIP: "192.168.77.14" }, { family: 6, subnet: "fd66:0:0:b::/64", publicIP: "-", notProbed: "the lease has no PublicIPv6" }] },
  ],
  probing: true,
  counters: [["weft_dataplane_packets_total", "direction=inside", 42]],
  now: new Date("2030-01-01T03:04:05Z"),
};

describe("renderStatusPage", () => {
  it("shows the lease, etcd, the peers in subnet order with verdicts and RTTs, readiness and counters", () => {
    const html = renderStatusPage(model);
    expect(html).toContain("<td>10.66.5.0/24</td>");
    expect(html).toContain("2030-01-02T03:04:05.000Z (in 24 h 0 min)");
    expect(html).toContain('<span class="ok">reachable</span>');
    expect(html.indexOf("10.66.9.0/24")).toBeLessThan(html.indexOf("10.66.10.0/24"));
    expect(html).toContain('<span class="bad">encapsulation blocked (underlay answers, overlay does not: UDP 8472 filtered?)</span>');
    expect(html).toContain("412 µs");
    expect(html).toContain("1.234 ms");
    expect(html).toContain("not probed yet");
    // A dual-stack peer: its IPv6 row right below its IPv4 row, each with its own verdict.
    expect(html).toContain("<td>10.66.9.0/24</td><td>IPv4</td><td>192.168.77.12</td>");
    expect(html).toContain('<td>fd66:0:0:9::/64</td><td>IPv6</td><td>fd77::12</td><td><span class="bad">peer down</span></td>');
    expect(html.indexOf("fd66:0:0:9::/64")).toBeGreaterThan(html.indexOf("10.66.9.0/24"));
    expect(html.indexOf("fd66:0:0:9::/64")).toBeLessThan(html.indexOf("10.66.10.0/24"));
    expect(html).toContain("not probed: the lease has no PublicIPv6");
    // Problems count peers, not rows: 10.66.10.0 (IPv4) and 10.66.9.0 (its IPv6 path).
    expect(html).toContain("Peers (3, 2 with a problem)");
    expect(html).toContain("<td>weft_dataplane_packets_total</td><td>direction=inside</td><td>42</td>");
  });

  it("loads nothing from anywhere: no script, no link, no src, no url()", () => {
    const html = renderStatusPage(model);
    expect(html).not.toMatch(/<script|<link|\ssrc=|url\(|@import/i);
  });

  it("escapes what comes from etcd and the network (a crafted PublicIP, an error text)", () => {
    const html = renderStatusPage({
      ...model,
      etcd: { endpoints: "http://x", reachable: "<img src=x onerror=alert(1)>" },
      peers: [{ paths: [{ family: 4, subnet: "10.66.1.0/24", publicIP: '"><script>alert(1)</script>' }] }],
      lease: { ...model.lease!, reservation: true },
    });
    expect(html).not.toContain("<script>alert");
    expect(html).not.toContain("<img");
    expect(html).toContain("&quot;&gt;&lt;script&gt;");
    expect(html).toContain("never (reservation)");
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe("&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  });

  it("says when there is no lease, no peer and probing is off", () => {
    const html = renderStatusPage({ ...model, lease: undefined, peers: [], probing: false, counters: [], ready: { ready: false, checks: { lease: false } } });
    expect(html).toContain("no lease yet");
    expect(html).toContain("probing off: weft run --peer-probe-interval");
    expect(html).toContain('<span class="bad">not ready</span>');
    expect(html).toContain("no data-path counters");
  });
});
