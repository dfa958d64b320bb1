import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { QuotingError, quoteArg, quoteArgv } from '../../src/ssh/quote.js';

/** Arguments that break naive quoting: separators, expansions, quotes, control characters. */
const HOSTILE_CORPUS: readonly string[] = [
  ';', 'a; rm -rf /tmp/x', '&&', 'true && false', '|', 'a | b', '`id`', '$(id)', '${IFS}', '$IFS$()cat',
  'line1\nline2', 'carriage\rreturn', '\ttab\t', "'", "it's", "''", '"', '"double"', '\\', '\\n', 'back\\\'slash',
  '*', '/etc/*', '~', '~root', '-n', '--help', '-', 'é ü ß 中文', '🚀🔥', '', ' ', '  two  spaces  ', '$HOME',
  '!', '!!', '#comment', '>out', '<in', '2>&1', '{a,b}', '[abc]', '?', 'a=b', '%s%n', '\u001b[31mred', '\u007f',
  'x'.repeat(20_000),
];

/** Split a command line with a real POSIX sh and return the argv it sees. */
function shSplit(line: string): string[] {
  const out = execFileSync('sh', ['-c', `printf '%s\\0' ${line}`], { encoding: 'utf8' });
  const parts = out.split('\0');
  parts.pop();
  return parts;
}

describe('quoteArgv', () => {
  it('single-quotes every argument and escapes single quotes as \'\\\'\'', () => {
    expect(quoteArgv(['echo', "it's", '$(id)'])).toBe(`'echo' 'it'\\''s' '$(id)'`);
    expect(quoteArg('')).toBe("''");
  });

  it('refuses an empty argv and NUL bytes with a QuotingError', () => {
    expect(() => quoteArgv([])).toThrow(QuotingError);
    expect(() => quoteArgv(['echo', 'a\0b'])).toThrow(/NUL/);
  });

  it('every hostile argument survives a real sh split unchanged', () => {
    expect(shSplit(quoteArgv(HOSTILE_CORPUS))).toEqual(HOSTILE_CORPUS);
  });

  it('arbitrary strings round-trip through sh (property)', () => {
    const arg = fc.string({ unit: 'binary', maxLength: 40 }).filter((s) => !s.includes('\0'));
    fc.assert(
      fc.property(fc.array(arg, { minLength: 1, maxLength: 6 }), (argv) => {
        expect(shSplit(quoteArgv(argv))).toEqual(argv);
      }),
      { numRuns: 150 },
    );
  });
});
