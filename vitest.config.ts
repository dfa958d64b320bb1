import { defineConfig } from 'vitest/config';

// Integration tests start real sshd, redis-server and an OIDC provider; they are slow to
// start on a 2-core machine, so timeouts are generous and files run in a small pool.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
