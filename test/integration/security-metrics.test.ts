// /metrics is not public: with server.metrics.listen it is served only on its own listener
// (the main one answers 404), and with server.metrics.token_env only to a caller with that
// bearer token. Without either it answers loopback peers only (the API tests read it from
// 127.0.0.1). The token never appears in the metrics themselves.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useRedis } from '../support/redis.js';
import { startHarness, type Harness } from './mcp-harness.js';

const redis = useRedis();
let h: Harness;
const TOKEN_ENV = 'CASTELLAN_TEST_METRICS_TOKEN';
const token = `metrics-${randomBytes(12).toString('hex')}`;

beforeAll(async () => {
  process.env[TOKEN_ENV] = token;
  h = await startHarness({ redisUrl: redis.url, nodes: 1, tokenFormat: 'opaque', config: { server: { metrics: { listen: '127.0.0.1:0', token_env: TOKEN_ENV } } } });
}, 120_000);

afterAll(async () => {
  await h?.close();
  delete process.env[TOKEN_ENV];
});

describe('/metrics on its own listener, behind a bearer token', () => {
  it('the main listener does not serve it at all', async () => {
    const response = await fetch(`${h.base}/metrics`);
    expect(response.status).toBe(404);
    expect(await response.text()).not.toContain('castellan_');
  });

  it('the metrics listener refuses a missing or wrong token with 401 and says which setting', async () => {
    const url = h.server.metricsUrl ?? '';
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    for (const headers of [{}, { authorization: "Bearer wrong-token" }, { authorization: `Bearer ${token}x` }] as Array<Record<string, string>>) {
      const response = await fetch(url, { headers });
      expect(response.status).toBe(401);
      expect(await response.text()).toMatch(/server\.metrics\.token_env/);
    }
  });

  it('serves Prometheus metrics with the token, and nothing else on that listener', async () => {
    const url = h.server.metricsUrl ?? '';
    const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toContain('castellan_jobs_submitted_total');
    expect(text).not.toContain(token);
    expect((await fetch(url.replace('/metrics', '/api/v1/jobs'))).status).toBe(404);
  });
});
