import { describe, expect, it } from "vitest";
import { COMMAND_LOADERS, commandsFor } from "../../src/commands/index.js";

describe("the command index (lazy: only the named command's module is imported)", () => {
  it("names every command by the first word of its own `command`", async () => {
    for (const [name, load] of Object.entries(COMMAND_LOADERS)) {
      const { command } = await load();
      const first = (Array.isArray(command) ? command[0] : command) as string;
      expect(first.split(" ")[0], name).toBe(name);
    }
  });

  it("registers the named command alone, and all of them for anything else", async () => {
    expect(await commandsFor(["run", "--etcd-endpoints", "http://127.0.0.1:2379"])).toHaveLength(1);
    const all = Object.keys(COMMAND_LOADERS).length;
    expect(all).toBeGreaterThan(10);
    for (const argv of [[], ["--help"], ["rnu"], ["toString"], ["__proto__"]]) expect(await commandsFor(argv), argv.join(" ")).toHaveLength(all);
  });
});
