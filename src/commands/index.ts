import type { Argv, CommandModule } from "yargs";
import { configCommand } from "./config.js";
import { dockerOptsCommand } from "./docker-opts.js";
import { leasesCommand } from "./leases.js";
import { reserveCommand, unreserveCommand } from "./reserve.js";
import { runCommand } from "./run.js";
import { labCommand } from "./lab.js";
import { doctorCommand } from "./doctor.js";
import { cleanupCommand } from "./cleanup.js";
import { benchCommand } from "./bench.js";
import { probeCommand } from "./probe.js";

/** Adds one subcommand to the CLI; each module keeps its own argv type. */
export type CommandRegistration = (cli: Argv) => Argv;

function command<U>(module: CommandModule<object, U>): CommandRegistration {
  return (cli) => cli.command(module);
}

/** Every subcommand, one module each; add a line per new command. */
export const commands: readonly CommandRegistration[] = [
  command(runCommand),
  command(configCommand),
  command(leasesCommand),
  command(reserveCommand),
  command(unreserveCommand),
  command(labCommand),
  command(dockerOptsCommand),
  command(doctorCommand),
  command(cleanupCommand),
  command(benchCommand),
  command(probeCommand),
];
