import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostAndOriginGuard, protectedResourceMetadataUrl, requireBearer } from '../../src/http/resource-server.js';
import { TokenVerifierUnavailableError, type TokenVerifier } from '../../auth/tokens.js';

describe('protectedResourceMetadataUrl', () => {
  it.each([
    ['https://castellan.example/mcp', 'https://castellan.example/.well-known/oauth-protected-resource/mcp'],
    ['https://castellan.example/mcp/', 'https://castellan.example/.well-known/oauth-protected-resource/mcp'],
    ['https://castellan.example/', 'https://castellan.example/.well-known/oauth-protected-resource'],
    ['http://127.0.0.1:8080/api/v1', 'http://127.0.0.1:8080/.well-known/oauth-protected-resource/api/v1'],
  ])('%s -> %s', (resource, expected) => {
    expect(protectedResourceMetadataUrl(resource)).toBe(expected);
  });
});

describe('hostAndOriginGuard and requireBearer outage handling', () => {
  let server: http.Server;
  let port: number;
  const outages: string[] = [];
  const downVerifier: TokenVerifier = {
    verify: () => Promise.reject(new TokenVerifierUnavailableError('OIDC discovery for https://auth.example failed')),
  };

  beforeAll(async () => {
    const app = express();
    app.use(hostAndOriginGuard({ allowedHosts: ['castellan.example', 'localhost:8080', '[::1]:8080'], allowedOrigins: ['https://castellan.example/'] }));
    app.get('/mcp', requireBearer(downVerifier, { resourceMetadataUrl: 'https://castellan.example/.well-known/oauth-protected-resource/mcp', onUnavailable: (e) => outages.push(e.message) }), (_req, res) => {
      res.send('unreachable');
    });
    app.get('/open', (_req, res) => {
      res.send('ok');
    });
    server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const get = (path: string, headers: Record<string, string>) =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path, headers }, (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, headers: res.headers });
      });
      req.on('error', reject);
      req.end();
    });

  it.each<[Record<string, string>, number]>([
    [{ host: 'castellan.example' }, 200],
    [{ host: 'CASTELLAN.example:443' }, 200],
    [{ host: 'localhost:8080' }, 200],
    [{ host: 'localhost:9090' }, 403],
    [{ host: '[::1]:8080' }, 200],
    [{ host: 'evil.example' }, 403],
    [{ host: 'castellan.example.evil.example' }, 403],
    [{ host: 'castellan.example', origin: 'https://castellan.example' }, 200],
    [{ host: 'castellan.example', origin: 'https://evil.example' }, 403],
    [{ host: 'castellan.example', origin: 'http://castellan.example' }, 403],
  ])('%j -> %i', async (headers, status) => {
    expect((await get('/open', headers)).status).toBe(status);
  });

  it('answers 503 with Retry-After (not 401) when the identity provider cannot be asked', async () => {
    const response = await get('/mcp', { host: 'castellan.example', authorization: 'Bearer some-token' });
    expect(response.status).toBe(503);
    expect(response.headers['retry-after']).toBe('5');
    expect(response.headers['www-authenticate']).toBeUndefined();
    expect(outages).toContain('OIDC discovery for https://auth.example failed');
  });
});
