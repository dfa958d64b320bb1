// The web dashboard in a real browser (Debian's Chromium via playwright-core) against a real
// Castellan: lab OIDC provider, private Redis, real sshd nodes, HTTP server and worker.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { useRedis } from '../support/redis.js';
import { launchChromium, screenshot, signInAs } from '../support/browser.js';
import { startHarness, type Harness } from '../integration/mcp-harness.js';

const redis = useRedis();
let h: Harness;
let browser: Browser;

beforeAll(async () => {
  h = await startHarness({ redisUrl: redis.url, nodes: 3, tokenFormat: 'opaque' });
  await h.startWorker();
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await h?.close();
});

describe('dashboard sign-in', () => {
  it('signs in through the provider and shows the jobs page', async () => {
    const { page, context } = await signInAs(browser, h.base, 'oscar');
    await expect(page.getByRole('heading', { name: 'Jobs' }).isVisible()).resolves.toBe(true);
    await screenshot(page, 'jobs-empty');
    await context.close();
    void randomBytes;
  });
});
