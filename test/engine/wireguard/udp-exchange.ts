import { execInNamespace } from "../../../src/lab/netns.js";

/**
 * A raw UDP sender for hostile-peer tests: from `from`:`fromPort` inside `namespace`, sends the
 * datagrams (one every `intervalMs`) to `to`:`toPort`, keeps listening `listenMs` after the last,
 * and returns every datagram that came back, as hex, in arrival order.
 */
export interface UdpExchange {
  namespace: string;
  from: string;
  fromPort: number;
  to: string;
  toPort: number;
  datagrams: readonly Buffer[];
  intervalMs: number;
  listenMs: number;
}

export async function exchangeUdp(exchange: UdpExchange): Promise<Buffer[]> {
  const script = `
    const socket = require("node:dgram").createSocket("udp4");
    const items = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
    const replies = [];
    socket.on("message", (data) => replies.push(data.toString("hex")));
    socket.bind({ address: ${JSON.stringify(exchange.from)}, port: ${exchange.fromPort} }, async () => {
      for (const hex of items) {
        socket.send(Buffer.from(hex, "hex"), ${exchange.toPort}, ${JSON.stringify(exchange.to)});
        await new Promise((resolve) => setTimeout(resolve, ${exchange.intervalMs}));
      }
      setTimeout(() => { process.stdout.write(JSON.stringify(replies)); socket.close(); }, ${exchange.listenMs});
    });`;
  const timeoutMs = exchange.datagrams.length * exchange.intervalMs * 3 + exchange.listenMs + 20_000;
  const result = await execInNamespace(exchange.namespace, process.execPath, ["-e", script], {
    input: JSON.stringify(exchange.datagrams.map((datagram) => datagram.toString("hex"))),
    timeoutMs,
  });
  return (JSON.parse(result.stdout) as string[]).map((hex) => Buffer.from(hex, "hex"));
}
