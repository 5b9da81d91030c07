/**
 * The fd holder: a process of its own that a userspace daemon leaves behind when it stops
 * gracefully (fd-handover.ts parkFds), so its TUN queues and sockets stay open until the next
 * daemon takes them. While held nobody reads them: the kernel queues what arrives (up to the
 * TUN's txqueuelen and the sockets' receive buffers) instead of dropping it, and the next
 * daemon forwards it. Loads nothing but the addon: it must be listening before its parent exits.
 *
 * Usage (fd-handover.ts only): node holder.js <socket path> <fd count> <timeout ms>; the fds are
 * 3 .. 3+count-1. Prints "ready" once listening; exits when it handed them over or at the timeout
 * (then the fds close as a stopped daemon's would; a persistent TUN stays for `weft cleanup`).
 */
import { unlinkSync, writeSync } from "node:fs";
import { loadNativeAddon } from "../native-addon.js";

function main(argv: readonly string[]): number {
  const [socketPath, countText, timeoutText] = argv;
  const count = Number(countText);
  const timeoutMs = Number(timeoutText);
  if (!socketPath || !Number.isInteger(count) || count < 1 || !Number.isInteger(timeoutMs) || timeoutMs < 1) {
    process.stderr.write("weft fd holder: usage: holder.js <socket path> <fd count> <timeout ms>\n");
    return 2;
  }
  const addon = loadNativeAddon();
  const fds = Array.from({ length: count }, (_, index) => 3 + index);
  const listening = addon.fdListen(socketPath);
  writeSync(1, "ready\n");
  try {
    addon.fdServe(listening, fds, timeoutMs);
  } finally {
    addon.closeFd(listening);
    try {
      unlinkSync(socketPath);
    } catch {
      // already replaced by a newer holder's socket, or removed by cleanup
    }
  }
  return 0;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`weft fd holder: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
