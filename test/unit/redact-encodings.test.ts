// The redactor scrubs a secret's common encodings, at every base64 alignment, and each line of
// a multi-line secret such as a PEM key; short encodings that would hit innocent text are not used.
import { describe, expect, it } from 'vitest';
import { Redactor, REDACTED, secretVariants } from '../../queues/redact.js';

const secret = 'sup3r-s3cret-value-42';

describe('Redactor encodings', () => {
  it.each([
    ['raw', secret],
    ['hex', Buffer.from(secret).toString('hex')],
    ['HEX', Buffer.from(secret).toString('hex').toUpperCase()],
    ['base64', Buffer.from(secret).toString('base64')],
    ['base64 of secret+newline', Buffer.from(`${secret}\n`).toString('base64')],
    ['base64 after 1 byte', Buffer.from(`x${secret}`).toString('base64')],
    ['base64 after 2 bytes', Buffer.from(`xy${secret}`).toString('base64')],
    ['base64url after 1 byte', Buffer.from(`?${secret}??`).toString('base64url')],
  ])('%s is scrubbed inside other text', (_label, encoded) => {
    const redactor = new Redactor([secret]);
    const out = redactor.scrub(`before ${encoded} after`);
    expect(out).toContain(REDACTED);
    expect(out).not.toContain(encoded.slice(4, -4));
  });

  it('scrubs each line of a PEM key, and leaves other text alone', () => {
    const pem = ['-----BEGIN OPENSSH PRIVATE KEY-----', 'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW', 'QyNTUxOQAAACBqzvXTyNQoF1n2wJ5Pc9KQ1AAAAJi5xJ4MucSeDAAAAAtzc2gtZWQyNTUx', '-----END OPENSSH PRIVATE KEY-----'].join('\n');
    const redactor = new Redactor([pem]);
    expect(redactor.scrub('line: QyNTUxOQAAACBqzvXTyNQoF1n2wJ5Pc9KQ1AAAAJi5xJ4MucSeDAAAAAtzc2gtZWQyNTUx')).toBe(`line: ${REDACTED}`);
    expect(redactor.scrub('-----BEGIN OPENSSH PRIVATE KEY----- is a header, not a secret')).toContain('BEGIN OPENSSH');
    expect(redactor.scrub('the quick brown fox')).toBe('the quick brown fox');
  });

  it('adds no encoding too short to be specific', () => {
    expect(secretVariants('abcdef').filter((v) => v !== 'abcdef').every((v) => v.length >= 8)).toBe(true);
    expect(secretVariants('abcdef').some((v) => v.length < 8 && v !== 'abcdef')).toBe(false);
  });

  it('holds back only a tail that could still become a secret, so a stream never shows a secret\'s first part', () => {
    const pem = ['-----BEGIN OPENSSH PRIVATE KEY-----', 'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW', 'QyNTUxOQAAACBqzvXTyNQoF1n2wJ5Pc9KQ1AAAAJi5xJ4MucSeDAAAAAtzc2gtZWQyNTUx', '-----END OPENSSH PRIVATE KEY-----'].join('\n');
    const redactor = new Redactor([secret, pem]);
    expect(redactor.longest).toBeGreaterThan(200);
    // Ordinary output: nothing held back, whatever the longest secret.
    expect(redactor.pendingTail('load average: 0.42 0.40 0.38\n')).toBe(0);
    // The beginning of a secret, or of an encoding of one, is held back from where it starts.
    expect(redactor.pendingTail('token=sup3r-s3c')).toBe('sup3r-s3c'.length);
    const hex = Buffer.from(secret).toString('hex');
    expect(redactor.pendingTail(`dump ${hex.slice(0, 20)}`)).toBe(20);
    expect(redactor.pendingTail('line: QyNTUxOQAAACBqzvXT')).toBe('QyNTUxOQAAACBqzvXT'.length);
    // Streaming any split of a text through scrub + pendingTail never emits a secret's part.
    const text = `a ${secret} b ${hex} c QyNTUxOQAAACBqzvXTyNQoF1n2wJ5Pc9KQ1AAAAJi5xJ4MucSeDAAAAAtzc2gtZWQyNTUx d`;
    for (let size = 1; size <= 40; size += 3) {
      let pending = '';
      let shown = '';
      for (let i = 0; i < text.length; i += size) {
        const clean = redactor.scrub(pending + text.slice(i, i + size));
        const cut = clean.length - redactor.pendingTail(clean);
        shown += clean.slice(0, cut);
        pending = clean.slice(cut);
      }
      shown += redactor.scrub(pending);
      expect(shown, `chunks of ${size}`).toBe(redactor.scrub(text));
      for (const part of [secret.slice(0, 8), hex.slice(0, 12), 'QyNTUxOQAAACBq']) expect(shown).not.toContain(part);
    }
  });
});
