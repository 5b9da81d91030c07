#!/usr/bin/env node
import { ConfigurationError, EXIT_CONFIGURATION } from "./errors/configuration-error.js";
import { VERSION } from "./version.js";

/** weft's command line: one module per subcommand under src/commands/. */
async function main(): Promise<void> {
  const argv = goStyleFlags(process.argv.slice(2));
  // A restarted userspace daemon forwards again before the rest of weft is even loaded (yargs and
  // etcd3's gRPC alone take 0.4–1 s here): everything else is imported after this.
  const { resumeDataPathEarly } = await import("./backend/userspace/early-resume.js");
  await resumeDataPathEarly(argv, process.env);
  const [{ default: yargs }, { commandsFor }] = await Promise.all([import("yargs"), import("./commands/index.js")]);
  const commands = await commandsFor(argv);
  let cli = yargs(argv)
    .scriptName("weft")
    .strict()
    .demandCommand(1, "name a command; see weft --help")
    .recommendCommands()
    .help()
    // `weft completion` prints the bash script (the Debian package installs it); it calls back `weft --get-yargs-completions`.
    .completion("completion", "print a bash completion script for weft")
    // Usage errors (unknown flag, invalid choice, missing argument) are configuration errors; errors
    // from a command propagate to main() unchanged.
    .fail((message, error) => {
      if (error) throw error;
      throw new ConfigurationError(`${message}\n(see weft --help, or weft <command> --help)`);
    })
    .version(VERSION)
    .wrap(Math.min(110, process.stdout.columns || 110));
  for (const register of commands) cli = register(cli);
  await cli.parseAsync();
}

/** flanneld units may use Go's single-dash long flags (-etcd-endpoints=…); yargs needs two dashes. */
function goStyleFlags(argv: string[]): string[] {
  return argv.map((arg) => (/^-[a-z][a-z0-9]*-[a-z0-9-]+(=.*)?$/i.test(arg) || /^-(iface|version|help)(=.*)?$/.test(arg) ? `-${arg}` : arg));
}

/**
 * The one place errors become exit codes (README "Exit codes"): 78 (EX_CONFIG) for a
 * ConfigurationError, which a restart cannot fix and weft.service does not restart; otherwise a
 * code the command set, else 1.
 */
function exitCodeFor(error: unknown): number {
  if (error instanceof ConfigurationError) return EXIT_CONFIGURATION;
  return typeof process.exitCode === "number" && process.exitCode !== 0 ? process.exitCode : 1;
}

main().catch(async (error: unknown) => {
  const { isJournalStream, journalPriorityPrefix } = await import("./observe/logger.js");
  // Under systemd this last line is why the unit failed: give it the journal's err priority (each
  // line: journald reads the prefix per line), or `journalctl -p err` would not show it (seen in
  // the Vagrant lab: a broken /etc/default/weft exited 78 with nothing at priority err).
  const prefix = isJournalStream(2, process.env.JOURNAL_STREAM) ? journalPriorityPrefix(50) : "";
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`${message.split("\n").map((line, index) => `${prefix}${index === 0 ? "weft: " : ""}${line}`).join("\n")}\n`);
  // Exit now: a failed daemon may still hold sockets and timers that would keep the process alive.
  process.exit(exitCodeFor(error));
});
