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
    { subnet: "10.66.10.0/24", publicIP: "192.168.77.13", verdict: "encapsulation-blocked", advice: "encapsulation blocked (underlay answers, overlay does not: UDP 8472 filtered?)", rttMicros: 412 },
    { subnet: "10.66.9.0/24", publicIP: "192.168.77.12", verdict: "ok", advice: "ok", rttMicros: 1234 },
    { subnet: "10.66.11.0/24", publicIP: "192.168.77.14" },
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
    expect(html).toContain("Peers (3, 1 with a problem)");
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
      peers: [{ subnet: "10.66.1.0/24", publicIP: '"><script>alert(1)</script>' }],
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
