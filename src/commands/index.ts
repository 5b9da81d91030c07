import type { Argv, CommandModule } from "yargs";

/** Adds one subcommand to the CLI; each module keeps its own argv type. */
export type CommandRegistration = (cli: Argv) => Argv;

/** A command module once imported: its `command` (for the name check) and how to add it. */
export interface LoadedCommand {
  command: CommandModule["command"];
  register: CommandRegistration;
}

function loaded<U>(module: CommandModule<object, U>): LoadedCommand {
  return { command: module.command, register: (cli) => cli.command(module) };
}

/**
 * Every subcommand by its name (the first word of its `command`), one module each, imported only
 * when needed: the daemon (`weft run`) is a long-lived process, and the modules of the commands
 * it is not (the lab, the bench, doctor) cost it ~4 MiB of resident memory for the whole of its
 * life (measured on node 20 with the daemon's V8 flags: 61.7 → 57.7 MiB right after import).
 * Add a line per new command; test/commands/command-index.unit.test.ts checks the names.
 */
export const COMMAND_LOADERS: Readonly<Record<string, () => Promise<LoadedCommand>>> = {
  run: async () => loaded((await import("./run.js")).runCommand),
  config: async () => loaded((await import("./config.js")).configCommand),
  leases: async () => loaded((await import("./leases.js")).leasesCommand),
  reserve: async () => loaded((await import("./reserve.js")).reserveCommand),
  unreserve: async () => loaded((await import("./reserve.js")).unreserveCommand),
  lab: async () => loaded((await import("./lab.js")).labCommand),
  "docker-opts": async () => loaded((await import("./docker-opts.js")).dockerOptsCommand),
  doctor: async () => loaded((await import("./doctor.js")).doctorCommand),
  cleanup: async () => loaded((await import("./cleanup.js")).cleanupCommand),
  bench: async () => loaded((await import("./bench.js")).benchCommand),
  probe: async () => loaded((await import("./probe.js")).probeCommand),
};

/**
 * The commands to register for these arguments: the named one alone when the first argument
 * names one (yargs then sees the same CLI for it), else all of them (--help, a typo yargs should
 * answer with "did you mean", completion).
 */
export async function commandsFor(argv: readonly string[]): Promise<CommandRegistration[]> {
  const first = argv[0];
  const named = first !== undefined && Object.hasOwn(COMMAND_LOADERS, first) ? [COMMAND_LOADERS[first]!] : Object.values(COMMAND_LOADERS);
  return (await Promise.all(named.map((load) => load()))).map((each) => each.register);
}
