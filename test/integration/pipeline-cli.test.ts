// End to end through the real CLI: castellan → job in Redis → worker → SSH to real sshd lab
// nodes → folded result on stdout, progress on stderr, exit codes that mean something.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CLI, runCli, useCastellan } from '../support/castellan.js';

// run_script and copy_file are destructive by capability; this lab lowers them explicitly
// (policy.tool_risk), which is also how an operator would.
const c = useCastellan({ nodes: 4, config: { policy: { approvals: { allow_self_approval: true }, tool_risk: { run_script: 'change', copy_file: 'change' } } } });

describe('castellan CLI through the pipeline', () => {
  it('pings every lab node and folds the identical results', async () => {
    const r = await c.cli(['ping', 'lab']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/node\[01-04\] \(4\)/);
    // The last stderr line is the one-line summary; the result went to stdout, not stderr.
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^ping on node\[01-04\] \(4 hosts\) succeeded in \S+ \S+ \[job j[a-z0-9]+\]$/);
  });

  it('runs uptime on a group and reports per-host progress on stderr', async () => {
    const r = await c.cli(['uptime', 'odd']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/node01: ok/);
    expect(r.stderr).toMatch(/node03: ok/);
    expect(r.stderr).not.toMatch(/node02: ok/);
  });

  it('lists groups without SSH', async () => {
    const r = await c.cli(['list-groups']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('odd');
    expect(r.stdout).toContain('even');
    // The live line says what happened, not "succeeded: no hosts".
    expect(r.stderr).toContain('» succeeded: answered from the inventory\n');
    expect(r.stderr).not.toMatch(/no hosts/);
  });

  it('shows help for a tool derived from its definition', async () => {
    const r = await c.cli(['help', 'journal']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/--lines/);
    // As operators type it: `castellan <tool> --help` (or -h, anywhere before `--`) is the same help, and runs nothing.
    for (const words of [['journal', '--help'], ['exec', 'node01', '-h'], ['run', 'journal', '--help']]) {
      const asked = await c.cli(words);
      expect(asked.code, words.join(' ')).toBe(0);
      expect(asked.stdout, words.join(' ')).toBe(words[0] === 'exec' ? (await c.cli(['help', 'exec'])).stdout : r.stdout);
    }
    // After `--`, `--help` belongs to the command: the words are parsed as a command's (here
    // refused for the bad --timeout before it, so nothing is submitted), not taken as help.
    const argv = await c.cli(['exec', 'node01', '--timeout', 'soon', '--', 'ls', '--help']);
    expect(argv.code).toBe(64);
    expect(argv.stdout).toBe('');
    expect(argv.stderr).toMatch(/timeout/);
  });

  it('exec waits for approval, runs after it, and the job shows who approved', async () => {
    const marker = `/tmp/castellan-cli-${randomBytes(4).toString('hex')}`;
    const submitted = await c.cli(['--no-wait', 'exec', 'node02', '--', 'touch', marker]);
    expect(submitted.code).toBe(3); // still pending
    const jobId = submitted.stdout.trim();
    expect(jobId).toMatch(/^j[a-z0-9]+$/);
    expect(submitted.stderr).toContain(`castellan approve ${jobId}`);
    await new Promise((r) => setTimeout(r, 500));
    expect(existsSync(marker)).toBe(false); // nothing ran before the approval

    const approved = await c.cli(['approve', jobId, '--reason', 'looks right']);
    expect(approved.code).toBe(0);
    const finished = await c.runtime.service.wait(jobId, c.runtime.localRequester('cli'), 30_000);
    expect(finished.state).toBe('succeeded');
    expect(existsSync(marker)).toBe(true);
    const shown = await c.cli(['job', jobId]);
    // The job card: summary, who asked, the exact command, the approval, each said once.
    expect(shown.stdout).toMatch(/^exec on node02 succeeded in \S+ \S+ \[job j[a-z0-9]+\]\n/);
    expect(shown.stdout).toMatch(/requested by Local admin via cli at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/);
    expect(shown.stdout).toContain(`exec: touch ${marker} on node02`);
    expect(shown.stdout).toMatch(/approval: 1 of 1\n {2}approved by Local admin via cli at .*: looks right/);
    expect(shown.stdout).not.toMatch(/is succeeded|succeeded: no hosts/);
  });

  it('pipe runs each stdin line, skipping comments and blank lines', async () => {
    const r = await c.cli(['--no-wait', 'pipe', 'node01', '--timeout', '20s'], { stdin: '# a comment\n\necho first\necho second\n' });
    // exec is destructive: even the local admin's own request waits for an approval.
    expect(r.code).toBe(3);
    const jobId = r.stdout.trim();
    const me = c.runtime.localRequester('cli');
    const pending = await c.runtime.service.get(jobId, me);
    expect(pending.input).toMatchObject({ lines: ['echo first', 'echo second'] });
    await c.runtime.service.approve(jobId, me);
    const done = await c.runtime.service.wait(jobId, me, 30_000);
    expect(done.state).toBe('succeeded');
    expect(done.result?.steps.map((s) => s.results[0]?.stdout.trim())).toEqual(['first', 'second']);
    // `castellan output`: each step's lines under its step id, numbered per host, paged with --after.
    const out = await c.cli(['output', jobId]);
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/^node01: lines 1-2 of 2\n {2}\S+:\n {2}1 │ first\n {2}\S+:\n {2}2 │ second\n$/);
    const first = await c.cli(['output', jobId, '--lines', '1']);
    expect(first.stdout).not.toContain('second');
    expect(first.stderr).toContain(`more: castellan output ${jobId} --after f:node01:1`);
    const rest = await c.cli(['output', jobId, '--after', 'f:node01:1']);
    expect(rest.stdout).toBe("node01: line 2 of 2\n  2 │ second\n");
  });

  it('refuses bad input with a clear error and submits nothing', async () => {
    const before = (await c.runtime.service.list(c.runtime.localRequester('cli'), { limit: 200 })).length;
    const unknownTool = await c.cli(['run', 'pnig', 'lab']);
    expect(unknownTool.code).toBe(64);
    expect(unknownTool.stderr).toMatch(/unknown tool 'pnig'.*ping/);

    const badTarget = await c.cli(['ping', 'lba']);
    expect(badTarget.code).toBe(64);
    expect(badTarget.stderr).toMatch(/lba/);
    expect(badTarget.stderr).toMatch(/did you mean 'lab'/);

    const hostile = await c.cli(['service_status', 'lab', '--unit', 'nginx; rm -rf /']);
    expect(hostile.code).toBe(64);
    expect(hostile.stderr).toMatch(/unit/);

    const hostileTarget = await c.cli(['ping', '$(reboot)']);
    expect(hostileTarget.code).toBe(64);
    expect(hostileTarget.stderr).toMatch(/target|character/i);

    const after = (await c.runtime.service.list(c.runtime.localRequester('cli'), { limit: 200 })).length;
    expect(after).toBe(before);
  });

  it('lists jobs and shows one with its event log', async () => {
    const r = await c.cli(['jobs', '--limit', '5']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/succeeded\s+ping/);
    // Filters read the job indexes: only ping jobs on node02 that succeeded, each one a line.
    const filtered = await c.cli(['jobs', '--tool', 'ping', '--host', 'node02', '--state', 'succeeded', '--limit', '50']);
    expect(filtered.code).toBe(0);
    const lines = filtered.stdout.trim().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line).toMatch(/^j[a-z0-9]+\s+succeeded\s+ping\s/);
    const none = await c.cli(['jobs', '--tool', 'reboot', '--host', 'node02']);
    expect(none.stdout).toBe('');
    expect(none.stderr).toContain('no jobs match');
    const bad = await c.cli(['jobs', '--state', 'runing']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--state: unknown state 'runing'/);
  });

  it('refuses a changed host key, and pins a new one only when told to, explicitly', async () => {
    await c.lab.rotateHostKey('node04');
    const refused = await c.cli(['ping', 'node04']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/node04: host key rejected/);
    expect(refused.stdout).toMatch(/SHA256:.*SHA256:/);

    const notInteractive = await c.cli(['hosts', 'trust', 'node04']);
    expect(notInteractive.stdout).toMatch(/node04 \(127\.0\.0\.\d+:\d+\): ssh-ed25519 SHA256:/);
    expect(notInteractive.stderr).toMatch(/--yes/);
    expect(notInteractive.code).not.toBe(0);

    const differs = await c.cli(['hosts', 'trust', 'node04', '--yes']);
    expect(differs.code).toBe(1);
    expect(differs.stdout).toMatch(/node04: refused/);

    const replaced = await c.cli(['hosts', 'trust', 'node04', '--yes', '--replace']);
    expect(replaced.code).toBe(0);
    expect(replaced.stdout).toMatch(/node04: replaced SHA256:\S+ \(was SHA256:/);
    const again = await c.cli(['ping', 'node04']);
    expect(again.code).toBe(0);
  }, 180_000); // six CLI processes, each starting a runtime: slow on a loaded 2-core machine

  it('accepts global options after the tool name and its parameters, as kubectl does', async () => {
    const r = await runCli(['uptime', 'odd', '--config', c.configFile, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ tool: 'uptime', state: 'succeeded' });
    const late = await runCli(['jobs', '--limit', '1', '--config', c.configFile]);
    expect(late.code).toBe(0);
    expect(late.stdout).toMatch(/uptime/);
  });

  it('stops quietly when the reader of its output goes away (castellan … | head)', async () => {
    const child = spawn(process.execPath, [CLI, '--config', c.configFile, 'list-groups'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // the reader closed the pipe before anything was written
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(stderr).not.toMatch(/EPIPE|Unhandled|at /);
    expect(code).toBe(0);
  });

  it('says in one line what a node lacks instead of a bare exit code', async () => {
    const missing = await c.cli(['--no-wait', 'exec', 'node01', '--', 'castellan-no-such-program', '--version']);
    const jobId = missing.stdout.trim();
    await c.cli(['approve', jobId]);
    const shown = await c.runtime.service.wait(jobId, c.runtime.localRequester('cli'), 30_000);
    expect(shown.result?.hosts[0]?.error).toBe('castellan-no-such-program is not installed here (command not found)');

    // The lab nodes share this machine's init: systemd only where PID 1 is systemd.
    const init = readFileSync('/proc/1/comm', 'utf8').trim();
    const status = await c.cli(['service_status', 'node01', '--unit', 'ssh']);
    if (init === 'systemd') expect(status.stderr).not.toMatch(/systemd is not running here/);
    else {
      expect(status.code).toBe(1);
      expect(status.stderr).toContain(`node01: failed exit 1: systemd is not running here (PID 1 is ${init})`);
    }
  });

  it('completes commands, tool parameters and inventory hosts and groups in bash', { timeout: 180_000 }, async () => {
    const bin = mkdtempSync(path.join(os.tmpdir(), 'castellan-completion-'));
    symlinkSync(CLI, path.join(bin, 'castellan'));
    const script = await c.cli(['completion', 'bash']);
    expect(script.code).toBe(0);
    writeFileSync(path.join(bin, 'castellan.bash'), script.stdout);
    const complete = async (...words: string[]): Promise<string[]> => {
      const line = `source ${path.join(bin, 'castellan.bash')}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _castellan; printf '%s\\n' "\${COMPREPLY[@]}"`;
      const r = await new Promise<string>((resolve) => {
        const child = spawn('bash', ['-c', line], { env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, CASTELLAN_CONFIG: c.configFile } });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.on('close', () => resolve(out));
      });
      return r.split('\n').filter(Boolean);
    };
    expect(await complete('castellan', 'upt')).toEqual(['uptime']);
    expect(await complete('castellan', 'uptime', 'o')).toEqual(['odd']);
    expect(await complete('castellan', 'journal', 'lab', '--l')).toEqual(['--lines']);
    expect(await complete('castellan', 'ping', 'node0')).toEqual(['node01', 'node02', 'node03', 'node04']);
    expect(await complete('castellan', 'exec', 'all', '--', 'un')).toEqual([]);
    for (const shell of ['zsh', 'fish']) expect((await c.cli(['completion', shell])).stdout).toContain('castellan __complete');
    expect((await c.cli(['completion', 'tcsh'])).code).toBe(64);
  });
});
