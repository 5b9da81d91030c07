#!/usr/bin/env node
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { commands } from "./commands/index.js";
import { VERSION } from "./version.js";

const REPEATABLE_FLAGS = new Set(["_", "iface", "iface-regex", "ifaceRegex"]);

/** weft's command line: one module per subcommand under src/commands/. */
async function main(): Promise<void> {
  let cli = yargs(goStyleFlags(hideBin(process.argv)))
    .scriptName("weft")
    .strict()
    .demandCommand(1, "name a command; see weft --help")
    .recommendCommands()
    .help()
    // Usage errors get one line and exit 2; errors from a command propagate to main() unchanged.
    .fail((message, error) => {
      if (error) throw error;
      process.stderr.write(`weft: ${message}\n(see weft --help, or weft <command> --help)\n`);
      process.exit(2);
    })
    .version(VERSION)
    // Go's flag package lets a repeated flag override the earlier one (units often append flags);
    // only the flags meant to repeat keep every value.
    .middleware((argv) => {
      for (const [key, value] of Object.entries(argv)) {
        if (Array.isArray(value) && !REPEATABLE_FLAGS.has(key)) argv[key] = value.at(-1);
      }
    }, true)
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
  process.exitCode = process.exitCode || 1;
});
