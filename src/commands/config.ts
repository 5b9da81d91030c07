import { readFile } from "node:fs/promises";
import type { Argv, CommandModule } from "yargs";
import { findBackend } from "../backend/registry.js";
import { describeNetworkConfig, parseNetworkConfig, type NetworkConfig, ignoredFieldsNote } from "../config/network-config.js";
import { defineStoreOptions, withStore, type StoreArgs } from "./store-flags.js";
import { errorMessage } from "../errors/error-message.js";

/** `weft config get|set`: the network config at <prefix>/config, validated before it is written. */
interface ConfigSetArgs extends StoreArgs {
  config: string;
}

/** Parses and checks a config the way the daemon will; throws naming the field. */
export function validateNetworkConfigText(text: string): NetworkConfig {
  const config = parseNetworkConfig(text);
  const factory = findBackend(config.backend.type);
  factory.validateOptions(config.backend.options);
  factory.validateNetwork?.(config);
  return config;
}

async function readConfigArgument(argument: string): Promise<string> {
  if (!argument.startsWith("@")) return argument;
  const path = argument.slice(1);
  if (path === "-") {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  }
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    throw new Error(`cannot read the config file ${path}: ${errorMessage(error)}`);
  }
}

const getCommand: CommandModule<object, StoreArgs> = {
  command: "get",
  describe: "print the network config stored in etcd",
  builder: (yargs) => defineStoreOptions(yargs),
  handler: async (args) => {
    await withStore(args, async (store) => {
      const stored = await store.get(store.configKey);
      if (!stored) {
        throw new Error(
          `no network config at ${store.configKey}; a config written with the etcd v2 API (ETCDCTL_API=2) ` +
            `is invisible to v3 clients: write it with "weft config set '<json>'"`,
        );
      }
      process.stdout.write(`${stored.value.trimEnd()}\n`);
      try {
        validateNetworkConfigText(stored.value);
      } catch (error) {
        process.stderr.write(`weft: warning: the stored config is not valid: ${errorMessage(error)}\n`);
        process.exitCode = 3;
      }
    });
  },
};

const setCommand: CommandModule<object, ConfigSetArgs> = {
  command: "set <config>",
  describe: "validate and write the network config (JSON text, @file, or @- for stdin)",
  builder: (yargs) =>
    defineStoreOptions(yargs as Argv).positional("config", {
      type: "string",
      demandOption: true,
      describe: 'e.g. \'{"Network":"10.66.0.0/16","Backend":{"Type":"vxlan"}}\'',
    }) as unknown as Argv<ConfigSetArgs>,
  handler: async (args) => {
    const text = await readConfigArgument(args.config);
    const config = validateNetworkConfigText(text);
    await withStore(args, async (store) => {
      await store.put(store.configKey, text.trim());
      process.stdout.write(`wrote ${store.configKey}: ${describeNetworkConfig(config)}, backend ${config.backend.type}\n`);
      const note = ignoredFieldsNote(config);
      if (note) process.stdout.write(`note: ${note}\n`);
    });
  },
};

export const configCommand: CommandModule<object, object> = {
  command: "config <command>",
  describe: "show or set the network config in etcd",
  builder: (yargs) => yargs.command(getCommand).command(setCommand).demandCommand(1),
  handler: () => undefined,
};
