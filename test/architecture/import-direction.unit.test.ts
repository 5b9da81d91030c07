import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/**
 * Arrows point down: a folder of src/ imports only from itself and from folders below it, and
 * native/src has no include circle. The layers, lowest first; a folder may import any folder of
 * a lower layer, none of its own layer but itself, nothing above. In native/src, no include
 * circle and no call circle between .c files (engine.c calls inside.c/outside.c, never back).
 */
const LAYERS: readonly (readonly string[])[] = [
  ["errors", "async", "net", "codec", "version.ts"],
  ["process", "observe", "store"],
  ["config", "engine"],
  ["kernel", "host", "lease"],
  ["backend"],
  // Peer probing: uses leases and backend options, used by the daemon and commands.
  ["probe"],
  ["daemon.ts", "lab"],
  // bench is a program over the lab; `weft bench` (commands/bench.ts) is its CLI front.
  ["bench"],
  ["commands"],
  ["cli.ts"],
];

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const src = join(root, "src");

function filesUnder(dir: string, ending: RegExp): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    return statSync(path).isDirectory() ? filesUnder(path, ending) : ending.test(entry) ? [path] : [];
  });
}

/** The top folder of src/ a file belongs to ("daemon.ts" for files directly in src/). */
function unitOf(path: string): string {
  return relative(src, path).split("/")[0] as string;
}

function layerOf(unit: string): number {
  const layer = LAYERS.findIndex((units) => units.includes(unit));
  if (layer < 0) throw new Error(`src/${unit} is in no layer of this test: add it to LAYERS where it belongs`);
  return layer;
}

/** Every relative import of every src file, as [importing unit, imported unit, file]. */
function imports(): Array<[string, string, string]> {
  const result: Array<[string, string, string]> = [];
  for (const file of filesUnder(src, /\.ts$/)) {
    const text = readFileSync(file, "utf8");
    for (const match of text.matchAll(/(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)) {
      const target = resolve(dirname(file), (match[1] as string).replace(/\.js$/, ".ts"));
      result.push([unitOf(file), unitOf(target), relative(root, file)]);
    }
  }
  return result;
}

/** Every circle of a graph (node → the nodes it points to), as "a -> b -> a". */
function circlesIn(graph: ReadonlyMap<string, Iterable<string>>): string[] {
  const circles: string[] = [];
  const visit = (node: string, path: string[]) => {
    if (path.includes(node)) {
      circles.push([...path.slice(path.indexOf(node)), node].join(" -> "));
      return;
    }
    for (const next of graph.get(node) ?? []) visit(next, [...path, node]);
  };
  for (const node of graph.keys()) visit(node, []);
  return circles;
}

describe("import direction", () => {
  it("every src folder imports only from itself and from lower layers", () => {
    const upward = imports()
      .filter(([from, to]) => from !== to && layerOf(to) >= layerOf(from))
      .map(([from, to, file]) => `${file}: ${from} -> ${to}`);
    expect(upward).toEqual([]);
  });

  it("every top-level entry of src is in a layer", () => {
    for (const entry of readdirSync(src)) expect(() => layerOf(entry)).not.toThrow();
  });

  it("native/src has no include circle", () => {
    const nativeSrc = join(root, "native/src");
    const includes = new Map<string, string[]>();
    for (const file of filesUnder(nativeSrc, /\.[ch]$/)) {
      const names = [...readFileSync(file, "utf8").matchAll(/#include "([^"]+)"/g)].map((m) => m[1] as string);
      includes.set(relative(nativeSrc, file), names);
    }
    expect(circlesIn(includes)).toEqual([]);
  });

  it("only engine.c and the addon include the lifecycle header; the packet code sees the data-path header", () => {
    const nativeSrc = join(root, "native/src");
    const includers = filesUnder(nativeSrc, /\.[ch]$/)
      .filter((file) => /#include "engine\.h"/.test(readFileSync(file, "utf8")))
      .map((file) => relative(nativeSrc, file))
      .sort();
    expect(includers).toEqual(["addon.c", "engine.c"]);
  });

  it("native/src has no call circle between its .c files", () => {
    const nativeSrc = join(root, "native/src");
    const sources = filesUnder(nativeSrc, /\.c$/).map((file) => ({ name: relative(nativeSrc, file), text: readFileSync(file, "utf8") }));
    // Functions with external linkage, by the file that defines them (a definition starts a line).
    const definedIn = new Map<string, string>();
    for (const { name, text } of sources) {
      for (const match of text.matchAll(/^(?!static)[a-z_][\w *]*?\b(\w+)\([^;{]*\)\s*\{/gm)) definedIn.set(match[1] as string, name);
    }
    expect(definedIn.get("inside_drain")).toBe("inside.c"); // the scan itself works
    const calls = new Map<string, Set<string>>();
    for (const { name, text } of sources) {
      const callees = new Set<string>();
      for (const match of text.matchAll(/\b(\w+)\s*\(/g)) {
        const home = definedIn.get(match[1] as string);
        if (home && home !== name) callees.add(home);
      }
      calls.set(name, callees);
    }
    expect(circlesIn(calls)).toEqual([]);
    expect([...(calls.get("engine.c") ?? [])]).toContain("inside.c"); // engine.c drives the directions, never the reverse
  });
});
