import yargs from "yargs";
import { describe, expect, it } from "vitest";
import { defaultFromEnvironment, environmentName } from "../../src/commands/flag-environment.js";
import { defineInterfaceOptions } from "../../src/commands/interface-flags.js";
import { defineStoreOptions, storeOptionsFromArgs } from "../../src/commands/store-flags.js";

/** A host's /etc/default/weft: etcd settings plus flags only `weft run` has. */
const hostEnvironment = {
  FLANNELD_ETCD_ENDPOINTS: "http://192.0.2.10:2379",
  FLANNELD_ETCD_PASSWORD: "s3cret",
  FLANNELD_IFACE: "eth1",
  FLANNELD_IP_MASQ: "true",
  FLANNELD_HEALTHZ_PORT: "9471",
};

function parseLikeLeases(argv: string[], environment: Record<string, string>) {
  return defineStoreOptions(yargs(argv).strict().fail((message) => { throw new Error(message); }), environment).parseSync();
}

describe("FLANNELD_* variables outside `weft run`", () => {
  it("names the variable as flanneld does", () => {
    expect(environmentName("etcd-endpoints")).toBe("FLANNELD_ETCD_ENDPOINTS");
    expect(environmentName("iface-can-reach")).toBe("FLANNELD_IFACE_CAN_REACH");
  });

  it("takes the etcd settings and ignores run-only variables instead of rejecting them", () => {
    const args = parseLikeLeases([], hostEnvironment);
    expect(storeOptionsFromArgs(args)).toMatchObject({ endpoints: ["http://192.0.2.10:2379"], password: "s3cret" });
  });

  it("lets a flag on the command line win over the variable", () => {
    const args = parseLikeLeases(["--etcd-endpoints", "http://127.0.0.1:2379"], hostEnvironment);
    expect(args["etcd-endpoints"]).toBe("http://127.0.0.1:2379");
  });

  it("still rejects an unknown flag on the command line", () => {
    expect(() => parseLikeLeases(["--ip-masq"], hostEnvironment)).toThrow(/Unknown arguments?: ip-masq/);
  });

  it("shows the variable's name in --help, never a password's value", async () => {
    let help = "";
    await defineStoreOptions(yargs([]), hostEnvironment).showHelp((text) => { help = text; });
    expect(help).toContain("$FLANNELD_ETCD_PASSWORD");
    expect(help).not.toContain("s3cret");
  });

  it("reads the interface flags of doctor from their variables", () => {
    const args = defineInterfaceOptions(yargs([]).strict(), hostEnvironment).parseSync();
    expect(args.iface).toBe("eth1");
    expect(defaultFromEnvironment("public-ip", undefined, {})).toEqual({});
  });
});
