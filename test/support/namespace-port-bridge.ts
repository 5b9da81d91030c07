import { createServer, connect, type Server, type Socket } from "node:net";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { spawnDetachedInNamespace } from "../../src/process/detached.js";
import { terminatePids } from "../../src/process/pids.js";

/**
 * A loopback port of this namespace (e.g. etcd's, or a TcpProxy's) as 127.0.0.1:<port> inside
 * another network namespace, with no link between them: network namespaces do not share
 * loopback, but they share the file system, so a Unix socket carries the bytes.
 *
 *   inside <namespace>: client -> 127.0.0.1:<insidePort> -> node forwarder --\
 *   here:                                       <dir>/bridge.sock <----------/ -> 127.0.0.1:<targetPort>
 *
 * The forwarder inside is a process of the namespace (deleteNamespace ends it too).
 */
export class NamespacePortBridge {
  private constructor(
    private readonly sockets: Set<Socket>,
    private readonly server: Server,
    private readonly forwarderPid: number,
    private readonly socketPath: string,
  ) {}

  static async start(namespace: string, targetPort: number, insidePort: number, dir: string): Promise<NamespacePortBridge> {
    const socketPath = join(dir, `bridge-${insidePort}.sock`);
    const sockets = new Set<Socket>();
    const server = createServer((client) => {
      const upstream = connect(targetPort, "127.0.0.1");
      pipeBothWays(client, upstream, sockets);
    });
    await new Promise<void>((resolve, reject) => server.once("error", reject).listen(socketPath, resolve));
    const logFile = join(dir, `bridge-${insidePort}.log`);
    const script = `
      const net = require("node:net");
      net.createServer((client) => {
        const upstream = net.connect(${JSON.stringify(socketPath)});
        for (const [a, b] of [[client, upstream], [upstream, client]]) {
          a.pipe(b);
          a.on("error", () => a.destroy());
          a.on("close", () => b.destroy());
        }
      }).listen(${insidePort}, "127.0.0.1", () => console.log("listening"));`;
    const pid = spawnDetachedInNamespace(namespace, process.execPath, ["-e", script], logFile);
    const bridge = new NamespacePortBridge(sockets, server, pid, socketPath);
    const deadline = Date.now() + 10_000;
    while (!(await readFile(logFile, "utf8").catch(() => "")).includes("listening")) {
      if (Date.now() > deadline) {
        await bridge.close();
        throw new Error(`the forwarder in namespace ${namespace} did not listen on 127.0.0.1:${insidePort} within 10 s (log ${logFile})`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return bridge;
  }

  async close(): Promise<void> {
    await terminatePids([this.forwarderPid], 1000);
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await rm(this.socketPath, { force: true });
  }
}

function pipeBothWays(a: Socket, b: Socket, sockets: Set<Socket>): void {
  for (const [from, to] of [[a, b], [b, a]] as const) {
    sockets.add(from);
    from.pipe(to);
    from.on("error", () => from.destroy());
    from.on("close", () => {
      sockets.delete(from);
      to.destroy();
    });
  }
}
