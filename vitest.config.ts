import { defineConfig } from "vitest/config";

// Tests build real kernel objects and start real etcd servers; each file owns its own
// namespace prefix and ports, so files may run in parallel, but only two at a time (2 cores).
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The fault-injection suite has its own run (npm run test:resilience, vitest.resilience.config.ts).
    exclude: ["test/resilience/**", "**/node_modules/**"],
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    // .ci/run reads the JSON report for its "N passed, N failed" line.
    reporters: ["default", "json"],
    outputFile: { json: "test-results/results.json" },
  },
});
