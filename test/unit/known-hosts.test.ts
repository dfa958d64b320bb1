import { execFileSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KnownHosts, fingerprint, lookupNames } from '../../src/ssh/known-hosts.js';

interface TestKey {
  type: string;
  base64: string;
  blob: Buffer;
  /** What `ssh-keygen -lf` prints, to prove our fingerprint matches OpenSSH's. */
  opensshFingerprint: string;
}

let dir: string;
const keys: Record<string, TestKey> = {};

function makeKey(name: string, args: string[]): TestKey {
  const file = path.join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-N', '', '-C', name, '-f', file, ...args]);
  const [type, base64] = readFileSync(`${file}.pub`, 'utf8').trim().split(/\s+/) as [string, string];
  const printed = execFileSync('ssh-keygen', ['-lf', `${file}.pub`], { encoding: 'utf8' }).split(/\s+/)[1] as string;
  return { type, base64, blob: Buffer.from(base64, 'base64'), opensshFingerprint: printed };
}

function hashed(name: string): string {
  const salt = randomBytes(20);
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
}

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'castellan-kh-'));
  keys.ed = makeKey('ed', ['-t', 'ed25519']);
  keys.ed2 = makeKey('ed2', ['-t', 'ed25519']);
  keys.p256 = makeKey('p256', ['-t', 'ecdsa', '-b', '256']);
  keys.p384 = makeKey('p384', ['-t', 'ecdsa', '-b', '384']);
  keys.p521 = makeKey('p521', ['-t', 'ecdsa', '-b', '521']);
  keys.rsa = makeKey('rsa', ['-t', 'rsa', '-b', '2048']);
  keys.revoked = makeKey('revoked', ['-t', 'ed25519']);
  keys.ca = makeKey('ca', ['-t', 'ed25519']);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const host = (name: string, address: string, port = 22) => ({ name, address, port });

function file(): KnownHosts {
  const k = keys as Required<typeof keys>;
  return KnownHosts.parse(
    [
      '# pinned by castellan hosts trust',
      '',
      `plain.example ${k.ed!.type} ${k.ed!.base64}`,
      `web1,web2,10.0.0.7 ${k.p256!.type} ${k.p256!.base64} a comment`,
      `${hashed('10.0.0.9')} ${k.p384!.type} ${k.p384!.base64}`,
      `${hashed('[10.0.0.10]:2222')} ${k.p521!.type} ${k.p521!.base64}`,
      `[127.0.0.5]:2200 ${k.rsa!.type} ${k.rsa!.base64}`,
      `*.lab.test,!bad.lab.test ${k.ed2!.type} ${k.ed2!.base64}`,
      `@revoked * ${k.revoked!.type} ${k.revoked!.base64}`,
      `revokedhost ${k.revoked!.type} ${k.revoked!.base64}`,
      `@cert-authority *.example ${k.ca!.type} ${k.ca!.base64}`,
      `old.example ssh-dss AAAAB3NzaC1kc3MAAACBAP==`,
      `liar.example ssh-ed25519 ${k.p256!.base64}`,
      'garbage',
    ].join('\n'),
    'test_known_hosts',
  );
}

describe('fingerprint', () => {
  it('matches what ssh-keygen -lf prints for every key type', () => {
    for (const key of Object.values(keys)) expect(fingerprint(key.blob)).toBe(key.opensshFingerprint);
  });
});

