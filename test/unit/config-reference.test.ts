// docs/configuration.md is generated from the zod schema: this regenerates it and compares,
// so a schema change without `./scripts/config-reference` fails CI, and every key must have
// an example (from config/examples/castellan.example.yaml, or its default).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { configurationReference, examplesFrom, readExampleConfig } from '../../config/reference.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const generated = configurationReference(readExampleConfig(repo));

describe('configuration reference', () => {
  it('is up to date with the schema (run ./scripts/config-reference after changing config/schema.ts)', () => {
    expect(readFileSync(`${repo}/docs/configuration.md`, 'utf8')).toBe(generated);
  });

  it('documents every key with a type and an example', () => {
    const rows = generated.split('\n').filter((l) => l.startsWith('| `'));
    expect(rows.length).toBeGreaterThan(60);
    for (const row of rows) {
      const [, key, type, , example] = row.split(' | ');
      expect(type, key).not.toBe('');
      expect(example, `${key} has no example`).not.toBe('—');
    }
    for (const key of ['ssh.connect_timeout', 'auth.oidc.issuer', 'jobs.wait_budget', 'policy.approvals.expiry', 'server.allowed_origins']) expect(generated).toContain(`| \`${key}\``);
  });

  it('reads examples from commented-out keys at the right depth', () => {
    const examples = examplesFrom('auth:\n  # oidc:\n  #   issuer: https://auth.example.com  # no path\n  roles:\n    admin: [admins]\n');
    expect(examples.get('auth.oidc.issuer')).toEqual({ example: 'https://auth.example.com', note: 'no path' });
    expect(examples.get('auth.roles.admin')?.example).toBe('[admins]');
  });
});
