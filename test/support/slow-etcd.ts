import { spawn } from "node:child_process";
import type { Lab } from "../../src/lab/lab.js";

/**
 * A slow etcd for a lab: every client connection to a member's port is redirected (nft, in the
 * etcd namespace) to a proxy there that holds each chunk `delayMs` in each direction, so a call's
 * round trip grows by 2 × delayMs. Open connections are reset so the daemons reconnect through
 * it. etcdctl inside the etcd namespace and the members' peer traffic stay fast (local traffic
 * does not pass prerouting). tc netem would do it in the kernel, but this kernel has no sch_netem.
 *
 *   daemon ──▶ 192.168.77.2:2379 ─nft redirect─▶ :2399 proxy (+delay each way) ──▶ 192.168.77.2:2379 etcd
 */

const PROXY_PORT_OFFSET = 20;

// argv: delayMs, then listen-port/target-port pairs; the address is the etcd namespace's.
const PROXY = `
const net = require("node:net");
const [host, delay, ...ports] = process.argv.slice(1);
let listening = 0;
for (let i = 0; i < ports.length; i += 2) {
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(ports[i + 1]), host);
    const relay = (from, to) => {
      from.on("data", (chunk) => setTimeout(() => to.write(chunk), Number(delay)));
      from.on("end", () => setTimeout(() => to.end(), Number(delay)));
      from.on("error", () => to.destroy());
      from.on("close", () => setTimeout(() => to.destroy(), Number(delay)));
    };
    relay(client, upstream);
    relay(upstream, client);
  });
  server.listen(Number(ports[i]), host, () => { if (++listening === ports.length / 2) process.stdout.write("listening\\n"); });
}
`;

export interface SlowEtcd {
  /** Removes the redirect and the proxy; the daemons reconnect straight to etcd. */
  restore(): Promise<void>;
}

export async function slowDownEtcd(lab: Lab, delayMs: number): Promise<SlowEtcd> {
  const namespace = lab.namespaceOf("etcd");
  const address = lab.state.etcd.address;
  const memberPorts = lab.etcdEndpoints.map((endpoint) => Number(new URL(endpoint).port));
  const pairs = memberPorts.flatMap((port) => [String(port + PROXY_PORT_OFFSET), String(port)]);
  const proxy = spawn("ip", ["netns", "exec", namespace, process.execPath, "-e", PROXY, address, String(delayMs), ...pairs], { stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise<void>((resolve) => proxy.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    proxy.stdout.on("data", (chunk: Buffer) => chunk.toString().includes("listening") && resolve());
    proxy.once("exit", (code) => reject(new Error(`the delaying proxy in ${namespace} exited (code ${code}) before listening on ${address}:${pairs.filter((_, i) => i % 2 === 0).join(",")}`)));
  });
  const table = `${lab.name.replace(/[^a-zA-Z0-9]/g, "_")}_slow`;
  const redirects = memberPorts.map((port) => `  tcp dport ${port} redirect to :${port + PROXY_PORT_OFFSET}`).join("\n");
  const resetClients = () => lab.exec("etcd", "ss", ["-K", "-t", "state", "established", "(", ...memberPorts.flatMap((port, i) => [...(i > 0 ? ["or"] : []), "sport", "=", `:${port}`]), ")"], { allowFailure: true });
  try {
    await lab.exec("etcd", "nft", ["-f", "-"], { input: `table ip ${table} {\n chain pre {\n  type nat hook prerouting priority -100;\n${redirects}\n }\n}\n` });
    await resetClients();
  } catch (error) {
    proxy.kill("SIGTERM");
    await exited;
    throw error;
  }
  return {
    async restore() {
      await lab.exec("etcd", "nft", ["delete", "table", "ip", table], { allowFailure: true });
      proxy.kill("SIGTERM");
      await exited;
      await resetClients();
    },
  };
}
