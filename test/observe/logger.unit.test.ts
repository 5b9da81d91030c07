import { closeSync, fstatSync, openSync, readFileSync, rmSync } from "node:fs";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { createLogger, isJournalStream, journalPriorityPrefix } from "../../src/observe/logger.js";

const dir = mkdtempSync(join(tmpdir(), "wtl-"));
const saved = process.env.JOURNAL_STREAM;
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  if (saved === undefined) delete process.env.JOURNAL_STREAM;
  else process.env.JOURNAL_STREAM = saved;
});

/** Logs one line per level to a file through createLogger({ fd }) with $JOURNAL_STREAM as given. */
function logToFile(name: string, journalStream: (fd: number) => string | undefined, level: "trace" | "info" = "trace"): string[] {
  const path = join(dir, name);
  const fd = openSync(path, "w");
  try {
    const value = journalStream(fd);
    if (value === undefined) delete process.env.JOURNAL_STREAM;
    else process.env.JOURNAL_STREAM = value;
    const logger = createLogger({ level, fd });
    logger.trace("t");
    logger.debug("d");
    logger.info("i");
    logger.child({ backend: "alloc" }).warn("w");
    logger.error({ err: new Error("etcd is down", { cause: new Error("ECONNREFUSED") }) }, "cannot lease a subnet; retrying");
    logger.fatal("f");
  } finally {
    closeSync(fd);
  }
  const text = readFileSync(path, "utf8");
  rmSync(path);
  return text.trimEnd().split("\n");
}

const deviceInode = (fd: number) => {
  const stat = fstatSync(fd, { bigint: true });
  return `${stat.dev}:${stat.ino}`;
};

describe("journald priorities", () => {
  it.each([
    [10, "<7>"], [20, "<7>"], [30, "<6>"], [40, "<4>"], [50, "<3>"], [60, "<3>"],
  ])("pino level %i -> %s", (level, prefix) => {
    expect(journalPriorityPrefix(level)).toBe(prefix);
  });

  it("prefix every line when $JOURNAL_STREAM is the log fd's device:inode (synchronously: read right after)", () => {
    const lines = logToFile("journal.log", deviceInode);
    expect(lines.map((line) => line.slice(0, 3))).toEqual(["<7>", "<7>", "<6>", "<4>", "<3>", "<3>"]);
    const warn = JSON.parse(lines[3]!.slice(3)) as Record<string, unknown>;
    expect(warn).toMatchObject({ level: 40, msg: "w", backend: "alloc", name: "weft" });
  });

  it("are left off when $JOURNAL_STREAM is unset, malformed or names another stream", () => {
    for (const value of [() => undefined, () => "garbage", (fd: number) => `${deviceInode(fd)}1`]) {
      const lines = logToFile("plain.log", value);
      expect(lines.every((line) => line.startsWith("{"))).toBe(true);
    }
    expect(isJournalStream(99_999, "1:2")).toBe(false);
  });
});

describe("the err field", () => {
  it("holds type, message and cause; the stack only at debug and trace", () => {
    const atTrace = JSON.parse(logToFile("err-trace.log", () => undefined).at(-2)!) as { err: Record<string, unknown>; msg: string };
    expect(atTrace.msg).toBe("cannot lease a subnet; retrying");
    expect(atTrace.err).toMatchObject({ type: "Error", message: "etcd is down", cause: "ECONNREFUSED" });
    expect(atTrace.err.stack).toMatch(/^Error: etcd is down\n/);
    const atInfo = JSON.parse(logToFile("err-info.log", () => undefined, "info").at(-2)!) as { err: Record<string, unknown> };
    expect(atInfo.err).toEqual({ type: "Error", message: "etcd is down", cause: "ECONNREFUSED" });
  });
});
