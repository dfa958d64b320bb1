// /metrics is not public: with server.metrics.listen it is served only on its own listener
// (the main one answers 404), and with server.metrics.token_env only to a caller with that
// bearer token. Without either it answers loopback peers only: a server listening on every
// address is asked from 127.0.0.1, from 127.0.0.2 (still this host) and from a network
// namespace joined by a veth pair (a real non-loopback peer), which is refused. The token never
// appears in the metrics themselves.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { parseConfig } from '../../config/load.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { startNetnsPeer, type NetnsPeer } from '../support/netns-peer.js';
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

/** The harness's castellan.yaml with other server.metrics settings, served on every address. */
async function serveOnAllAddresses(metricsSettings: Record<string, unknown>): Promise<{ runtime: Runtime; server: RunningServer; port: number }> {
  const doc = parse(h.yaml) as Record<string, Record<string, unknown>>;
  doc.server = { ...doc.server, metrics: metricsSettings };
  const config = await parseConfig(stringify(doc), path.join(h.dir, 'castellan-all-addresses.yaml'), { env: { ...process.env, ...h.env } });
  const runtime = await createRuntime(config, { mode: 'server' });
  const server = await startServer(runtime, { host: '0.0.0.0', port: 0 });
  return { runtime, server, port: (server.server.address() as AddressInfo).port };
}

/** GET from a chosen local address (127.0.0.2 is loopback too, but not 127.0.0.1). */
function getFrom(localAddress: string, port: number, pathname: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path: pathname, localAddress, headers }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('error', reject);
  });
}

/** Inside a describe: a server on every address with these metrics settings, and a non-loopback peer. */
function useServerAndPeer(metricsSettings: Record<string, unknown>): { served: () => { port: number }; peer: () => NetnsPeer } {
  let served: { runtime: Runtime; server: RunningServer; port: number } | undefined;
  let peer: NetnsPeer | undefined;
  beforeAll(async () => {
    served = await serveOnAllAddresses(metricsSettings);
    peer = await startNetnsPeer();
  }, 120_000);
  afterAll(async () => {
    await peer?.close();
    await served?.server.close();
    await served?.runtime.close();
  });
  return { served: () => served!, peer: () => peer! };
}

describe('/metrics with neither a listener nor a token: loopback peers only', () => {
  const { served, peer: peerOf } = useServerAndPeer({});

  it('a peer on another network reaches the server but is refused /metrics with 403 and the settings to use', async () => {
    const port = served().port;
    const peer = peerOf();
    // The Host header names the server the way the DNS-rebinding guard accepts; the peer
    // address is what the refusal is about.
    const host = { host: `127.0.0.1:${port}` };
    const health = await peer.get(`http://${peer.hostAddress}:${port}/healthz`, host);
    expect(health.status).toBe(200);
    const refused = await peer.get(`http://${peer.hostAddress}:${port}/metrics`, host);
    expect(refused.status).toBe(403);
    expect(refused.body).toMatch(/loopback peers only; set server\.metrics\.listen .* or server\.metrics\.token_env/);
    expect(refused.body).not.toContain('castellan_');
  });

  it('loopback peers are served: 127.0.0.1 and 127.0.0.2 (both only reachable from this host)', async () => {
    const port = served().port;
    for (const local of ['127.0.0.1', '127.0.0.2']) {
      const answer = await getFrom(local, port, '/metrics');
      expect(answer.status, local).toBe(200);
      expect(answer.body).toContain('castellan_jobs_submitted_total');
    }
  });
});

describe('/metrics behind a bearer token on the main listener', () => {
  const { served, peer: peerOf } = useServerAndPeer({ token_env: TOKEN_ENV });

  it('from another network: 401 without or with a wrong token, the metrics with it', async () => {
    const port = served().port;
    const peer = peerOf();
    const url = `http://${peer.hostAddress}:${port}/metrics`;
    const host = { host: `127.0.0.1:${port}` };
    expect((await peer.get(url, host)).status).toBe(401);
    expect((await peer.get(url, { ...host, authorization: 'Bearer wrong' })).status).toBe(401);
    const answer = await peer.get(url, { ...host, authorization: `Bearer ${token}` });
    expect(answer.status).toBe(200);
    expect(answer.body).toContain('castellan_jobs_submitted_total');
    expect(answer.body).not.toContain(token);
  });

  it('with a token configured, loopback needs it too', async () => {
    const port = served().port;
    expect((await getFrom('127.0.0.1', port, '/metrics')).status).toBe(401);
    expect((await getFrom('127.0.0.1', port, '/metrics', { authorization: `Bearer ${token}` })).status).toBe(200);
  });
});
