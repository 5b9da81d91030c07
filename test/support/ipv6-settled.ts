import { execInNamespace } from "../../src/lab/netns.js";
import { sleep } from "../../src/async/sleep.js";

/**
 * Waits until no IPv6 address in the namespace is tentative (duplicate address detection done):
 * a tentative address is neither a ping source nor a destination.
 */
export async function ipv6AddressesSettled(namespace: string, timeoutMs = 5000): Promise<void> {
  const started = performance.now();
  for (;;) {
    const { stdout } = await execInNamespace(namespace, "ip", ["-6", "addr", "show", "tentative"]);
    if (stdout.trim() === "") return;
    if (performance.now() - started > timeoutMs) throw new Error(`IPv6 addresses in ${namespace} still tentative after ${timeoutMs} ms:\n${stdout}`);
    await sleep(50);
  }
}
