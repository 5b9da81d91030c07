import { spawn } from "node:child_process";

/** A firewall tool that is not installed: callers fall back to another tool instead of failing. */
export class MissingCommandError extends Error {
  constructor(readonly command: string) {
    super(`"${command}" is not installed or not on PATH`);
    this.name = "MissingCommandError";
  }
}

/**
 * Runs a firewall command in this namespace, or in `netns` through `ip netns exec` (tests, lab),
 * and returns its stdout. A non-zero exit throws with the command line and its stderr.
 */
export function runInNamespace(netns: string | undefined, command: string, args: readonly string[], input?: string): Promise<string> {
  const [file, argv] = netns === undefined ? [command, [...args]] : ["ip", ["netns", "exec", netns, command, ...args]];
  const where = netns === undefined ? "" : ` in namespace "${netns}"`;
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    child.once("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(error.code === "ENOENT" ? new MissingCommandError(file) : error);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve(stdout);
      // `ip netns exec` reports a missing program only on stderr.
      if (netns !== undefined && /^exec of ".*" failed: No such file or directory/.test(stderr)) {
        return reject(new MissingCommandError(command));
      }
      const status = signal ? `killed by ${signal}` : `exit ${code}`;
      const script = input === undefined ? "" : `; input was:\n${input}`;
      reject(new Error(`\`${command} ${args.join(" ")}\` failed${where} (${status}): ${stderr.trim() || "(no output)"}${script}`));
    });
    child.stdin?.on("error", () => undefined);
    child.stdin?.end(input);
  });
}
