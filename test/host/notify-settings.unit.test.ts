import { afterEach, describe, expect, it, vi } from "vitest";
import { ConfigurationError } from "../../src/errors/configuration-error.js";
import { formatNotifyMessage, takeNotifySettings } from "../../src/host/systemd/notify-settings.js";
import { NO_SERVICE_NOTIFIER, serviceNotifierFromEnv } from "../../src/host/systemd/service-notifier.js";
import { silentLogger } from "../../src/observe/logger.js";

const PID = 4242;

describe("takeNotifySettings", () => {
  it.each([
    [{}, undefined],
    [{ NOTIFY_SOCKET: "" }, undefined],
    [{ NOTIFY_SOCKET: "/run/systemd/notify" }, { socket: "/run/systemd/notify", watchdogIntervalMs: undefined, ignored: [] }],
    [{ NOTIFY_SOCKET: "@/org/freedesktop/systemd1/notify/123" }, { socket: "@/org/freedesktop/systemd1/notify/123", watchdogIntervalMs: undefined, ignored: [] }],
    [{ NOTIFY_SOCKET: "/n", WATCHDOG_USEC: "20000000" }, { socket: "/n", watchdogIntervalMs: 10_000, ignored: [] }],
    [{ NOTIFY_SOCKET: "/n", WATCHDOG_USEC: "20000000", WATCHDOG_PID: String(PID) }, { socket: "/n", watchdogIntervalMs: 10_000, ignored: [] }],
    [{ NOTIFY_SOCKET: "/n", WATCHDOG_USEC: "20000000", WATCHDOG_PID: "1" }, { socket: "/n", watchdogIntervalMs: undefined, ignored: [`WATCHDOG_PID=1 is not this process (${PID}): the watchdog is someone else's`] }],
    [{ NOTIFY_SOCKET: "/n", WATCHDOG_USEC: "0" }, { socket: "/n", watchdogIntervalMs: undefined, ignored: ['WATCHDOG_USEC="0" is not a positive number of microseconds'] }],
    [{ NOTIFY_SOCKET: "/n", WATCHDOG_USEC: "30s" }, { socket: "/n", watchdogIntervalMs: undefined, ignored: ['WATCHDOG_USEC="30s" is not a positive number of microseconds'] }],
    [{ NOTIFY_SOCKET: "/n", WATCHDOG_USEC: "1" }, { socket: "/n", watchdogIntervalMs: 1, ignored: [] }],
  ])("%j -> %j", (env, expected) => {
    expect(takeNotifySettings({ ...env }, PID)).toEqual(expected);
  });

  it("removes NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the environment, so children do not inherit them", () => {
    const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: "/n", WATCHDOG_USEC: "1000", WATCHDOG_PID: String(PID), PATH: "/usr/bin" };
    takeNotifySettings(env, PID);
    expect(env).toEqual({ PATH: "/usr/bin" });
  });

  it("refuses a NOTIFY_SOCKET that is neither a path nor an abstract name (a configuration error)", () => {
    expect(() => takeNotifySettings({ NOTIFY_SOCKET: "run/notify" }, PID)).toThrow(ConfigurationError);
    expect(() => takeNotifySettings({ NOTIFY_SOCKET: "run/notify" }, PID)).toThrow('NOTIFY_SOCKET: "run/notify" is neither an absolute path nor an @abstract socket name');
  });
});

describe("formatNotifyMessage", () => {
  it("writes one VAR=value per line and keeps a value on its line", () => {
    expect(formatNotifyMessage({ READY: "1", STATUS: "ready: subnet 10.66.1.0/24" })).toBe("READY=1\nSTATUS=ready: subnet 10.66.1.0/24");
    expect(formatNotifyMessage({ STATUS: "etcd said:\nno\r\n" })).toBe("STATUS=etcd said: no ");
  });
});

describe("serviceNotifierFromEnv", () => {
  afterEach(() => vi.useRealTimers());

  it("is a no-op without NOTIFY_SOCKET and never sends (nor loads the addon)", () => {
    const sent: string[] = [];
    expect(serviceNotifierFromEnv({}, silentLogger(), (_socket, message) => sent.push(message))).toBe(NO_SERVICE_NOTIFIER);
    expect(sent).toEqual([]);
  });

  it("sends READY=1, STATUS= and STOPPING=1, and WATCHDOG=1 at once and every WATCHDOG_USEC/2 (here 1 s) until closed", () => {
    vi.useFakeTimers();
    const sent: Array<[string, string]> = [];
    const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: "@weft-test", WATCHDOG_USEC: "2000000" };
    const notifier = serviceNotifierFromEnv(env, silentLogger(), (socket, message) => sent.push([socket, message]));
    expect(env.NOTIFY_SOCKET).toBeUndefined();
    notifier.status("waiting for the network config");
    notifier.ready("ready: subnet 10.66.1.0/24, backend alloc, 0 peer(s)");
    vi.advanceTimersByTime(3000);
    notifier.stopping("stopping");
    notifier.close();
    vi.advanceTimersByTime(5000);
    expect(sent).toEqual([
      // The first ping at once: systemd's watchdog runs from the exec, not from READY=1.
      ["@weft-test", "WATCHDOG=1"],
      ["@weft-test", "STATUS=waiting for the network config"],
      ["@weft-test", "READY=1\nSTATUS=ready: subnet 10.66.1.0/24, backend alloc, 0 peer(s)"],
      ["@weft-test", "WATCHDOG=1"],
      ["@weft-test", "WATCHDOG=1"],
      ["@weft-test", "WATCHDOG=1"],
      ["@weft-test", "STOPPING=1\nSTATUS=stopping"],
    ]);
  });

  it("keeps going when a send fails", () => {
    const notifier = serviceNotifierFromEnv({ NOTIFY_SOCKET: "/gone" }, silentLogger(), () => {
      throw new Error("sendto NOTIFY_SOCKET /gone: Connection refused");
    });
    expect(() => notifier.ready("ready")).not.toThrow();
  });
});
