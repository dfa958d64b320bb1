// Attack class: tokens the gate must not honour. An unsigned token (`alg: none`, the issue's
// `eyJhbGciOiJub25lIn0.e30.` and one claiming to be an admin), an HS256 token, and real lab
// tokens that live longer than auth.oidc.max_token_lifetime are tried on the HTTP API, /mcp and
// the real CLI in remote mode. Each is a 401 (CLI exit 77) that says why, never a 503 or a
// stack trace, and nothing is recorded.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/castellan.js';
import { useRedis } from '../support/redis.js';
import { startHarness, type Harness } from './mcp-harness.js';

const redis = useRedis();
let h: Harness;

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

beforeAll(async () => {
  // Lab tokens live 1 h; this server accepts at most 30 min, so every real token is too long-lived.
  h = await startHarness({ redisUrl: redis.url, nodes: 1, tokenFormat: 'jwt', oidcConfig: { max_token_lifetime: '30m' } });
}, 120_000);

afterAll(async () => {
  await h?.close();
});

async function jobCount(): Promise<number> {
  return (await h.runtime.service.list(h.runtime.localRequester('cli'), { limit: 200 })).length;
}

interface Refusal {
  readonly token: string;
  readonly reason: RegExp;
}

const forged = (): Refusal[] => {
  const claims = { sub: 'alice', groups: ['admins'], client_id: 'castellan-cli', aud: h.base, iss: h.oidc.issuer, exp: Math.floor(Date.now() / 1000) + 600, iat: Math.floor(Date.now() / 1000) };
  return [
    { token: 'eyJhbGciOiJub25lIn0.e30.', reason: /unsigned \(alg none\)/ },
    { token: `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64(claims)}.`, reason: /unsigned \(alg none\)/ },
    { token: `${b64({ alg: 'HS256', typ: 'at+jwt' })}.${b64(claims)}.${Buffer.from('forged').toString('base64url')}`, reason: /HS256, which is not allowed/ },
  ];
};

describe('unsigned and unexpected-algorithm tokens', () => {
  it('the HTTP API answers 401 invalid_token with the reason, on reads and on job creation; nothing is recorded', async () => {
    const before = await jobCount();
    for (const { token, reason } of forged()) {
      for (const [method, path] of [['GET', '/api/v1/whoami'], ['GET', '/api/v1/jobs'], ['POST', '/api/v1/jobs']] as const) {
        const response = await fetch(`${h.base}${path}`, {
          method,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          ...(method === 'POST' ? { body: JSON.stringify({ tool: 'ping', input: { targets: 'all' } }) } : {}),
        });
        expect(response.status, `${method} ${path}`).toBe(401);
        const body = (await response.json()) as { error: string; error_description: string };
        expect(body.error).toBe('invalid_token');
        expect(body.error_description).toMatch(reason);
        expect(response.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
      }
    }
    expect(await jobCount()).toBe(before);
  });

  it('/mcp answers 401 with the reason', async () => {
    for (const { token, reason } of forged()) {
      const response = await fetch(`${h.base}/mcp`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'ping', arguments: { targets: 'all' } } }),
      });
      expect(response.status).toBe(401);
      expect(((await response.json()) as { error_description: string }).error_description).toMatch(reason);
    }
  });

  it('the CLI in remote mode exits 77 and prints the reason', async () => {
    const [unsigned] = forged();
    const run = await runCli(['--server', h.base, 'jobs'], { env: { CASTELLAN_TOKEN: unsigned?.token ?? '', CASTELLAN_CONFIG: '/nonexistent' } });
    expect(run.code).toBe(77);
    expect(run.stderr).toMatch(/unsigned \(alg none\)/);
  });
});

describe('token lifetime bounds (auth.oidc.max_token_lifetime)', () => {
  it('a real lab token living longer than allowed is refused on the API, /mcp and the CLI', async () => {
    const token = await h.token('alice');
    const api = await fetch(`${h.base}/api/v1/whoami`, { headers: { authorization: `Bearer ${token}` } });
    expect(api.status).toBe(401);
    expect(((await api.json()) as { error_description: string }).error_description).toMatch(/more than the 1800 s allowed \(auth\.oidc\.max_token_lifetime\)/);
    const mcp = await fetch(`${h.base}/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
    });
    expect(mcp.status).toBe(401);
    const cli = await runCli(['--server', h.base, 'jobs'], { env: { CASTELLAN_TOKEN: token, CASTELLAN_CONFIG: '/nonexistent' } });
    expect(cli.code).toBe(77);
    expect(cli.stderr).toMatch(/max_token_lifetime/);
  });
});
