import { sleep } from "../async/sleep.js";
import { execInNamespace } from "./netns.js";

/**
 * Waiting for readiness instead of for time: a test (or the lab) polls the condition it needs
 * (a port that accepts, a peer that is programmed, a counter that moved) and goes on the moment
 * it holds. A timeout means the condition never came; the error says which.
 */
export interface WaitOptions {
  /** Give up after this long; default 10 s. */
  timeoutMs?: number;
  /** Time between polls; default 20 ms. */
  intervalMs?: number;
}

/** Polls `condition` until it returns true; throws `<what> not reached after N ms` otherwise. */
export async function waitUntil(what: string, condition: () => boolean | Promise<boolean>, options: WaitOptions = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (performance.now() >= deadline) throw new Error(`waited ${timeoutMs} ms for ${what}; it did not happen`);
    await sleep(options.intervalMs ?? 20);
  }
}

/** Whether a socket listens on `port` inside the namespace (`ss -l`; UDP "listens" once bound). */
export async function isListening(namespace: string, protocol: "tcp" | "udp", port: number): Promise<boolean> {
  const flags = protocol === "tcp" ? "-Hltn" : "-Hlun";
  const result = await execInNamespace(namespace, "ss", [flags, `sport = :${port}`], { allowFailure: true });
  return result.exitCode === 0 && result.stdout.trim() !== "";
}

/** Waits until a server inside the namespace listens on `port` (e.g. iperf3 -s on 5201). */
export function waitForListener(namespace: string, protocol: "tcp" | "udp", port: number, options?: WaitOptions): Promise<void> {
  return waitUntil(`a ${protocol.toUpperCase()} listener on port ${port} in namespace ${namespace}`, () => isListening(namespace, protocol, port), options);
}
