import { describe, expect, it } from "vitest";
import { BUILTIN_PATHS } from "../../src/bench/paths.js";
import { parseBenchSettings, parseExtra } from "../../src/bench/settings.js";

describe("weft bench options", () => {
  it("defaults to every built-in path, 3 reps of 5 s, shared CPUs, no shaping", () => {
    const settings = parseBenchSettings({});
    expect(settings.paths.map((path) => path.id)).toEqual(["host", "bridge", "host-gw", "vxlan", "docker-overlay", "udp", "userspace-vxlan", "wireguard", "wireguard-go", "host-gw-v6", "vxlan-v6", "userspace-vxlan-v6"]);
    expect(settings).toMatchObject({ reps: 3, duration: 5, cpu: "shared" });
    expect(settings.link).toBeUndefined();
  });

  it("keeps --paths in the order given and takes numbers as typed", () => {
    const settings = parseBenchSettings({ paths: "vxlan, host", reps: "2", duration: 1, cpu: "pinned", link: "10gbit" });
    expect(settings.paths.map((path) => path.id)).toEqual(["vxlan", "host"]);
    expect(settings).toMatchObject({ reps: 2, duration: 1, cpu: "pinned", link: { text: "10gbit", bitsPerSecond: 1e10 } });
  });

  it.each([
    [{ paths: "vxlan,geneve" }, /^--paths: "geneve" is not a path; paths are host, bridge, host-gw, vxlan, docker-overlay, udp, userspace-vxlan, wireguard, wireguard-go, host-gw-v6, vxlan-v6, userspace-vxlan-v6$/],
    [{ paths: "flanneld-udp" }, /--paths: "flanneld-udp" is not a path; .*; flanneld's paths need --flanneld PATH/],
    [{ paths: "vxlan,vxlan" }, /--paths: "vxlan" is listed twice/],
    [{ paths: " , " }, /--paths " , ": name at least one path/],
    [{ reps: "3x" }, /--reps "3x": expected a whole number from 1 to 50/],
    [{ reps: 0 }, /--reps "0": expected a whole number from 1 to 50/],
    [{ duration: "1.5" }, /--duration "1.5": expected a whole number from 1 to 600/],
    [{ cpu: "isolated" }, /--cpu "isolated": expected shared or pinned/],
    [{ link: "10G" }, /--link "10G": expected a rate of at least 100kbit with tc's units, e.g. 10gbit/],
    [{ link: "10bit" }, /--link "10bit": expected a rate of at least 100kbit/],
    [{ flanneld: "" }, /--flanneld "": expected the path of the flanneld binary/],
    [{ extra: ["no-command"] }, /--extra "no-command": expected NAME=COMMAND or NAME:BACKEND=COMMAND/],
    [{ extra: ["Upper=cmd"] }, /--extra "Upper=cmd": expected NAME=COMMAND/],
    [{ extra: ["vxlan=cmd"] }, /--extra vxlan: that name is already a path; pick another NAME/],
    [{ json: " " }, /--json: expected a file name/],
  ])("rejects %j, naming the flag", (input, message) => {
    expect(() => parseBenchSettings(input)).toThrow(message);
  });

  it("adds flanneld's udp and vxlan rows with --flanneld, and a row per --extra", () => {
    const settings = parseBenchSettings({ flanneld: "/opt/flanneld", extra: ["mine:udp=/opt/mine --etcd={etcd}"] });
    const ids = settings.paths.map((path) => path.id);
    expect(ids.slice(BUILTIN_PATHS.length)).toEqual(["flanneld-udp", "flanneld-vxlan", "mine"]);
    expect(settings.paths.find((path) => path.id === "mine")?.daemons).toBe("mine");
    expect(parseExtra("x=a=b c")).toEqual({ name: "x", backend: "vxlan", command: "a=b c" });
  });
});
