import { describe, expect, it } from "vitest";
import { socketFdStore, takeListenFds } from "../../src/host/systemd/fd-store.js";

describe("systemd's fd store protocol", () => {
  it("stores each fd in its own FDSTORE=1 message with its FDNAME and FDPOLL=0, and removes by name", () => {
    const sent: [string, string, readonly number[] | undefined][] = [];
    const store = socketFdStore("/run/systemd/notify", (socket, message, fds) => sent.push([socket, message, fds]));
    store.store([{ name: "weft-tun-0", fd: 7 }, { name: "weft-udp-0", fd: 9 }]);
    store.remove(["weft-tun-0"]);
    expect(sent).toEqual([
      ["/run/systemd/notify", "FDSTORE=1\nFDNAME=weft-tun-0\nFDPOLL=0", [7]],
      ["/run/systemd/notify", "FDSTORE=1\nFDNAME=weft-udp-0\nFDPOLL=0", [9]],
      ["/run/systemd/notify", "FDSTOREREMOVE=1\nFDNAME=weft-tun-0", undefined],
    ]);
  });

  it("takes LISTEN_FDS from fd 3 on by LISTEN_FDNAMES, only for our pid, and removes the variables", () => {
    const env: NodeJS.ProcessEnv = { LISTEN_FDS: "3", LISTEN_PID: "42", LISTEN_FDNAMES: "weft-tun-0:weft-udp-0:", PATH: "/bin" };
    expect([...takeListenFds(env, 42)]).toEqual([["weft-tun-0", 3], ["weft-udp-0", 4], ["unknown-2", 5]]);
    expect(env).toEqual({ PATH: "/bin" });
    const other: NodeJS.ProcessEnv = { LISTEN_FDS: "2", LISTEN_PID: "41", LISTEN_FDNAMES: "a:b" };
    expect(takeListenFds(other, 42).size).toBe(0);
    expect(other).toEqual({});
    expect(takeListenFds({ LISTEN_FDS: "x", LISTEN_PID: "42" }, 42).size).toBe(0);
    expect(takeListenFds({}, 42).size).toBe(0);
  });
});
