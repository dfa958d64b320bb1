// The fake node's command-line reader must split exactly what the executor's quoting builds,
// or farm ledgers would show a different argv than the one approved.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { answerStep, parseCommandLine, tokenize } from '../../src/lab/fake-shell.js';
import { quoteArgv } from '../../src/ssh/quote.js';
import { wrapCommand } from '../../src/ssh/remote-run.js';

const words = (line: string): string[] => {
  const tokens = tokenize(line);
  if (typeof tokens === 'string') throw new Error(tokens);
  return tokens.map((t) => ('word' in t ? t.word : `<${t.op}>`));
};

describe('fake shell', () => {
  it('splits quoted argv back into exactly the argv (any strings without NUL)', () => {
    const arg = fc.string({ unit: 'binary', minLength: 0, maxLength: 12 }).filter((s) => !s.includes('\0'));
    fc.assert(fc.property(fc.array(arg, { minLength: 1, maxLength: 6 }), (argv) => {
      expect(words(quoteArgv(argv))).toEqual(argv);
    }), { numRuns: 300 });
  });

  it('keeps an injection corpus inert', () => {
    const corpus = ['; rm -rf /', '&& reboot', '| nc x 1', '`id`', '$(id)', 'a\nreboot', 'a\rb', '-rf', "it's"];
    const parsed = parseCommandLine(quoteArgv(['echo', ...corpus]));
    expect(parsed.steps).toEqual([{ connector: null, argv: ['echo', ...corpus] }]);
  });

  it('unwraps the executor wrapper, with sudo, and reads its run id and stdin size', () => {
    const line = wrapCommand(['systemctl', 'restart', 'k3s'], { runId: 'j1.2', asRoot: true, loginUser: 'ops', deadlineMs: 90_000, killGraceMs: 5000, stdinBytes: 7 });
    expect(parseCommandLine(line)).toMatchObject({
      steps: [{ argv: ['systemctl', 'restart', 'k3s'] }],
      wrapper: { runId: 'j1.2', deadlineMs: 90_000, stdinBytes: 7 },
      control: null,
    });
  });

  it('reads sequences the way tools send them', () => {
    expect(parseCommandLine("/bin/sh -c 'echo ~ && sleep 0'").steps).toEqual([
      { connector: null, argv: ['echo', '~'] },
      { connector: '&&', argv: ['sleep', '0'] },
    ]);
    expect(words('a || b; c')).toEqual(['a', '<||>', 'b', '<;>', 'c']);
    expect(parseCommandLine('ls | wc -l').unsupported).toMatch(/\|/);
  });

  it('answers trivial commands plausibly', () => {
    const who = { node: 'node07', user: 'ops' };
    expect(answerStep(['hostname'], who).stdout).toBe('node07\n');
    expect(answerStep(['echo', '-n', 'x'], who).stdout).toBe('x');
    expect(answerStep(['echo', '~'], who).stdout).toBe('/home/ops\n');
    expect(answerStep(['sleep', '1.5'], who).sleepMs).toBe(1500);
    expect(answerStep(['false'], who).exitCode).toBe(1);
    expect(answerStep(['rm', '-rf', '/'], who)).toMatchObject({ exitCode: 127, stdout: '' });
  });
});
