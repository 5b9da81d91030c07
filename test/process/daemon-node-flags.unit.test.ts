import { readFile } from "node:fs/promises";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { DAEMON_NODE_FLAGS } from "../../src/process/daemon-node-flags.js";

describe("the daemon's V8 flags", () => {
  it("the .deb's launcher passes the same flags as the lab's daemons", async () => {
    const script = await readFile(new URL("../../deploy/debian/build-deb.sh", import.meta.url), "utf8");
    const launcher = script.match(/^exec \/usr\/lib\/weft\/node\/bin\/node (.*) \/usr\/lib\/weft\/dist\/cli\.js "\$@"$/m);
    expect(launcher?.[1]).toBe(DAEMON_NODE_FLAGS.join(" "));
  });

  it("this node accepts them and prints nothing else, also when something looks at WebAssembly", async () => {
    // --lite-mode printed "Warning: disabling flag --expose_wasm" here (node 20): a raw line in the JSON log.
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [...DAEMON_NODE_FLAGS, "-e", "void globalThis.WebAssembly; void fetch; console.log('ok')"]);
    expect(stdout.trim()).toBe("ok");
    expect(stderr).toBe("");
  });
});
