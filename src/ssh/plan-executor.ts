// Adapts the SSH executor to what the job runner needs (queues/runner.ts PlanExecutor), with
// the config's limits, and two guards that belong at execution time rather than in pure
// plans: the pinned host keys are re-read when known_hosts changes (after `castellan hosts
// trust`), and local paths of transfers must really resolve inside the files root (a
// symlink cannot lead a copy outside it).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { fileStamp } from '../../config/file-stamp.js';
import { mkdir, realpath, stat } from 'node:fs/promises';
import { dirname, relative, isAbsolute } from 'node:path';
import type { Config } from '../../config/load.js';
import type { PlanExecutor, TransferCallOptions } from '../../queues/runner.js';
import type { Logger } from '../log.js';
import { metrics } from '../../queues/metrics.js';
import { runPlaybook } from '../ansible/run.js';
import { jumpHostOutcome, jumpHostRequest, missingCredential, runIpmitool } from '../bmc/ipmitool.js';
import { SshExecutor } from './executor.js';
import { KnownHosts } from './known-hosts.js';
import { sshMetrics } from './metrics.js';
import { download, relay, TransferRefused, upload } from './transfer.js';
import { trustHosts } from './trust.js';
import type { ExecEvent, ExecRequest, FanoutOptions, HostResult, SshTarget } from './types.js';

export interface ClosablePlanExecutor extends PlanExecutor {
  readonly ssh: SshExecutor;
  close(): Promise<void>;
}

let observer: ReturnType<typeof sshMetrics> | undefined;

export async function createPlanExecutor(config: Config, logger: Logger): Promise<ClosablePlanExecutor> {
  const knownHostsFile = config.knownHosts;
  let stamp = fileStamp(knownHostsFile);
  observer ??= sshMetrics(metrics().registry);
  const ssh = new SshExecutor({
    knownHosts: await loadPinned(knownHostsFile),
    limits: {
      connectTimeoutMs: config.ssh.connectTimeoutMs,
      commandTimeoutMs: config.ssh.commandTimeoutMs,
      maxOutputBytes: config.ssh.maxOutputBytes,
      killGraceMs: config.ssh.killGraceMs,
    },
    window: config.ssh.window,
    maxChannelsPerHost: config.ssh.maxChannelsPerHost,
    idleCloseMs: config.ssh.idleCloseMs,
    keepaliveIntervalMs: config.ssh.keepaliveIntervalMs,
    agentSocket: config.ssh.agentSocket,
    maxTransferBytes: config.ssh.maxTransferBytes,
    nodeHelper: config.ssh.nodeHelper,
    logger,
    observer,
  });

  const refreshPins = async (): Promise<void> => {
    const now = fileStamp(knownHostsFile);
    if (now === stamp) return;
    stamp = now;
    ssh.replaceKnownHosts(await loadPinned(knownHostsFile));
    logger.info({ file: knownHostsFile }, 'known_hosts changed: pinned host keys reloaded');
  };
  const root = config.jobs.filesRoot;

  return {
    ssh,
    async exec(targets: readonly SshTarget[], request: (t: SshTarget) => ExecRequest, options: FanoutOptions): Promise<HostResult[]> {
      await refreshPins();
      return ssh.fanout(targets, request, options);
    },
    async upload(targets, localPath, remotePath, options: TransferCallOptions & { mode?: number | undefined }) {
      await refreshPins();
      const refusal = await outsideRoot(root, localPath, true);
      if (refusal) return refuse(targets, refusal, options);
      return upload(ssh, targets, localPath, remotePath, options);
    },
    async download(targets, remotePath, localDir, options: TransferCallOptions) {
      await refreshPins();
      // Checked before anything is created: the deepest existing part of the path must lie
      // inside the files root once symlinks are resolved; then again once it exists.
      const before = await outsideRoot(root, await deepestExisting(localDir), true);
      if (before) return refuse(targets, before, options);
      await mkdir(localDir, { recursive: true }).catch(() => undefined);
      const refusal = await outsideRoot(root, localDir, true);
      if (refusal) return refuse(targets, refusal, options);
      const checkDir = async (dir: string): Promise<void> => {
        const outside = await outsideRoot(root, dir, true);
        if (outside) throw new TransferRefused(outside);
      };
      return download(ssh, targets, remotePath, localDir, { ...options, checkDir });
    },
    async relay(from, remotePath, targets, destPath, options: TransferCallOptions) {
      await refreshPins();
      return relay(ssh, from, remotePath, targets, destPath, options);
    },
    async pinnedFingerprints(target) {
      await refreshPins();
      return ssh.pinnedFingerprints(target);
    },
    fileDigest: digestOf,
    async playbook(hosts, args, options) {
      return runPlaybook(
        { args, hosts, timeoutMs: options.timeoutMs },
        {
          binary: config.ansible.playbookBinary,
          inventory: config.inventory,
          knownHostsFile,
          privateKeyFile: config.ssh.privateKeyFile,
          user: config.ssh.user,
          forks: config.ansible.forks,
          maxOutputBytes: config.ssh.maxOutputBytes,
          killGraceMs: config.ssh.killGraceMs,
        },
        options,
      );
    },
    async ipmi(run, options) {
      const password = config.secrets.bmcPassword(run.credential);
      if (run.via === undefined) {
        return runIpmitool(
          { host: run.host, args: run.args, credential: run.credential, password, timeoutMs: run.timeoutMs },
          { binary: config.bmc.ipmitool, maxOutputBytes: config.ssh.maxOutputBytes, killGraceMs: config.ssh.killGraceMs },
          options,
        );
      }
      // On the jump host: the same pinned-key executor as every command, ipmitool's password on its stdin.
      const request = password === undefined ? { refused: missingCredential(run.credential) } : jumpHostRequest(run.args, password, run.runId);
      if ('refused' in request) return refuse([run.via], request.refused, options)[0]!;
      await refreshPins();
      // Its finish is announced once read as ipmitool's (auth_failed, not just "exit 1").
      const onEvent = (event: ExecEvent): void => {
        if (event.type !== 'host_finished') options.onEvent?.(event);
      };
      const [raw] = await ssh.fanout([run.via], () => request, { signal: options.signal, onEvent, commandTimeoutMs: run.timeoutMs });
      const result = jumpHostOutcome(run.about, raw!);
      options.onEvent?.({ type: 'host_finished', host: result.host, result });
      return result;
    },
    async pinHostKey(targets, approved) {
      const started = Date.now();
      const outcomes = await trustHosts(targets, knownHostsFile, { connectTimeoutMs: config.ssh.connectTimeoutMs, expected: Object.fromEntries(targets.map((t) => [t.name, approved])) });
      await refreshPins();
      return outcomes.map((o): HostResult => {
        const ok = o.action === 'added' || o.action === 'unchanged';
        return {
          host: o.host,
          status: ok ? 'ok' : o.action === 'refused' ? 'host_key_rejected' : 'failed',
          exitCode: null,
          signal: null,
          stdout: ok ? `${o.action === 'added' ? 'pinned' : 'already pinned'}: ${o.fingerprint ?? ''}\n` : '',
          stderr: '',
          truncated: false,
          startedAt: new Date(started).toISOString(),
          durationMs: Date.now() - started,
          connectMs: 0,
          error: ok ? undefined : o.error,
        };
      });
    },
    async reconcileRun(target, runId, options) {
      await refreshPins();
      const found = await ssh.findRemoteRun(target, runId, { asRoot: options.asRoot });
      if (found.state === 'unknown') return { state: 'unknown', error: found.error };
      if (found.state === 'absent') return { state: 'ended' };
      const killed = await ssh.killRemoteRun(target, runId, { asRoot: options.asRoot });
      if (killed.outcome === 'survivors' || killed.outcome === 'unknown') return { state: 'unknown', processes: found.processes.length, error: killed.error ?? killed.outcome };
      return { state: killed.outcome === 'gone' ? 'ended' : 'stopped', processes: found.processes.length, how: killed.outcome };
    },
    close: () => ssh.close(),
  };
}

