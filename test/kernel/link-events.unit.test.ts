import { describe, expect, it } from "vitest";
import { deletedDevice, isWeftDevice } from "../../src/kernel/link-events.js";

describe("link events", () => {
  it("reads the deleted device from `ip -o monitor link`", () => {
    expect(deletedDevice("Deleted 7: flannel.1: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue")).toBe("flannel.1");
    expect(deletedDevice("Deleted 12: veth5760f13@if11: <BROADCAST,MULTICAST> mtu 1500")).toBe("veth5760f13");
    expect(deletedDevice("13: flannel0: <POINTOPOINT,MULTICAST,NOARP,UP> mtu 1472")).toBeUndefined();
  });

  it("reacts to weft's devices only, not to a stopped container's veth", () => {
    for (const name of ["flannel.1", "flannel0", "flannel-wg", "flannel-v6.1", "weft.1"]) expect(isWeftDevice(name)).toBe(true);
    for (const name of ["veth5760f13", "docker0", "eth1", "flannelx", "weftbr"]) expect(isWeftDevice(name)).toBe(false);
  });
});
