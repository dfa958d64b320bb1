// The node helper travels as one command line (`perl -e <script> castellan-helper`): it must fit
// the smallest limit Castellan knows (dropbear's 9000 bytes), and what is sent must still be the
// whole program. Dropping the reader's comments must never drop code: perl compiles what is sent.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { helperCommand } from '../../src/ssh/node-helper.js';
import { DROPBEAR_MAX_COMMAND_BYTES } from '../../src/ssh/server-limits.js';

describe('the node helper command line', () => {
  it('fits dropbear, with room to spare', () => {
    const bytes = Buffer.byteLength(helperCommand());
    expect(bytes).toBeLessThanOrEqual(DROPBEAR_MAX_COMMAND_BYTES - 500);
  });

  it('is a program perl compiles, without whole-line comments', () => {
    const command = helperCommand();
    expect(command.split('\n').filter((line) => /^\s*#/.test(line))).toEqual([]);
    const checked = execFileSync('sh', ['-c', command.replace(/^'perl' '-e' /, "'perl' '-c' '-e' ")], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(checked).toBe('');
  });
});
