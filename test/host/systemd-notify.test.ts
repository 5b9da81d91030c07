/*
 * The native sd_notify against a real unix datagram receiver (python3, SO_PASSCRED), no systemd:
 *
 *   this process --sendto(AF_UNIX, SOCK_DGRAM)--> /tmp/wtn-XXXXXX/notify.sock  (and @wtn-<random>)
 *
 * Needs the built addon (npm run build:native); no root.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadNativeAddon } from "../../src/engine/native-addon.js";
import { NotifyReceiver } from "../support/notify-receiver.js";

let dir: string;
const receivers: NotifyReceiver[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "wtn-"));
});
afterAll(async () => {
  for (const receiver of receivers) receiver.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("native notify (sd_notify without libsystemd)", () => {
  it.each([
    ["a socket path", () => join(dir, "notify.sock")],
    ["an abstract @name", () => `@wtn-${process.pid}-${Math.random().toString(36).slice(2)}`],
  ])("delivers one datagram per message to %s, from this process's PID", async (_kind, socketPath) => {
    const path = socketPath();
    const receiver = await NotifyReceiver.start(path);
    receivers.push(receiver);
    const addon = loadNativeAddon();
    addon.notify(path, "READY=1\nSTATUS=ready: subnet 10.66.1.0/24");
    addon.notify(path, "WATCHDOG=1");
    await expect.poll(() => receiver.messages.length).toBe(2);
    expect(receiver.messages.map((message) => message.fields)).toEqual([{ READY: "1", STATUS: "ready: subnet 10.66.1.0/24" }, { WATCHDOG: "1" }]);
    expect(receiver.messages.every((message) => message.pid === process.pid)).toBe(true);
  });

  it("throws naming the socket when nobody listens, and rejects a relative path", () => {
    const addon = loadNativeAddon();
    const missing = join(dir, "nobody.sock");
    expect(() => addon.notify(missing, "READY=1")).toThrow(`sendto NOTIFY_SOCKET ${missing}: No such file or directory`);
    expect(() => addon.notify("relative.sock", "READY=1")).toThrow(/NOTIFY_SOCKET "relative\.sock" is neither an absolute path nor an @abstract name/);
    expect(() => addon.notify(`/${"x".repeat(120)}`, "READY=1")).toThrow(/too long|neither an absolute path/);
  });
});
