import { spawn } from "node:child_process";

/**
 * A continuous ping stream from one lab namespace to an address (fault-injection probes): one
 * echo request every `intervalMs` (10 ms by default), each reply timestamped by ping itself
 * (-D), until stop(). Lost is counted over the sequence numbers up to the last reply, so the
 * one or two requests still in flight when stop() interrupts ping are not counted as lost.
 */
export interface PingStreamResult {
  /** Requests up to the last one answered. */
  sent: number;
  received: number;
  lost: number;
  /** Longest time between two consecutive replies, ms (10 ms when nothing was lost at 10 ms). */
  longestGapMs: number;
  /** When the longest gap ended (ms since the epoch): recovery is measured from the fault to here. */
  longestGapEndedAt: number;
}

export interface PingStream {
  stop(): Promise<PingStreamResult>;
  /** Replies so far (to wait until the stream runs). */
  received(): number;
}

const REPLY = /^\[(\d+\.\d+)\] \d+ bytes from [\d.]+: icmp_seq=(\d+) /;

export function startPingStream(namespace: string, target: string, intervalMs = 10): PingStream {
  // Seconds with 3 decimals; ping needs root below 0.2 s (the lab runs as root).
  const child = spawn("ip", ["netns", "exec", namespace, "ping", "-n", "-D", "-W", "1", "-i", (intervalMs / 1000).toFixed(3), target], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const replies = new Map<number, number>();
  let pending = "";
  let stderr = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) {
      const match = REPLY.exec(line);
      // A duplicate reply (DUP!) keeps the first arrival.
      if (match && !replies.has(Number(match[2]))) replies.set(Number(match[2]), Math.round(Number(match[1]) * 1000));
    }
  });
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.on("close", () => resolve()));

  return {
    received: () => replies.size,
    async stop() {
      child.kill("SIGINT");
      await exited;
      if (replies.size === 0) throw new Error(`ping ${target} from ${namespace}: no reply at all${stderr ? ` (${stderr.trim()})` : ""}`);
      const seqs = [...replies.keys()].sort((a, b) => a - b);
      const first = seqs[0] as number;
      const last = seqs.at(-1) as number;
      // ping numbers from 1 (iputils) or 0; count from the first sequence number it could have used.
      const base = Math.min(first, 1);
      const sent = last - base + 1;
      let longestGapMs = 0;
      let longestGapEndedAt = replies.get(first) as number;
      let previous = replies.get(first) as number;
      for (const seq of seqs.slice(1)) {
        const at = replies.get(seq) as number;
        if (at - previous > longestGapMs) {
          longestGapMs = at - previous;
          longestGapEndedAt = at;
        }
        previous = Math.max(previous, at);
      }
      return { sent, received: seqs.length, lost: sent - seqs.length, longestGapMs, longestGapEndedAt };
    },
  };
}
