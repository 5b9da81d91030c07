/*
 * The udp backend in the 3-host lab (real daemons from dist/cli.js, real etcd):
 *
 *                      <p>-ul  bridge ul0, 192.168.77.0/24
 *        +---------------+-----------------+-----------------+
 *   <p>-etcd .2     <p>-h1 .11        <p>-h2 .12        <p>-h3 .13
 *   real etcd       weft run          weft run          weft run
 *                   flannel0 (TUN)    flannel0 (TUN)    flannel0 (TUN)
 *                   docker0 .1        docker0 .1        docker0 .1
 *                      |                 |                 |
 *                   <p>-h1c1          <p>-h2c1          <p>-h3c1
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { waitForListener, waitUntil } from "../../src/lab/readiness.js";
import { runCommand as run } from "../../src/process/run-command.js";
import { Ipv4Subnet } from "../../src/net/ipv4.js";
import { useLab } from "../support/lab.js";

describe("udp backend in a 3-host lab", () => {
  const lab = useLab("wlu", { hosts: 3, containersPerHost: 1, backend: "udp" });
  const container = (host: string) => lab().container(`${host}c1`);

  it("full ping matrix and max-size don't-fragment pings pass", async () => {
    const { ok, table } = await lab().checkTable();
    console.log(`udp lab up in ${lab().timings?.total} ms\n${table}`);
    expect(ok).toBe(true);
    const env = await lab().host("h1").exec("cat", [lab().host("h1").state.subnetFile]);
    expect(env.stdout).toContain("FLANNEL_MTU=1472");
  });

  it("moves 32 MB of random bytes between containers intact (TCP through both engines)", async () => {
    const target = container("h2").address as string;
    const receiver = run("ip", ["netns", "exec", container("h2").namespace, process.execPath, "-e", `
      const hash = require("node:crypto").createHash("sha256");
      let bytes = 0;
      const server = require("node:net").createServer((socket) => {
        socket.on("data", (chunk) => { hash.update(chunk); bytes += chunk.length; });
        socket.on("end", () => { console.log(bytes + " " + hash.digest("hex")); process.exit(0); });
      });
      server.listen(5201, ${JSON.stringify(target)});
      setTimeout(() => process.exit(3), 20000);`], { allowFailure: true, timeoutMs: 25_000 });
    await waitForListener(container("h2").namespace, "tcp", 5201);
    const sender = await run("ip", ["netns", "exec", container("h1").namespace, process.execPath, "-e", `
      const data = require("node:crypto").randomBytes(32 * 1024 * 1024);
      const digest = require("node:crypto").createHash("sha256").update(data).digest("hex");
      const socket = require("node:net").connect(5201, ${JSON.stringify(target)}, () => socket.end(data));
      socket.on("close", () => { console.log(data.length + " " + digest); process.exit(0); });`], { timeoutMs: 25_000 });
    const result = await receiver;
    expect(result.stdout.trim()).toBe(sender.stdout.trim());
    expect(sender.stdout.startsWith(String(32 * 1024 * 1024))).toBe(true);
  });

  it("stops sending to a peer within 1 s of its lease being deleted", async () => {
    const h1 = lab().host("h1");
    const sample = async (series: RegExp) => {
      // node rather than curl: CI machines have node for sure.
      const metrics = await h1.exec(process.execPath, ["-e",
        `fetch("http://127.0.0.1:${h1.state.healthzPort}/metrics").then((r) => r.text()).then((t) => process.stdout.write(t))`]);
      return Number(series.exec(metrics.stdout)?.[1] ?? 0);
    };
    const forwarded = () => sample(/weft_dataplane_packets_total\{direction="inside"\} (\d+)/);
    const target = container("h2").address as string;
    const forwardedBefore = await forwarded();
    // A datagram every millisecond from h1c1 towards h2c1 for 6 s.
    const sender = container("h1").exec(process.execPath, ["-e", `
      const socket = require("node:dgram").createSocket("udp4");
      const timer = setInterval(() => socket.send("x", 9999, ${JSON.stringify(target)}, () => undefined), 1);
      setTimeout(() => { clearInterval(timer); socket.close(); }, 6000);`], { allowFailure: true, timeoutMs: 10_000 });
    // Stopped, so h2 does not re-acquire its lease while the test watches h1 drop the route.
    await lab().stopDaemon("h2");
    // The sender is up once h1 forwards its datagrams (h2's lease, so its route, is still there).
    await waitUntil("h1 forwarding the sender's datagrams", async () => (await forwarded()) > forwardedBefore + 10);
    // A watcher in h1's namespace polls the metrics every 5 ms and prints the wall-clock time at
    // which the drops begin; it is up (its marker file exists) before the key is deleted, so
    // what is timed is weft, not a node start per sample.
    const marker = join(lab.labDir, "drop-watcher.ready");
    const dropWatcher = h1.exec(process.execPath, ["-e", `
      const re = /weft_dataplane_drops_total\\{direction="inside",reason="no_route"\\} (\\d+)/;
      const read = async () => Number(re.exec(await (await fetch("http://127.0.0.1:${h1.state.healthzPort}/metrics")).text())?.[1] ?? 0);
      (async () => {
        const before = await read();
        require("node:fs").writeFileSync(${JSON.stringify(marker)}, "");
        const deadline = Date.now() + 5000;
        while (Date.now() < deadline) {
          if ((await read()) > before + 5) { console.log(Date.now()); return; }
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        console.log("none");
      })();`], { timeoutMs: 10_000 });
    await waitUntil("the drop watcher to be up", () => existsSync(marker));
    const key = `/coreos.com/network/subnets/${Ipv4Subnet.parse(lab().host("h2").state.subnet as string).toString().replace("/", "-")}`;
    const started = Date.now();
    await lab().etcdctl(["del", key]);
    const seenAt = Number((await dropWatcher).stdout.trim());
    const elapsed = Number.isFinite(seenAt) ? seenAt - started : Infinity;
    await sender;
    console.log(`h1 stopped forwarding to the removed peer after ${elapsed.toFixed(0)} ms`);
    expect(elapsed).toBeLessThan(1000);
  });
});
