// The remote wrapper is built only through quoteArgv; these check what it hands to the shell.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { QuotingError } from '../../src/ssh/quote.js';
import { RunIdError, SideChannel, findCommand, killCommand, wrapCommand } from '../../src/ssh/remote-run.js';
import { splitBatches } from '../../src/ssh/batches.js';
import { CappedOutput } from '../../src/ssh/output.js';

const base = { runId: 'job-1.step', asRoot: false, loginUser: 'ops', deadlineMs: 10_000, killGraceMs: 2_000, stdinBytes: 0 };

describe('wrapCommand', () => {
  it('tags the run in argv (the script exports CASTELLAN_RUN from it) and ends with the quoted user argv', () => {
    const line = wrapCommand(['echo', "it's"], base);
    expect(line.startsWith(`'sh' '-c' 'eval "$1"' 'castellan-run:job-1.step' 'w=$1\nshift\n`)).toBe(true);
    expect(line.endsWith(`fi' '10.000' '2.000' '0' 'echo' 'it'\\''s'`)).toBe(true);
  });

  const readSessionId = (pid: number): number => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[3]);

  // Run as OpenSSH would (`setsid`: the login shell leads a session of its own) or as Dropbear
  // would (no new session: the command shares its parent's, which the run must not take over).
  async function runLocally(line: string, stdin: string, ownSession = true): Promise<{ pid: number; code: number | null; stdout: string }> {
    const child = ownSession
      ? spawn('setsid', ['sh', '-c', line], { stdio: ['pipe', 'pipe', 'inherit'] })
      : spawn('sh', ['-c', line], { stdio: ['pipe', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stdin.write(stdin); // kept open while it runs: EOF is the lifeline's stop signal
    const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
    child.stdin.end();
    return { pid: child.pid ?? 0, code, stdout };
  }

  it('runs: reports the session it runs in (its own), exports CASTELLAN_RUN, feeds exactly n stdin bytes, passes the exit status', async () => {
    // The command prints its own session id (field 6 of /proc/self/stat) and its run tag.
    const argv = ['sh', '-c', 'read -r _ _ _ _ _ s _ </proc/$$/stat; printf "%s|%s|" "$s" "$CASTELLAN_RUN"; cat; exit 7'];
    for (const ownSession of [true, false]) {
      for (const [stdinBytes, fed] of [[3, 'abc'], [0, '']] as const) {
        const run = await runLocally(wrapCommand(argv, { ...base, stdinBytes }), 'abcdef', ownSession);
        const match = /^\u001ecastellan-run (\d+)\n(\d+)\|job-1\.step\|(.*)$/s.exec(run.stdout);
        expect(match, run.stdout).not.toBeNull();
        expect(match?.[1]).toBe(match?.[2]);
        // A session the run leads, never the one it was started in (here: this test's).
        expect(Number(match?.[1])).not.toBe(readSessionId(process.pid));
        expect(match?.[3]).toBe(fed);
        expect(run.code).toBe(7);
      }
    }
  });

  it('uses sudo -n -- for asRoot unless the login is already root', () => {
    expect(wrapCommand(['id'], { ...base, asRoot: true })).toMatch(/^'sudo' '-n' '--' 'sh' '-c' /);
    expect(wrapCommand(['id'], { ...base, asRoot: true, loginUser: 'root' })).toMatch(/^'sh' '-c' /);
  });

  it('refuses bad run ids, empty argv, NUL and over-long command lines', () => {
    expect(() => wrapCommand(['id'], { ...base, runId: 'a b' })).toThrow(RunIdError);
    expect(() => wrapCommand(['id'], { ...base, runId: 'x'.repeat(65) })).toThrow(RunIdError);
    expect(() => wrapCommand([], base)).toThrow(QuotingError);
    expect(() => wrapCommand(['echo', '\0'], base)).toThrow(QuotingError);
    expect(() => wrapCommand(['echo', 'x'.repeat(140_000)], base)).toThrow(/MAX_ARG_STRLEN/);
    expect(() => findCommand('$(id)', false, 'ops')).toThrow(RunIdError);
  });

  it('find/kill patterns escape dots so the finder never matches itself', () => {
    expect(findCommand('a.b', false, 'ops')).toContain(`'castellan-run:a[.]b( |$)' 'CASTELLAN_RUN=a.b'`);
    expect(killCommand('a.b', 1_500, true, 'ops')).toMatch(/^'sudo' '-n' '--' 'sh' '-c' .* '15'$/s);
  });
});

describe('SideChannel', () => {
  it('strips the marker line even when split across chunks, and passes the rest through', () => {
    const side = new SideChannel();
    const out = [side.push(Buffer.from('\u001ecastel')), side.push(Buffer.from('lan-run 4242\nhello')), side.push(Buffer.from(' world\n'))];
    expect(Buffer.concat(out).toString()).toBe('hello world\n');
    expect(side.sessionId).toBe(4242);
    expect(side.seen).toBe(true);
  });

  it('passes a login-script preamble through and never parses after the marker', () => {
    const side = new SideChannel();
    const text = Buffer.concat([
      side.push(Buffer.from('motd line\n\u001ecastellan-run 7\n')),
      side.push(Buffer.from('\u001ecastellan-run 99\n')),
    ]).toString();
    expect(text).toBe('motd line\n\u001ecastellan-run 99\n');
    expect(side.sessionId).toBe(7);
  });

  it('without a marker, everything is output', () => {
    const side = new SideChannel();
    const text = Buffer.concat([side.push(Buffer.from('\u001ecast')), side.flush()]).toString();
    expect(text).toBe('\u001ecast');
    expect(side.seen).toBe(false);
  });
});

describe('CappedOutput', () => {
  it('keeps at most maxBytes and flags truncation', () => {
    const capture = new CappedOutput(5);
    expect(capture.push(Buffer.from('abc'))).toBe('abc');
    expect(capture.push(Buffer.from('defg'))).toBe('de');
    expect(capture.push(Buffer.from('h'))).toBe('');
    expect(capture.finish()).toBe('abcde');
    expect(capture.truncated).toBe(true);
  });

  it('decodes multi-byte characters split across chunks', () => {
    const capture = new CappedOutput(100);
    const bytes = Buffer.from('é🚀');
    capture.push(bytes.subarray(0, 1));
    capture.push(bytes.subarray(1, 4));
    capture.push(bytes.subarray(4));
    expect(capture.finish()).toBe('é🚀');
    expect(capture.truncated).toBe(false);
  });
});

describe('splitBatches', () => {
  const hosts = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'];
  it('splits by count and by percentage (rounded up, at least one host)', () => {
    expect(splitBatches(hosts, 4).map((batch) => batch.length)).toEqual([4, 4, 2]);
    expect(splitBatches(hosts, '25%').map((batch) => batch.length)).toEqual([3, 3, 3, 1]);
    expect(splitBatches(['a', 'b'], '1%')).toEqual([['a'], ['b']]);
    expect(splitBatches(hosts, '100%')).toEqual([hosts]);
  });
  it('refuses nonsense sizes', () => {
    expect(() => splitBatches(hosts, 0)).toThrow(RangeError);
    expect(() => splitBatches(hosts, '0%')).toThrow(RangeError);
    expect(() => splitBatches(hosts, '150%')).toThrow(RangeError);
  });
});
