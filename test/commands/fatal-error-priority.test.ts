import { spawnSync } from "node:child_process";
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { weftCliPath } from "../../src/lab/lab-daemon.js";

/** Runs the CLI with stderr on a file, as systemd runs it with stderr on the journal's stream. */
function fatalLine(journalStreamOf: (path: string) => string | undefined): { status: number | null; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), "weft-fatal-"));
  try {
    const path = join(dir, "stderr");
    const fd = openSync(path, "w");
    const journalStream = journalStreamOf(path);
    const result = spawnSync(process.execPath, [weftCliPath(), "run", "--subnet-lease-renew-margin", "0"], {
      stdio: ["ignore", "ignore", fd],
      env: { ...process.env, ...(journalStream ? { JOURNAL_STREAM: journalStream } : {}) },
      timeout: 20_000,
    });
    closeSync(fd);
    return { status: result.status, stderr: readFileSync(path, "utf8") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("the error weft exits with", () => {
  it("carries journald's err priority when stderr is the journal, so journalctl -p err shows it", () => {
    const { status, stderr } = fatalLine((path) => {
      const stat = statSync(path);
      return `${stat.dev}:${stat.ino}`;
    });
    expect(status).toBe(78);
    expect(stderr).toMatch(/^<3>weft: --subnet-lease-renew-margin: /);
  });

  it("is a plain line anywhere else", () => {
    const { status, stderr } = fatalLine(() => undefined);
    expect(status).toBe(78);
    expect(stderr).toMatch(/^weft: --subnet-lease-renew-margin: /);
  });
});
