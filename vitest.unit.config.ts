import { defineConfig } from "vitest/config";

// The unit tier (`npm run test:unit`): pure tests only, named *.unit.test.ts. They need no root,
// no etcd, no namespaces, no dist/ build and no native addon, so they run anywhere in seconds.
// `npm test` (vitest.config.ts) runs them too, with everything else.
export default defineConfig({
  test: {
    include: ["test/**/*.unit.test.ts"],
    maxWorkers: 2,
    testTimeout: 10_000,
  },
});
