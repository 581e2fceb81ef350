// Vitest settings for `npm test` (scripts/test.mjs). Unit tests sit beside their source; test/ holds cross-cutting suites.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // NOTE: forks, not threads: onnxruntime-node is a native addon and is safer in separate processes.
    pool: 'forks',
    // Model loads and ORT parity runs on real fixtures are slow on small CI machines.
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
