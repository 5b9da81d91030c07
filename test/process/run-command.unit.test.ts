/*
 * The command runner with plain programs (true, false, cat, sh, sleep) and a missing one:
 * no root, no namespaces. Running inside a namespace is covered by test/lab/netns.test.ts.
 */
import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import {
  CommandFailedError,
  CommandMissingError,
  CommandTimedOutError,
  commandFailureText,
} from "../../src/process/command-errors.js";
import { commandLineIn, runCommand } from "../../src/process/run-command.js";
import { isAlive, terminatePids } from "../../src/process/pids.js";

const MISSING = "weft-no-such-program";

describe("runCommand", () => {
  it("resolves with the output of a command that exits 0", async () => {
    expect(await runCommand("true", [])).toEqual({ exitCode: 0, signal: null, stdout: "", stderr: "", timedOut: false });
    expect((await runCommand("cat", [], { input: "line one\nline two\n" })).stdout).toBe("line one\nline two\n");
  });

  it("rejects a non-zero exit with CommandFailedError carrying the exit code, stdout and stderr", async () => {
    const failure = runCommand("sh", ["-c", "echo out; echo oops >&2; exit 3"]);
    await expect(failure).rejects.toBeInstanceOf(CommandFailedError);
    await expect(failure).rejects.toMatchObject({ program: "sh", exitCode: 3, signal: null, stdout: "out\n", stderr: "oops\n", netns: undefined });
    await expect(failure).rejects.toThrow("`sh -c echo out; echo oops >&2; exit 3` failed (exit code 3): oops");
    await expect(runCommand("false", [], { hint: "check the thing" })).rejects.toThrow("`false` failed (exit code 1): (no output) — check the thing");
  });

  it("with allowFailure, resolves with a non-zero exit instead", async () => {
    expect(await runCommand("sh", ["-c", "echo why >&2; exit 4"], { allowFailure: true })).toEqual({
      exitCode: 4,
      signal: null,
      stdout: "",
      stderr: "why\n",
      timedOut: false,
    });
  });

  it("rejects a missing program with CommandMissingError naming it, also with allowFailure", async () => {
    // An explicit PATH: a PATH entry this user may not search would turn ENOENT into EACCES.
    const missing = runCommand(MISSING, ["x"], { allowFailure: true, env: { PATH: "/usr/bin:/bin" } });
    await expect(missing).rejects.toBeInstanceOf(CommandMissingError);
    await expect(missing).rejects.toMatchObject({ program: MISSING, installPackage: undefined });
    await expect(missing).rejects.toThrow(`"${MISSING}" is not installed or not on PATH`);
  });

  it("names the package to install for a program weft knows, and why weft needs it", async () => {
    const missing = runCommand("ethtool", ["-k", "lo"], { env: { PATH: "/nonexistent" }, purpose: "Backend.TxChecksumOffload=false needs ethtool" });
    await expect(missing).rejects.toThrow('"ethtool" is not installed: Backend.TxChecksumOffload=false needs ethtool (apt-get install ethtool)');
    expect(new CommandMissingError("ip").message).toBe('"ip" is not installed (apt-get install iproute2)');
    expect(new CommandMissingError("nft").installPackage).toBe("nftables");
  });

  it("kills a command at its timeout: CommandTimedOutError, or timedOut with allowFailure", async () => {
    const started = Date.now();
    const slow = runCommand("sleep", ["5"], { timeoutMs: 100 });
    await expect(slow).rejects.toBeInstanceOf(CommandTimedOutError);
    await expect(slow).rejects.toBeInstanceOf(CommandFailedError);
    await expect(slow).rejects.toMatchObject({ timeoutMs: 100, signal: "SIGKILL", exitCode: null });
    await expect(slow).rejects.toThrow("`sleep 5` failed (timed out after 100 ms, killed): (no output)");
    expect(Date.now() - started).toBeLessThan(4000);
    expect(await runCommand("sleep", ["5"], { timeoutMs: 100, allowFailure: true })).toMatchObject({ exitCode: null, signal: "SIGKILL", timedOut: true });
  });

  it("kills a command that prints more than maxOutputBytes, also with allowFailure", async () => {
    const flood = runCommand("head", ["-c", "100000", "/dev/zero"], { maxOutputBytes: 1000, allowFailure: true });
    await expect(flood).rejects.toBeInstanceOf(CommandFailedError);
    await expect(flood).rejects.toThrow("printed more than 1000 bytes");
    expect((await runCommand("head", ["-c", "1000", "/dev/zero"], { maxOutputBytes: 1000 })).stdout).toHaveLength(1000);
  });

  it("judges a command that ignores its input by its exit status, not by the broken pipe", async () => {
    expect((await runCommand("true", [], { input: "x".repeat(1 << 20) })).exitCode).toBe(0);
  });
});

describe("command errors", () => {
  it("withHint keeps the class and the failure, with the original as cause", async () => {
    const original = await runCommand("sleep", ["5"], { timeoutMs: 50 }).catch((error: unknown) => error);
    expect(original).toBeInstanceOf(CommandTimedOutError);
    const hinted = (original as CommandTimedOutError).withHint("failing line 2");
    expect(hinted).toBeInstanceOf(CommandTimedOutError);
    expect(hinted).toMatchObject({ program: "sleep", args: ["5"], timeoutMs: 50, hint: "failing line 2", cause: original });
    expect(hinted.message).toMatch(/ — failing line 2$/);
  });

  it("commandFailureText is the tool's stderr when it printed one, else the whole message", async () => {
    expect(commandFailureText(await runCommand("sh", ["-c", "echo ' bad thing ' >&2; exit 1"]).catch((error: unknown) => error))).toBe("bad thing");
    expect(commandFailureText(await runCommand("false", []).catch((error: unknown) => error))).toBe("`false` failed (exit code 1): (no output)");
    expect(commandFailureText(new Error("plain"))).toBe("plain");
  });

  it("commandLineIn runs through ip netns exec only when a namespace is given", () => {
    expect(commandLineIn(undefined, "nft", ["-f", "-"])).toEqual(["nft", ["-f", "-"]]);
    expect(commandLineIn("ns1", "nft", ["-f", "-"])).toEqual(["ip", ["netns", "exec", "ns1", "nft", "-f", "-"]]);
  });
});

describe("pids", () => {
  it("isAlive follows a process until it exits; terminatePids stops it by PID", async () => {
    const child = spawn("sleep", ["30"], { stdio: "ignore" });
    const exited = new Promise((resolve) => child.once("exit", resolve));
    const pid = child.pid as number;
    expect(isAlive(pid)).toBe(true);
    await Promise.all([terminatePids([pid], 1000), exited]);
    expect(isAlive(pid)).toBe(false);
  });
});
