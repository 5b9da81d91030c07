import { probePeer, type PeerProbeResult, type ProbeSettings, type ProbeTarget } from "./peer-probe.js";
import type { Echoer } from "./pinger.js";

/** Probes every target, at most `concurrency` at a time (each probe waits on its own echoes, not the CPU); results in target order. */
export async function probeAll(pinger: Echoer, targets: readonly ProbeTarget[], settings: ProbeSettings, concurrency = 32): Promise<PeerProbeResult[]> {
  const results: PeerProbeResult[] = new Array(targets.length);
  let next = 0;
  const worker = async () => {
    while (next < targets.length) {
      const index = next++;
      results[index] = await probePeer(pinger, targets[index] as ProbeTarget, settings);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, targets.length) }, worker));
  return results;
}
