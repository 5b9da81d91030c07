import { execInNamespace } from "../../../src/lab/netns.js";

/**
 * A paced UDP flood for DoS tests, in its own process: from `from`:`fromPort` inside `namespace`,
 * sends `templates` round-robin to `to`:`toPort` at `perSecond` for `durationMs` (catching up
 * every millisecond, so the rate holds even when the timer runs late), and counts the datagrams
 * that came back. exchangeUdp (udp-exchange.ts) is the one-by-one sender; this one is for
 * thousands per second.
 */
export interface UdpFlood {
  namespace: string;
  from: string;
  fromPort: number;
  to: string;
  toPort: number;
  templates: readonly Buffer[];
  perSecond: number;
  durationMs: number;
}

export interface UdpFloodResult {
  sent: number;
  /** Datagrams sent per template, in template order. */
  sentPerTemplate: number[];
  replies: number;
  elapsedMs: number;
}

export async function floodUdp(flood: UdpFlood): Promise<UdpFloodResult> {
  const script = `
    const socket = require("node:dgram").createSocket("udp4");
    const templates = JSON.parse(require("node:fs").readFileSync(0, "utf8")).map((hex) => Buffer.from(hex, "hex"));
    const perTemplate = templates.map(() => 0);
    let sent = 0, replies = 0;
    socket.on("message", () => replies++);
    socket.bind({ address: ${JSON.stringify(flood.from)}, port: ${flood.fromPort} }, () => {
      const start = performance.now();
      const timer = setInterval(() => {
        const elapsed = performance.now() - start;
        const due = Math.min(elapsed, ${flood.durationMs}) * ${flood.perSecond} / 1000;
        for (; sent < due; sent++) {
          const i = sent % templates.length;
          perTemplate[i]++;
          socket.send(templates[i], ${flood.toPort}, ${JSON.stringify(flood.to)});
        }
        if (elapsed >= ${flood.durationMs}) {
          clearInterval(timer);
          // Replies still in flight get a moment.
          setTimeout(() => {
            process.stdout.write(JSON.stringify({ sent, sentPerTemplate: perTemplate, replies, elapsedMs: performance.now() - start }));
            socket.close();
          }, 300);
        }
      }, 1);
    });`;
  const result = await execInNamespace(flood.namespace, process.execPath, ["-e", script], {
    input: JSON.stringify(flood.templates.map((template) => template.toString("hex"))),
    timeoutMs: flood.durationMs + 20_000,
  });
  return JSON.parse(result.stdout) as UdpFloodResult;
}
