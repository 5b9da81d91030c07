import yargs from "yargs";
import { describe, expect, it } from "vitest";
import { defineRunOptions, describeRunHelp } from "../../src/commands/run.js";

/** `weft run --help` as the CLI builds it, without running anything. */
async function runHelp(): Promise<string> {
  return describeRunHelp(defineRunOptions(yargs([]).scriptName("weft").wrap(200))).getHelp();
}

/** The lines of one help section: from its heading to the next blank line. */
function section(help: string, heading: string): string[] {
  const lines = help.split("\n");
  const start = lines.indexOf(heading);
  if (start < 0) return [];
  const end = lines.indexOf("", start);
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

describe("weft run --help", () => {
  it("puts every flag in a group, so none is left under Options: but --help and --version", async () => {
    const options = section(await runHelp(), "Options:").map((line) => line.trim().split(/\s+/)[0]);
    expect(options).toEqual(["--help", "--version"]);
  });

  it.each([
    ["etcd:", "--etcd-endpoints"],
    ["Interface:", "--iface"],
    ["Lease:", "--subnet-lease-renew-margin"],
    ["Traffic rules:", "--ip-masq"],
    ["Health:", "--healthz-port"],
    ["weft's own:", "--reconcile-interval"],
  ])("has the group %s with %s", async (heading, flag) => {
    expect(section(await runHelp(), heading).some((line) => line.trim().startsWith(`${flag} `))).toBe(true);
  });

  it("says how FLANNELD_* variables map to flags, and where the exit codes are", async () => {
    const help = await runHelp();
    expect(help).toContain("--etcd-endpoints is FLANNELD_ETCD_ENDPOINTS");
    expect(help).toMatch(/^Exit codes: /m);
  });
});
