import { execFile, spawn } from "node:child_process";

/** Runs `nft` in this namespace, or in `netns` through `ip netns exec` (tests, lab). */
export interface NftRunner {
  /** Applies a script with `nft -f -` (one transaction). */
  apply(script: string): Promise<void>;
  /** `nft list table …` output, or undefined when the table does not exist. */
  listTable(family: string, name: string): Promise<string | undefined>;
}

export function nftRunner(netns?: string): NftRunner {
  const command = (args: string[]): [string, string[]] =>
    netns === undefined ? ["nft", args] : ["ip", ["netns", "exec", netns, "nft", ...args]];
  const where = netns === undefined ? "" : ` in namespace "${netns}"`;
  return {
    apply(script) {
      const [file, args] = command(["-f", "-"]);
      return new Promise((resolve, reject) => {
        const child = spawn(file, args, { stdio: ["pipe", "ignore", "pipe"] });
        let stderr = "";
        child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
        child.once("error", (error: NodeJS.ErrnoException) =>
          reject(new Error(error.code === "ENOENT" ? `"${file}" is not installed (apt-get install nftables)` : error.message)),
        );
        child.once("close", (code) => {
          if (code === 0) resolve();
          else reject(new Error(`nft -f failed${where} (exit ${code}): ${stderr.trim()}; script was:\n${script}`));
        });
        child.stdin.on("error", () => undefined);
        child.stdin.end(script);
      });
    },
    listTable(family, name) {
      const [file, args] = command(["list", "table", family, name]);
      return new Promise((resolve, reject) => {
        execFile(file, args, { timeout: 10_000 }, (error, stdout, stderr) => {
          if (!error) return resolve(stdout);
          if (/No such file or directory/.test(stderr)) return resolve(undefined);
          reject(new Error(`nft list table ${family} ${name} failed${where}: ${stderr.trim() || error.message}`));
        });
      });
    },
  };
}
