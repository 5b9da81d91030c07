import { runCommand } from "../../process/run-command.js";

/** Firewall tools wait for the xtables lock (`-w 5`); a run past this is hung, not busy. */
const FIREWALL_COMMAND_TIMEOUT_MS = 15_000;

/**
 * Runs a firewall command in this namespace, or in `netns` through `ip netns exec` (tests, lab),
 * and returns its stdout. The runner's errors (src/process/command-errors.ts): a missing tool
 * rejects with CommandMissingError, so callers fall back to another tool; a non-zero exit with
 * CommandFailedError, whose message ends with the script when there was one.
 */
export async function runInNamespace(netns: string | undefined, command: string, args: readonly string[], input?: string): Promise<string> {
  const { stdout } = await runCommand(command, args, {
    netns,
    timeoutMs: FIREWALL_COMMAND_TIMEOUT_MS,
    ...(input === undefined ? {} : { input, hint: `input was:\n${input}` }),
  });
  return stdout;
}
