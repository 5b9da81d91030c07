#!/usr/bin/env node
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { commands } from "./commands/index.js";

/** weft's command line: one module per subcommand under src/commands/. */
async function main(): Promise<void> {
  let cli = yargs(hideBin(process.argv))
    .scriptName("weft")
    .strict()
    .demandCommand(1, "name a command; see weft --help")
    .recommendCommands()
    .help()
    .version(false)
    .wrap(Math.min(110, process.stdout.columns || 110));
  for (const command of commands) cli = cli.command(command);
  await cli.parseAsync();
}

main().catch((error: unknown) => {
  process.stderr.write(`weft: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = process.exitCode || 1;
});