describe('KnownHosts', () => {
  it('looks up by address and inventory name, in [host]:port form when the port is not 22', () => {
    expect(lookupNames(host('node01', '127.0.0.2', 22))).toEqual(['127.0.0.2', 'node01']);
    expect(lookupNames(host('node01', '127.0.0.2', 2200))).toEqual(['[127.0.0.2]:2200', '[node01]:2200']);
  });

  it('accepts pins from plain names, comma lists, hashed entries, ports and wildcards', () => {
    const kh = file();
    const k = keys as Required<typeof keys>;
    expect(kh.verify(host('plain.example', '192.0.2.1'), k.ed!.blob).ok).toBe(true);
    expect(kh.verify(host('web2', '192.0.2.2'), k.p256!.blob).ok).toBe(true);
    expect(kh.verify(host('db', '10.0.0.7'), k.p256!.blob).ok).toBe(true);
    expect(kh.verify(host('hashed', '10.0.0.9'), k.p384!.blob).ok).toBe(true);
    expect(kh.verify(host('hashed-port', '10.0.0.10', 2222), k.p521!.blob).ok).toBe(true);
    expect(kh.verify(host('node05', '127.0.0.5', 2200), k.rsa!.blob).ok).toBe(true);
    expect(kh.verify(host('x.lab.test', '192.0.2.3'), k.ed2!.blob).ok).toBe(true);
  });

  it('does not match the port-22 form for another port, nor a negated pattern', () => {
    const kh = file();
    const k = keys as Required<typeof keys>;
    expect(kh.verify(host('plain.example', '192.0.2.1', 2222), k.ed!.blob)).toMatchObject({ ok: false, reason: 'unknown' });
    expect(kh.verify(host('hashed', '10.0.0.10', 22), k.p521!.blob)).toMatchObject({ ok: false, reason: 'unknown' });
    expect(kh.verify(host('bad.lab.test', '192.0.2.4'), k.ed2!.blob)).toMatchObject({ ok: false, reason: 'unknown' });
  });

  it('refuses a changed key naming the host and both fingerprints', () => {
    const k = keys as Required<typeof keys>;
    const verdict = file().verify(host('web1', '192.0.2.9'), k.ed!.blob);
    expect(verdict.ok).toBe(false);
    if (verdict.ok) return;
    expect(verdict.reason).toBe('changed');
    expect(verdict.message).toContain('web1');
    expect(verdict.message).toContain(k.p256!.opensshFingerprint);
    expect(verdict.message).toContain(k.ed!.opensshFingerprint);
  });

  it('gives the pinned keys\' fingerprints per host (kept per host: the same answer each time)', () => {
    const kh = file();
    const k = keys as Required<typeof keys>;
    const web = host('web2', '192.0.2.2');
    expect(kh.pinnedFingerprints(web)).toEqual(kh.pinnedKeys(web).map((e) => fingerprint(e.key)));
    expect(kh.pinnedFingerprints(web)).toEqual([k.p256!.opensshFingerprint]);
    expect(kh.pinnedFingerprints(web)).toEqual([k.p256!.opensshFingerprint]);
    // The same name at another port or address is another host.
    expect(kh.pinnedFingerprints(host('web2', '192.0.2.2', 2222))).toEqual([]);
    expect(kh.pinnedFingerprints(host('x.lab.test', '192.0.2.3'))).toEqual([k.ed2!.opensshFingerprint]);
    expect(kh.pinnedFingerprints(host('stranger', '192.0.2.50'))).toEqual([]);
  });

  it('refuses an unknown host, telling how to trust it', () => {
    const verdict = file().verify(host('stranger', '192.0.2.50'), (keys.ed as TestKey).blob);
    expect(verdict).toMatchObject({ ok: false, reason: 'unknown' });
    if (!verdict.ok) expect(verdict.message).toMatch(/castellan hosts trust stranger/);
  });

  it('always refuses a @revoked key, even where it is also pinned', () => {
    const verdict = file().verify(host('revokedhost', '192.0.2.60'), (keys.revoked as TestKey).blob);
    expect(verdict).toMatchObject({ ok: false, reason: 'revoked' });
  });

  it('never accepts through @cert-authority, and notes skipped lines', () => {
    const kh = file();
    expect(kh.verify(host('a.example', '192.0.2.70'), (keys.ca as TestKey).blob)).toMatchObject({ ok: false, reason: 'unknown' });
    const notes = kh.notes.join('\n');
    expect(notes).toMatch(/:11: @cert-authority is not supported/);
    expect(notes).toMatch(/:12: key type ssh-dss is not supported/);
    expect(notes).toMatch(/:13: key data does not hold a ssh-ed25519 key/);
    expect(notes).toMatch(/:14: not "hosts keytype key"/);
    expect(kh.entries.map((entry) => entry.line)).toEqual([3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('prefers the pinned key types when negotiating', () => {
    const kh = file();
    expect(kh.preferredAlgorithms(host('node05', '127.0.0.5', 2200)).slice(0, 3)).toEqual(['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
    expect(kh.preferredAlgorithms(host('hashed', '10.0.0.9'))[0]).toBe('ecdsa-sha2-nistp384');
    const unknown = kh.preferredAlgorithms(host('stranger', '192.0.2.50'));
    expect(unknown[0]).toBe('ssh-ed25519');
    expect(new Set(unknown).size).toBe(unknown.length);
  });

  it('loads from a file with CRLF line ends', async () => {
    const p = path.join(dir, 'kh_crlf');
    writeFileSync(p, `plain.example ${keys.ed!.type} ${keys.ed!.base64}\r\n\r\n`);
    const kh = await KnownHosts.load(p);
    expect(kh.entries).toHaveLength(1);
    expect(kh.notes).toEqual([]);
  });
});
