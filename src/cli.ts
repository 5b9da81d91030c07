#!/usr/bin/env node
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { commands } from "./commands/index.js";
import { VERSION } from "./version.js";

/** weft's command line: one module per subcommand under src/commands/. */
async function main(): Promise<void> {
  let cli = yargs(goStyleFlags(hideBin(process.argv)))
    .scriptName("weft")
    .strict()
    .demandCommand(1, "name a command; see weft --help")
    .recommendCommands()
    .help()
    // `weft completion` prints the bash script (the Debian package installs it); it calls back `weft --get-yargs-completions`.
    .completion("completion", "print a bash completion script for weft")
    // Usage errors get one line and exit 2; errors from a command propagate to main() unchanged.
    .fail((message, error) => {
      if (error) throw error;
      process.stderr.write(`weft: ${message}\n(see weft --help, or weft <command> --help)\n`);
      process.exit(2);
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

main().catch((error: unknown) => {
  process.stderr.write(`weft: ${error instanceof Error ? error.message : String(error)}\n`);
  // Exit now: a failed daemon may still hold sockets and timers that would keep the process alive.
  process.exit(typeof process.exitCode === "number" && process.exitCode !== 0 ? process.exitCode : 1);
});
