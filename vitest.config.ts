import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration tests start servers and share PostgreSQL/Redis; two workers suit the 2-core CI machine.
    maxWorkers: 2,
  },
});
