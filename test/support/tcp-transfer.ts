import { waitForListener } from "../../src/lab/readiness.js";
import { runCommand } from "../../src/process/run-command.js";

/**
 * A verified TCP transfer between two namespaces: a node receiver in `to` listens on
 * `address`:`port` and hashes what arrives, a node sender in `from` sends `bytes` random bytes
 * and hashes what it sent. Returns both "<bytes> <sha256>" lines; equal lines mean every byte
 * arrived intact and in order. The receiver gives up after 20 s (then its line is empty).
 */
export async function verifiedTransfer(
  from: string,
  to: string,
  address: string,
  options: { port?: number; bytes?: number } = {},
): Promise<{ sent: string; received: string }> {
  const port = options.port ?? 5202;
  const bytes = options.bytes ?? 16 * 1024 * 1024;
  const receiver = runCommand("ip", ["netns", "exec", to, process.execPath, "-e", `
    const hash = require("node:crypto").createHash("sha256");
    let bytes = 0;
    const server = require("node:net").createServer((socket) => {
      socket.on("data", (chunk) => { hash.update(chunk); bytes += chunk.length; });
      socket.on("end", () => { console.log(bytes + " " + hash.digest("hex")); process.exit(0); });
    });
    server.listen(${port}, ${JSON.stringify(address)});
    setTimeout(() => process.exit(3), 20000);`], { allowFailure: true, timeoutMs: 25_000 });
  await waitForListener(to, "tcp", port);
  const sender = await runCommand("ip", ["netns", "exec", from, process.execPath, "-e", `
    const data = require("node:crypto").randomBytes(${bytes});
    const digest = require("node:crypto").createHash("sha256").update(data).digest("hex");
    const socket = require("node:net").connect(${port}, ${JSON.stringify(address)}, () => socket.end(data));
    socket.on("close", () => { console.log(data.length + " " + digest); process.exit(0); });`], { timeoutMs: 25_000 });
  const result = await receiver;
  return { sent: sender.stdout.trim(), received: result.stdout.trim() };
}
