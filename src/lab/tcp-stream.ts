import { spawn, type ChildProcess } from "node:child_process";

/**
 * A TCP stream with verified data between two lab namespaces (fault-injection probes): the
 * sender writes a known byte pattern (offset mod 251) at a bounded rate, the receiver checks
 * every byte and notes the longest stall between two arrivals. TCP retransmits across a short
 * outage, so what counts is: the connection survives, no byte is wrong, and how long it stalled.
 */
export interface TcpStreamResult {
  sentBytes: number;
  receivedBytes: number;
  /** Bytes that did not match the pattern (must be 0). */
  corruptBytes: number;
  longestStallMs: number;
  /** The sender's or receiver's error, if the connection broke. */
  error?: string;
}

export interface TcpStream {
  /** Resolves once the receiver has seen data. */
  flowing(): Promise<void>;
  stop(): Promise<TcpStreamResult>;
}

const RECEIVER = `
const net = require("node:net");
let received = 0, corrupt = 0, last = 0, stall = 0, error;
const server = net.createServer((socket) => {
  socket.on("data", (chunk) => {
    const now = Date.now();
    if (last && now - last > stall) stall = now - last;
    if (last || received === 0) last = now;
    for (let i = 0; i < chunk.length; i++) if (chunk[i] !== (received + i) % 251) corrupt++;
    received += chunk.length;
    if (received === chunk.length) process.stdout.write("flowing\\n");
  });
  socket.on("error", (e) => (error = e.message));
});
server.listen(Number(process.argv[1]), "0.0.0.0", () => process.stdout.write("listening\\n"));
// SIGUSR2 when the probe ends: a stall still going on (nothing arrived since) counts too.
process.on("SIGUSR2", () => {
  if (last && Date.now() - last > stall) stall = Date.now() - last;
  last = 0;
});
process.on("SIGTERM", () => {
  process.stdout.write(JSON.stringify({ receivedBytes: received, corruptBytes: corrupt, longestStallMs: stall, error }) + "\\n");
  process.exit(0);
});
`;

const SENDER = `
const net = require("node:net");
const [host, port, bytesPerTick] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
let sent = 0, error;
const socket = net.connect(port, host);
socket.on("error", (e) => (error = e.message));
const timer = setInterval(() => {
  if (socket.writableLength > 4 * bytesPerTick || socket.destroyed) return;
  const chunk = Buffer.alloc(bytesPerTick);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (sent + i) % 251;
  sent += chunk.length;
  socket.write(chunk);
}, 10);
process.on("SIGTERM", () => {
  clearInterval(timer);
  process.stdout.write(JSON.stringify({ sentBytes: sent - socket.writableLength, error }) + "\\n");
  process.exit(0);
});
`;

function nodeIn(namespace: string, script: string, args: string[]): { child: ChildProcess; output: () => string; waitFor: (text: string, ms: number) => Promise<void> } {
  const child = spawn("ip", ["netns", "exec", namespace, process.execPath, "-e", script, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8");
  child.stdout?.on("data", (chunk: string) => (output += chunk));
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => (stderr += chunk));
  const waitFor = async (text: string, ms: number) => {
    const until = Date.now() + ms;
    while (!output.includes(text)) {
      if (child.exitCode !== null || Date.now() > until) throw new Error(`tcp stream in ${namespace}: no "${text}" within ${ms} ms: ${stderr.trim() || output.trim()}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  return { child, output: () => output, waitFor };
}

async function stopAndRead(process: ReturnType<typeof nodeIn>): Promise<Record<string, unknown>> {
  const closed = new Promise<void>((resolve) => process.child.on("close", () => resolve()));
  process.child.kill("SIGTERM");
  await closed;
  const line = process.output().trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return { error: `no result (${line})` };
  }
}

/** `bytesPerTick` every 10 ms: 10 KiB is 1 MB/s, enough to see a stall, light on two cores. */
export async function startTcpStream(from: string, to: string, toAddress: string, port = 7777, bytesPerTick = 10_240): Promise<TcpStream> {
  const receiver = nodeIn(to, RECEIVER, [String(port)]);
  await receiver.waitFor("listening", 10_000);
  const sender = nodeIn(from, SENDER, [toAddress, String(port), String(bytesPerTick)]);
  return {
    flowing: () => receiver.waitFor("flowing", 10_000),
    async stop() {
      receiver.child.kill("SIGUSR2");
      const sent = await stopAndRead(sender);
      // Let what is in flight arrive before the receiver reports.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const received = await stopAndRead(receiver);
      const error = [sent.error, received.error].filter(Boolean).join("; ");
      return {
        sentBytes: Number(sent.sentBytes ?? 0),
        receivedBytes: Number(received.receivedBytes ?? 0),
        corruptBytes: Number(received.corruptBytes ?? 0),
        longestStallMs: Number(received.longestStallMs ?? 0),
        ...(error ? { error } : {}),
      };
    },
  };
}