/** sha256 of a local file's content, streamed; `missing` when it cannot be read. */
async function digestOf(path: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    // A FIFO or device would block or never end: only regular files are read.
    if (!(await stat(path)).isFile()) return 'not-a-regular-file';
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch {
    return 'missing';
  }
  return hash.digest('hex');
}

async function loadPinned(file: string): Promise<KnownHosts> {
  // A missing known_hosts pins nothing: every host is refused until `castellan hosts trust`.
  try {
    await stat(file);
  } catch {
    await mkdir(dirname(file), { recursive: true }).catch(() => undefined);
    return KnownHosts.parse('', file);
  }
  return KnownHosts.load(file);
}


/** `path` itself if it exists, else its nearest existing ancestor (nothing is created). */
async function deepestExisting(path: string): Promise<string> {
  let current = path;
  for (;;) {
    if (await stat(current).then(() => true, () => false)) return current;
    const parent = dirname(current);
    if (parent === current) return current;
    current = parent;
  }
}

async function outsideRoot(root: string, path: string, mustExist: boolean): Promise<string | undefined> {
  let realRoot: string;
  let realPath: string;
  try {
    realRoot = await realpath(root);
  } catch {
    return `the files root ${root} does not exist; create it and put the files to copy there`;
  }
  try {
    realPath = await realpath(path);
  } catch {
    return mustExist ? `${path} does not exist` : undefined;
  }
  const rel = relative(realRoot, realPath);
  if (rel.startsWith('..') || isAbsolute(rel)) return `${path} resolves to ${realPath}, outside the files root ${realRoot}`;
  return undefined;
}

function refuse(targets: readonly SshTarget[], error: string, options: TransferCallOptions): HostResult[] {
  return targets.map((t) => {
    const result: HostResult = { host: t.name, status: 'failed', exitCode: null, signal: null, stdout: '', stderr: '', truncated: false, startedAt: new Date().toISOString(), durationMs: 0, connectMs: 0, error: `refused: ${error}` };
    options.onEvent?.({ type: 'host_finished', host: t.name, result });
    return result;
  });
}
