// Running one allowlisted playbook with Debian's real ansible-playbook, from the Castellan
// server, against exactly the resolved hosts (--limit), with Castellan's own trust settings:
// its pinned known_hosts, GlobalKnownHostsFile=/dev/null, StrictHostKeyChecking=yes and
// host-key checking forced on through extra vars (the highest precedence Ansible has, so no
// inventory var can turn it off). The process gets a minimal environment, its own temp dir
// and process group (so cancel reaches ssh children), and its stdout is the jsonl callback,
// folded per host by events.ts.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { quoteArg } from '../ssh/quote.js';
import type { ExecEvent, HostResult, HostStatus } from '../ssh/types.js';
import { PlaybookEvents, taskLine, type PlaybookHost } from './events.js';
import { waitForGroup } from '../local/process-group.js';

export interface PlaybookInvocation {
  /** Everything after `ansible-playbook` that the plan fixed (limit, tags, extra vars, check, path). */
  readonly args: readonly string[];
  /** The hosts of --limit, in plan order: every one gets a result. */
  readonly hosts: readonly string[];
  readonly timeoutMs: number;
}

export interface PlaybookEnvironment {
  readonly binary: string;
  readonly inventory: readonly string[];
  readonly knownHostsFile: string;
  /** Castellan's key, used for hosts whose inventory names none. */
  readonly privateKeyFile?: string | undefined;
  /** Castellan's login user, for hosts whose inventory names none. */
  readonly user?: string | undefined;
  readonly forks: number;
  readonly maxOutputBytes: number;
  readonly killGraceMs: number;
}

export interface PlaybookCallOptions {
  readonly signal?: AbortSignal | undefined;
  readonly onEvent?: ((event: ExecEvent) => void) | undefined;
  readonly abortStatus?: (() => HostStatus) | undefined;
}

/** The argv Castellan adds around the plan's args: inventory, trust, key, forks. */
export function connectionArgs(env: PlaybookEnvironment): string[] {
  const ssh = [
    '-o', `UserKnownHostsFile=${env.knownHostsFile}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes',
  ];
  const forced = {
    ansible_host_key_checking: true,
    ansible_ssh_host_key_checking: true,
    // Ansible splits this with shlex: quoteArg's POSIX single quotes survive that split.
    ansible_ssh_common_args: ssh.map(quoteArg).join(' '),
  };
  return [
    ...env.inventory.flatMap((file) => ['-i', file]),
    '--forks', String(env.forks),
    ...(env.privateKeyFile ? ['--private-key', env.privateKeyFile] : []),
    ...(env.user ? ['--user', env.user] : []),
    '--extra-vars', JSON.stringify(forced),
  ];
}

function childEnv(tmp: string): NodeJS.ProcessEnv {
  const keep = ['PATH', 'HOME', 'SSH_AUTH_SOCK', 'TZ'];
  const env: NodeJS.ProcessEnv = {};
  for (const key of keep) if (process.env[key] !== undefined) env[key] = process.env[key];
  return {
    ...env,
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    // No ansible.cfg from the server's cwd or home can change how the run connects.
    ANSIBLE_CONFIG: path.join(tmp, 'ansible.cfg-none'),
    ANSIBLE_STDOUT_CALLBACK: 'ansible.posix.jsonl',
    ANSIBLE_HOST_KEY_CHECKING: 'True',
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_RETRY_FILES_ENABLED: 'False',
    ANSIBLE_LOCAL_TEMP: path.join(tmp, 'local'),
    ANSIBLE_SSH_CONTROL_PATH_DIR: path.join(tmp, 'cp'),
    ANSIBLE_PYTHON_INTERPRETER: 'auto_silent',
    ANSIBLE_DEPRECATION_WARNINGS: 'False',
  };
}

function resultFor(host: string, h: PlaybookHost | undefined, run: { code: number | null; signal: string | null; stderr: string; aborted: HostStatus | null; startedAt: string; durationMs: number; maxBytes: number }): HostResult {
  const lines = (h?.tasks ?? []).map(taskLine).join('\n');
  const truncated = Buffer.byteLength(lines) > run.maxBytes;
  const stdout = truncated ? `${lines.slice(0, run.maxBytes)}\n…` : lines ? `${lines}\n` : '';
  const base = { host, signal: run.signal, stdout, stderr: '', truncated, startedAt: run.startedAt, durationMs: run.durationMs, connectMs: 0 };
  const stats = h?.stats;
  if (stats) {
    if (stats.unreachable > 0) {
      const why = h.tasks.find((t) => t.status === 'unreachable');
      return { ...base, status: 'unreachable', exitCode: 4, error: `unreachable${why?.message ? `: ${why.message}` : ''}` };
    }
    if (stats.failures > 0) {
      const failed = h.tasks.find((t) => t.status === 'failed');
      return { ...base, status: 'failed', exitCode: 2, error: failed ? `task '${failed.task}' failed${failed.message ? `: ${failed.message}` : ''}` : 'a task failed' };
    }
    return { ...base, status: 'ok', exitCode: 0 };
  }
  if (run.aborted) return { ...base, status: run.aborted, exitCode: null, error: 'the playbook run was stopped' };
  const firstError = run.stderr.split('\n').find((l) => l.trim() !== '') ?? '';
  if (run.code === 0) return { ...base, status: 'skipped', exitCode: 0, error: 'the playbook ran no task on this host (no play matched it)' };
  return { ...base, status: 'failed', exitCode: run.code, stderr: run.stderr.slice(0, run.maxBytes), error: `ansible-playbook exited ${run.code ?? run.signal ?? '?'}${firstError ? `: ${firstError.slice(0, 300)}` : ''}` };
}

/** Run the playbook; resolves with one result per host of --limit (never rejects on a failed play). */
export async function runPlaybook(invocation: PlaybookInvocation, env: PlaybookEnvironment, options: PlaybookCallOptions = {}): Promise<HostResult[]> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'castellan-ansible-'));
  const startedAt = new Date().toISOString();
  const started = Date.now();
  const events = new PlaybookEvents();
  let stderr = '';
  for (const host of invocation.hosts) options.onEvent?.({ type: 'host_started', host });
  try {
    const child = spawn(env.binary, [...connectionArgs(env), ...invocation.args], {
      cwd: tmp,
      env: childEnv(tmp),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group: a cancel reaches ansible's forks and ssh children
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      if (stderr.length < env.maxOutputBytes) stderr += chunk;
    });
    const lines = createInterface({ input: child.stdout, crlfDelay: Infinity });
    lines.on('line', (line) => {
      for (const progress of events.push(line)) {
        if (progress.type === 'host_task') {
          options.onEvent?.({ type: 'output', host: progress.host, stream: 'stdout', chunk: `${taskLine(progress.outcome)}\n` });
        }
      }
    });
    const { code, signal, stopped: aborted, spawnError } = await waitForGroup(child, { signal: options.signal, abortStatus: options.abortStatus, timeoutMs: invocation.timeoutMs, killGraceMs: env.killGraceMs });
    if (spawnError !== undefined) stderr += `${spawnError}\n`;

    const run = { code, signal, stderr, aborted, startedAt, durationMs: Date.now() - started, maxBytes: env.maxOutputBytes };
    const results = invocation.hosts.map((host) => resultFor(host, events.hosts().get(host), run));
    for (const result of results) options.onEvent?.({ type: 'host_finished', host: result.host, result });
    return results;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
