import yargs from "yargs";
import { describe, expect, it } from "vitest";
import { defineStoreOptions, hidePasswordFromProcessTitle, maskedCommandLine, storeOptionsFromArgs } from "../../src/commands/store-flags.js";

function parse(argv: string[]) {
  return storeOptionsFromArgs(defineStoreOptions(yargs(argv), {}).parseSync());
}

describe("--etcd-* flags and secrets", () => {
  it("refuses a user name and password inside an endpoint URL without repeating the password", () => {
    expect(() => parse(["--etcd-endpoints=https://weft:s3cret-pw@10.0.0.5:2379"])).toThrow(
      '--etcd-endpoints: "https://weft:***@…" carries a user name or password: give them as --etcd-username and --etcd-password',
    );
    let refusal: Error | undefined;
    try {
      parse(["--etcd-endpoints=http://127.0.0.1:2379,http://root:s3cret-pw@10.0.0.6:2379"]);
    } catch (error) {
      refusal = error as Error;
    }
    expect(refusal?.message).toMatch(/^--etcd-endpoints: "http:\/\/root:\*\*\*@…"/);
    expect(refusal?.message).not.toContain("s3cret-pw");
  });

  it("masks the password in the command line it shows as the process title", () => {
    expect(maskedCommandLine(["/usr/bin/node", "/usr/lib/weft/cli.js", "run", "--etcd-password=hunter2", "--etcd-username", "weft"], "hunter2")).toBe(
      "/usr/bin/node /usr/lib/weft/cli.js run --etcd-password=*** --etcd-username weft",
    );
    expect(maskedCommandLine(["weft", "leases", "--etcd-password", "hunter2"], "hunter2")).toBe("weft leases --etcd-password ***");
  });

  it("leaves the title alone when the password did not come from the command line (FLANNELD_ETCD_PASSWORD)", () => {
    const before = process.title;
    hidePasswordFromProcessTitle({ "etcd-password": "from-the-environment" }, ["node", "weft", "run"]);
    expect(process.title).toBe(before);
  });
});
