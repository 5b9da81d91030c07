import { defineConfig } from "vitest/config";

// `npm run test:resilience`: the fault-injection suite (test/resilience), one file, one lab per
// backend in turn (faults are timed: nothing else should compete for the two cores meanwhile).
export default defineConfig({
  test: {
    include: ["test/resilience/**/*.test.ts"],
    pool: "forks",
    maxWorkers: 1,
    testTimeout: 180_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    reporters: ["default", "json"],
    outputFile: { json: "test-results/resilience.json" },
  },
});
