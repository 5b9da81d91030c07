import { createServer, connect, type Server, type Socket } from "node:net";

/**
 * A loopback TCP proxy a test can cut and restore, to partition a client from etcd while the
 * test keeps writing to etcd directly; `delayMs` makes it a slow link (each way, order kept).
 */
export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private open = true;
  /** Added to every chunk in each direction (a slow etcd); changeable while connections are open. */
  delayMs = 0;
  /** Connections clients opened so far (refused ones while cut included): a reconnect loop shows here. */
  accepted = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number, targetHost = "127.0.0.1"): Promise<TcpProxy> {
    let proxy: TcpProxy | undefined;
    const server = createServer((client) => {
      if (proxy) proxy.accepted++;
      if (!proxy?.open) {
        client.destroy();
        return;
      }
      const upstream = connect(targetPort, targetHost);
      for (const socket of [client, upstream]) {
        proxy.sockets.add(socket);
        socket.on("close", () => proxy?.sockets.delete(socket));
        socket.on("error", () => socket.destroy());
      }
      const forward = (from: Socket, to: Socket) =>
        from.on("data", (chunk: Buffer) => {
          const delay = proxy?.delayMs ?? 0;
          if (delay === 0) to.write(chunk);
          else setTimeout(() => to.writable && to.write(chunk), delay);
        });
      forward(client, upstream);
      forward(upstream, client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    proxy = new TcpProxy(server, typeof address === "object" && address ? address.port : 0);
    return proxy;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Drops every connection and refuses new ones until restore(). */
  cut(): void {
    this.open = false;
    for (const socket of this.sockets) socket.destroy();
  }

  restore(): void {
    this.open = true;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
