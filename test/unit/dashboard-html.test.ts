// The dashboard's templating escapes everything it is not told is markup, and shows control
// and invisible characters in untrusted text as escapes (config/visible.ts), like every front end.
import { describe, expect, it } from 'vitest';
import type { Request } from 'express';
import { argv, block, duration, html, inline, relative } from '../../src/present/render/markup.js';
import { checkCsrfToken, checkSameOrigin, contentSecurityPolicy } from '../../src/dashboard/security.js';
import { safeReturnPath } from '../../src/dashboard/context.js';
import { toolArgsFor } from '../../tools/cli-args.js';
import { catalogue } from '../../tools/index.js';

describe('html templating', () => {
  it('escapes interpolated text, including attribute quotes, and passes nested fragments through', () => {
    const hostile = `"><script>alert(1)</script><img src=x onerror='x'>`;
    const out = html`<p title="${hostile}">${hostile}${html`<b>ok</b>`}</p>`.value;
    expect(out).not.toContain('<script>');
    expect(out).not.toContain('"><');
    expect(out).toContain('&lt;script&gt;');
    expect(out).toContain('&quot;&gt;');
    expect(out).toContain('<b>ok</b>');
  });

  it('shows terminal escapes, CR and bidi overrides in untrusted text instead of acting on them', () => {
    expect(inline('rm -rf /\u001b[2K\rls').value).toBe('rm -rf /\\x1b[2K\\x0dls');
    expect(block('line 1\nline\u202e2').value).toBe('line 1\nline\\u{202e}2');
    expect(argv(['echo', "it's", 'a\u001bb']).value).toBe("echo &#39;it&#39;\\&#39;&#39;s&#39; $&#39;a\\eb&#39;");
  });

  it('words times and durations for people', () => {
    const now = Date.parse('2026-01-01T12:00:00Z');
    expect(relative(now - 90_000, now)).toBe('2 min ago');
    expect(relative(now + 3 * 3600_000, now)).toBe('in 3 h');
    expect(duration(850)).toBe('850 ms');
    expect(duration(125_000)).toBe('2 min 5 s');
    expect(duration(undefined)).toBe('—');
  });
});

function request(method: string, headers: Record<string, string>, body: Record<string, unknown> = {}): Request {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  return { method, body, get: (name: string) => lower[name.toLowerCase()] } as unknown as Request;
}

describe('CSRF and CSP', () => {
  const origin = 'https://castellan.example';
  it('lets same-origin state changes through and refuses cross-site, foreign-origin and anonymous ones', () => {
    expect(checkSameOrigin(request('POST', { origin }), origin).ok).toBe(true);
    expect(checkSameOrigin(request('POST', { referer: `${origin}/ui/jobs` }), origin).ok).toBe(true);
    expect(checkSameOrigin(request('GET', {}), origin).ok).toBe(true);
    expect(checkSameOrigin(request('POST', { origin: 'https://evil.example' }), origin)).toMatchObject({ ok: false, reason: expect.stringContaining('evil.example') });
    expect(checkSameOrigin(request('POST', { origin, 'sec-fetch-site': 'cross-site' }), origin).ok).toBe(false);
    expect(checkSameOrigin(request('POST', {}), origin)).toMatchObject({ ok: false, reason: expect.stringContaining('no Origin') });
  });

  it('requires the session token in the form or header', () => {
    expect(checkCsrfToken(request('POST', {}, { _csrf: 'abc' }), 'abc').ok).toBe(true);
    expect(checkCsrfToken(request('POST', { 'x-csrf-token': 'abc' }), 'abc').ok).toBe(true);
    expect(checkCsrfToken(request('POST', {}, { _csrf: 'abd' }), 'abc').ok).toBe(false);
    expect(checkCsrfToken(request('POST', {}, {}), 'abc')).toMatchObject({ ok: false, reason: expect.stringContaining('no CSRF token') });
  });

  it('allows no inline script and no other origin in the policy', () => {
    const csp = contentSecurityPolicy({ formTargets: ['https://auth.example'] });
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe');
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("form-action 'self' https://auth.example");
  });

  it('returns only to dashboard paths after sign-in', () => {
    expect(safeReturnPath('/ui/jobs/j123')).toBe('/ui/jobs/j123');
    expect(safeReturnPath('//evil.example/ui/')).toBe('/ui/jobs');
    expect(safeReturnPath('https://evil.example/ui/')).toBe('/ui/jobs');
    expect(safeReturnPath('/ui/\\evil')).toBe('/ui/jobs');
  });
});

describe('CLI command for a job', () => {
  it('reproduces the request as CLI words', () => {
    const exec = catalogue.find((t) => t.name === 'exec')!;
    expect(toolArgsFor(exec, { targets: 'web', argv: ['uname', '-a'] })).toEqual(['exec', 'web', '--', 'uname', '-a']);
    const ping = catalogue.find((t) => t.name === 'ping')!;
    expect(toolArgsFor(ping, { targets: 'all' })).toEqual(['ping', 'all']);
  });
});
