import type { CommandModule } from "yargs";

/** Every subcommand, one module each; add a line per new command. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- yargs command modules differ in their argv types
export const commands: CommandModule<any, any>[] = [];
