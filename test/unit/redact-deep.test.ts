// scrubDeep: secret values scrubbed from every string at any depth, secret-named fields censored
// whatever they hold (the verdict per field name is kept: asked twice, it must hold twice).
import { describe, expect, it } from 'vitest';
import { REDACTED, Redactor } from '../../queues/redact.js';

const SECRET = 'hunter2-very-secret-value';

describe('Redactor.scrubDeep', () => {
  it('scrubs values at any depth and censors secret-named fields, every time', () => {
    const r = new Redactor([SECRET]);
    const when = new Date(0);
    const bytes = Buffer.from('raw');
    const value = {
      host: 'node01',
      reason: `failed: ${SECRET}`,
      nested: { list: ['ok', `x${SECRET}x`, 3, null, undefined, true], Token: 'abc', password: '', secret: null, client_secret: undefined },
      map: new Map([['k', SECRET]]),
      when,
      bytes,
      exitCode: 0,
    };
    for (let i = 0; i < 3; i++) {
      const out = r.scrubDeep(value);
      expect(out.reason).toBe(`failed: ${REDACTED}`);
      expect(out.nested.list).toEqual(['ok', `x${REDACTED}x`, 3, null, undefined, true]);
      expect(out.nested.Token).toBe(REDACTED);
      // Empty, null and absent secret fields stay as they are (nothing to hide, and the shape tells so).
      expect(out.nested.password).toBe('');
      expect(out.nested.secret).toBeNull();
      expect('client_secret' in out.nested && out.nested.client_secret === undefined).toBe(true);
      expect(out.map.get('k')).toBe(REDACTED);
      expect(out.when).toBe(when);
      expect(out.bytes).toBe(bytes);
      expect(out.exitCode).toBe(0);
      expect(out.host).toBe('node01');
    }
    // A copy: the input is left alone.
    expect(value.reason).toContain(SECRET);
  });

  it('censors secret-named fields even when no secret value is configured', () => {
    const out = new Redactor([]).scrubDeep({ headers: { Authorization: 'Bearer x', accept: 'json' } });
    expect(out.headers).toEqual({ Authorization: REDACTED, accept: 'json' });
  });

  it('copies only what it changes: clean parts are returned as they are, the input is never written', () => {
    const r = new Redactor([SECRET]);
    const clean = { host: 'node01', results: [{ host: 'node01', status: 'ok', exitCode: 0 }], hosts: ['node01', 'node02'] };
    expect(r.scrubDeep(clean)).toBe(clean);
    const mixed = { step: 's1', ok: { host: 'node01', stdout: 'fine' }, bad: { host: 'node02', stdout: `leak ${SECRET}` }, list: ['a', SECRET, 'c'] };
    const out = r.scrubDeep(mixed);
    expect(out).not.toBe(mixed);
    expect(out.ok).toBe(mixed.ok);
    expect(out.bad).toEqual({ host: 'node02', stdout: `leak ${REDACTED}` });
    expect(out.list).toEqual(['a', REDACTED, 'c']);
    expect(Object.keys(out)).toEqual(['step', 'ok', 'bad', 'list']);
    expect(mixed.bad.stdout).toContain(SECRET);
    expect(mixed.list[1]).toBe(SECRET);
  });
});
