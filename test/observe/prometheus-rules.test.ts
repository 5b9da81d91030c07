/*
 * deploy/prometheus/weft-rules.yml is valid (`promtool check rules`) and its alerts fire exactly
 * as deploy/prometheus/weft-rules.test.yml says (`promtool test rules`); deploy/grafana/weft.json
 * only queries series weft exports (docs/metrics.md lists them). promtool is Debian's `prometheus`.
 */
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { runCommand } from "../../src/process/run-command.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const rules = join(root, "deploy/prometheus");

describe("Prometheus rules and the Grafana dashboard", () => {
  it("promtool check rules accepts weft-rules.yml", async () => {
    const result = await runCommand("promtool", ["check", "rules", join(rules, "weft-rules.yml")], { allowFailure: true, purpose: "checking the alert rules (apt-get install prometheus)" });
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/SUCCESS: 8 rules found/);
  });

  it("promtool test rules: every alert fires on its case and not on the others", async () => {
    const result = await runCommand("promtool", ["test", "rules", join(rules, "weft-rules.test.yml")], { allowFailure: true });
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
  });

  it("every series the rules and the dashboard query is documented in docs/metrics.md", () => {
    const documented = readFileSync(join(root, "docs/metrics.md"), "utf8");
    const queried = new Set<string>();
    for (const file of ["deploy/prometheus/weft-rules.yml", "deploy/grafana/weft.json"]) {
      for (const match of readFileSync(join(root, file), "utf8").matchAll(/\b((?:weft|process|nodejs)_[a-z_]+?)(?:_bucket|_sum|_count)?\b(?=[{[\s)])/g)) queried.add(match[1] as string);
    }
    expect(queried.size).toBeGreaterThan(10);
    const missing = [...queried].filter((series) => !documented.includes(`\`${series}`));
    expect(missing).toEqual([]);
  });
});
