import { CommandFailedError } from "../../process/command-errors.js";
import { runInNamespace } from "./namespace-command.js";

/** Runs `nft` in this namespace, or in `netns` through `ip netns exec` (tests, lab). */
export interface NftRunner {
  /** Applies a script with `nft -f -` (one transaction). */
  apply(script: string): Promise<void>;
  /** `nft list table …` output, or undefined when the table does not exist. */
  listTable(family: string, name: string): Promise<string | undefined>;
}

export function nftRunner(netns?: string): NftRunner {
  return {
    async apply(script) {
      await runInNamespace(netns, "nft", ["-f", "-"], script);
    },
    async listTable(family, name) {
      try {
        return await runInNamespace(netns, "nft", ["list", "table", family, name]);
      } catch (error) {
        // nft names a missing table as a missing file.
        if (error instanceof CommandFailedError && /No such file or directory/.test(error.stderr)) return undefined;
        throw error;
      }
    },
  };
}
