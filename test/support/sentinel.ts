// Redis Sentinel on loopback for the failover tests (redis-sentinel, redis-sentinel-replicas), with Debian's redis-sentinel: sentinels
// monitoring a primary started with src/lab/redis.ts, asked with short-lived clients (no ready
// check: a sentinel with requirepass refuses it), and the questions the tests wait on (which
// primary every sentinel names; does each know the replicas and the other sentinels); then
// submissions made through a failover, and what must hold of them afterwards.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { expect } from 'vitest';
import { stringify } from 'yaml';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { loadConfig } from '../../config/load.js';
import { Redactor } from '../../queues/redact.js';
import { isFinal } from '../../queues/states.js';
import { findFreePort } from '../../src/lab/net.js';
import { startRedis, type PrivateRedis } from '../../src/lab/redis.js';
import { labUp, type Lab } from '../../src/lab/sshd-lab.js';
import { createLogger } from '../../src/log.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { startCastellanProcess, type CastellanProcess } from './castellan-process.js';
import { eventually } from '../integration/mcp-harness.js';

export interface Sentinel {
  readonly port: number;
  readonly child: ChildProcess;
}

/** A sentinel process that dies with the test process (setpriv's parent-death signal where Debian has it). */
export function spawnSentinel(conf: string): ChildProcess {
  const args = ['--pdeathsig', 'SIGKILL', '--', '/usr/bin/redis-sentinel', conf];
  return existsSync('/usr/bin/setpriv') ? spawn('/usr/bin/setpriv', args, { stdio: 'ignore' }) : spawn('/usr/bin/redis-sentinel', [conf], { stdio: 'ignore' });
}

/** One command to a redis-server or sentinel on loopback, on a connection of its own. */
export async function askAs(port: number, password: string | undefined, ...args: string[]): Promise<unknown> {
  const client = new Redis({ host: '127.0.0.1', port, ...(password !== undefined ? { password } : {}), enableReadyCheck: false, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1000, commandTimeout: 2000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await client.call(args[0]!, ...args.slice(1));
  } finally {
    client.disconnect();
  }
}

export const ask = (port: number, ...args: string[]): Promise<unknown> => askAs(port, undefined, ...args);

/** `count` sentinels with a quorum of 2 watching `primaryPort` as `master`; fast to decide (1 s down-after, 4 s failover timeout). */
export async function startSentinels(dir: string, master: string, primaryPort: number, count = 3): Promise<Sentinel[]> {
  const sentinels: Sentinel[] = [];
  for (let i = 0; i < count; i++) {
    const port = await findFreePort();
    const conf = path.join(dir, `sentinel-${i}.conf`);
    await mkdir(path.join(dir, `sentinel-${i}`), { recursive: true });
    await writeFile(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        'daemonize no',
        `dir ${path.join(dir, `sentinel-${i}`)}`,
        `logfile ${path.join(dir, `sentinel-${i}.log`)}`,
        'sentinel announce-ip 127.0.0.1',
        `sentinel monitor ${master} 127.0.0.1 ${primaryPort} 2`,
        `sentinel down-after-milliseconds ${master} 1000`,
        `sentinel failover-timeout ${master} 4000`,
        `sentinel parallel-syncs ${master} 1`,
        '',
      ].join('\n'),
    );
    sentinels.push({ port, child: spawnSentinel(conf) });
  }
  return sentinels;
}

/** The port every sentinel names as the primary, once they agree. */
export async function agreedPrimary(sentinels: readonly Sentinel[], master: string): Promise<number | undefined> {
  const named = await Promise.all(sentinels.map((s) => ask(s.port, 'SENTINEL', 'get-master-addr-by-name', master).catch(() => null)));
  const ports = new Set(named.map((n) => (Array.isArray(n) ? Number(n[1]) : NaN)));
  if (ports.size !== 1) return undefined;
  const [port] = [...ports];
  return Number.isNaN(port) ? undefined : port;
}

/** Waits until every sentinel knows at least `replicas` replicas and `otherSentinels` other sentinels. */
export async function sentinelsKnow(sentinels: readonly Sentinel[], master: string, want: { replicas: number; otherSentinels?: number }, timeoutMs = 60_000): Promise<void> {
  await eventually(async () => {
    for (const s of sentinels) {
      const fields = (await ask(s.port, 'SENTINEL', 'master', master).catch(() => [])) as string[];
      const field = (k: string): number => Number(fields[fields.indexOf(k) + 1] ?? '0');
      if (field('num-slaves') < want.replicas || field('num-other-sentinels') < (want.otherSentinels ?? 0)) return undefined;
    }
    return true;
  }, timeoutMs, `the sentinels to know ${want.replicas} replica(s)${want.otherSentinels ? ` and ${want.otherSentinels} other sentinels` : ''}`);
}

/** Waits until the redis-server on `port` is a replica whose link to its primary is up. */
export async function replicaInSync(port: number, timeoutMs = 60_000): Promise<void> {
  await eventually(async () => (/master_link_status:up/.test(String(await ask(port, 'INFO', 'replication').catch(() => ''))) ? true : undefined), timeoutMs, `the replica on port ${port} to be in sync`);
}

// ---- Submissions through a failover, and what must hold afterwards ----

export interface Confirmed {
  readonly id: string;
  /** The file on the node the job's command appends one line to each time it runs. */
  readonly file: string;
  /** Submitted once the sentinels named the new primary. */
  readonly afterSwitch: boolean;
  approvedAt: number;
}

export interface Refused {
  readonly file: string;
  readonly error: string;
  readonly at: number;
}

export const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Submits an `exec` that appends a line to `file` on `node` and approves it at once; an
 * approval refused as unconfirmed is given again until it holds (or the job left
 * awaiting_approval). A refused submission comes back as such, after a short pause so a loop of
 * them never starves the event loop (ioredis's reconnect timer must get its turn).
 */
export async function submitApproved(runtime: Runtime, who: { requester: Requester; approver: Requester }, node: string, file: string, tag: string, afterSwitch: boolean): Promise<Confirmed | Refused> {
  let id: string;
  try {
    const { job } = await runtime.service.submit({ tool: 'exec', input: { targets: node, command: `echo ran >> ${file}; sleep 1 # ${tag}` }, requester: who.requester, replyTo: { kind: 'cli' } });
    id = job.id;
  } catch (err) {
    const refused = { file, error: String(err), at: Date.now() };
    await pause(100);
    return refused;
  }
  const entry: Confirmed = { id, file, afterSwitch, approvedAt: 0 };
  for (let a = 0; ; a++) {
    try {
      await runtime.service.approve(id, who.approver);
      entry.approvedAt = Date.now();
      return entry;
    } catch (err) {
      const state = await runtime.service.get(id, who.requester).then((r) => r.state).catch(() => undefined);
      if (state !== undefined && state !== 'awaiting_approval') return entry;
      if (a > 300) throw new Error(`approval of ${id} never confirmed`, { cause: err });
      await pause(200);
    }
  }
}

export const isRefused = (r: Confirmed | Refused): r is Refused => 'error' in r;

/** Retries through the seconds of a failover, when the front connection answers `unavailable`. */
export async function retrying<T>(work: () => Promise<T>, what: string, attempts = 120): Promise<T> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      return await work();
    } catch (err) {
      last = err;
      await pause(250);
    }
  }
  throw new Error(`${what}: ${String(last)}`);
}

export const fileLines = async (file: string): Promise<string[]> => (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean);

export interface Ended extends Confirmed {
  readonly state: string;
  readonly reason: string;
  readonly startedAt: number | undefined;
}

/** Waits for every confirmed job to end; for whoever reads a failure, prints what the worker said about one that did not. */
export async function endings(runtime: Runtime, viewer: Requester, confirmed: readonly Confirmed[], worker: CastellanProcess): Promise<Ended[]> {
  const ended: Ended[] = [];
  for (const c of confirmed) {
    const final = await retrying(async () => {
      const record = await runtime.service.get(c.id, viewer);
      if (!isFinal(record.state)) throw new Error(`still ${record.state}`);
      return record;
    }, `${c.id} to end`, 480).catch(async (err: unknown) => {
      const record = await runtime.ctx.store.get(c.id).catch(() => undefined);
      const about = worker.stderr().split('\n').filter((l) => l.includes(c.id));
      console.log(`${c.id} did not end: ${JSON.stringify({ state: record?.state, worker: record?.worker, reason: record?.reason })}\nworker lines about it:\n${about.join('\n')}\nworker's last lines:\n${worker.stderr().split('\n').slice(-40).join('\n')}`);
      throw err;
    });
    ended.push({ ...c, state: final.state, reason: final.reason ?? '', startedAt: final.startedAt === undefined ? undefined : Date.parse(final.startedAt) });
  }
  return ended;
}

/**
 * How long a failover kept work away, printed as one `failover timing:` line for
 * bench/failover.ts (timing goals live in bench/, not in assertions): until submissions were
 * taken again, and until a job approved after the switch started on a worker.
 */
export function printFailoverTiming(askedAt: number, switchedAt: number | undefined, ended: readonly Ended[], refused: readonly Refused[]): void {
  const afterSwitch = ended.filter((f) => f.afterSwitch && f.startedAt !== undefined && f.approvedAt > 0);
  const firstAfter = [...afterSwitch].sort((a, b) => a.approvedAt - b.approvedAt)[0];
  const lastRefusedAt = refused.length > 0 ? Math.max(...refused.map((r) => r.at)) : undefined;
  console.log(`failover timing: ${JSON.stringify({
    switchMs: (switchedAt ?? askedAt) - askedAt,
    refused: refused.length,
    refusedForMs: lastRefusedAt === undefined ? 0 : lastRefusedAt - Math.min(...refused.map((r) => r.at)),
    firstStartAfterFailoverMs: firstAfter?.startedAt === undefined ? null : firstAfter.startedAt - askedAt,
    approvedToStartAfterSwitchMs: firstAfter?.startedAt === undefined ? null : firstAfter.startedAt - firstAfter.approvedAt,
  })}`);
}

/**
 * What must hold after a failover: each job ran at most once on its node (counted there), a
 * succeeded one exactly once; an interrupted one stopped because it lost its job lock; any other
 * ending is a failure that ran nothing; the audit has every record; refused submissions said
 * "unavailable" and never ran.
 */
export async function expectRanOnceAndAudited(runtime: Runtime, ended: readonly Ended[], refused: readonly Refused[]): Promise<void> {
  // Refused submissions never run: whatever might still start them has had time to.
  await pause(3000);
  for (const f of ended) {
    const runs = (await fileLines(f.file)).length;
    expect(runs, `${f.id} (${f.state}: ${f.reason}) ran at most once`).toBeLessThanOrEqual(1);
    if (f.state === 'succeeded') expect(runs, `${f.id} succeeded`).toBe(1);
    else if (f.state === 'interrupted') {
      // BullMQ's lock renewal failed during the switch and the worker stopped the run rather
      // than risk running beside another delivery: a true ending, the run stopped mid-way.
      expect(f.reason, f.id).toMatch(/lost the job lock/);
    } else {
      expect(f.state, `${f.id}: ${f.reason}`).toBe('failed');
      expect(f.reason).toMatch(/nothing was run/);
      expect(runs).toBe(0);
    }
    const kinds = (await retrying(() => runtime.ctx.audit.read({ jobId: f.id }), 'audit')).map((a) => a.kind).sort();
    if (f.state === 'succeeded') expect(kinds, `${f.id} audit`).toEqual(['decision', 'execution', 'outcome', 'request']);
    else if (f.state === 'interrupted') expect(kinds.filter((k) => k !== 'execution'), `${f.id} audit`).toEqual(['decision', 'outcome', 'request']);
    else expect(kinds.filter((k) => k !== 'decision'), `${f.id} audit`).toEqual(['outcome', 'request']);
  }
  for (const r of refused) {
    expect(r.error).toMatch(/unavailable/);
    expect(await fileLines(r.file), `refused submission ${r.file} never ran`).toEqual([]);
  }
}

// ---- A whole site: primary, replicas, sentinels, sshd nodes, a server runtime and a worker process ----

const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const person = (subject: string, groups: string[]): Requester => ({ subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin: 'cli' });
/** An operator who submits, and a lead who approves (self-approval is off). */
export const oscar = person('oscar', ['ops']);
export const april = person('april', ['leads']);
export const MASTER = 'castellan';

export interface FailoverSite {
  readonly dir: string;
  /** [0] the first primary, then its replicas. */
  readonly servers: PrivateRedis[];
  readonly sentinels: Sentinel[];
  readonly lab: Lab;
  readonly runtime: Runtime;
  readonly worker: CastellanProcess;
  readonly configFile: string;
  down(): Promise<void>;
}

/**
 * A primary with `replicas` replicas in sync, three sentinels that know them all, `nodes` sshd
 * nodes, Castellan configured with `redis.sentinels` + `redis.name` (a server runtime in this
 * process, a `castellan worker` process beside it).
 */
export async function startFailoverSite(opts: { replicas: number; nodes: number }): Promise<FailoverSite> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-sentinel-'));
  const servers = [await startRedis({ dir: path.join(dir, 'primary') })];
  for (let i = 1; i <= opts.replicas; i++) {
    const replica = await startRedis({ dir: path.join(dir, `replica-${i}`) });
    await ask(replica.port, 'REPLICAOF', '127.0.0.1', String(servers[0]!.port));
    await replicaInSync(replica.port, 30_000);
    servers.push(replica);
  }
  const sentinels = await startSentinels(dir, MASTER, servers[0]!.port);
  // Every sentinel knows the primary, its replicas and the two other sentinels.
  await sentinelsKnow(sentinels, MASTER, { replicas: opts.replicas, otherSentinels: 2 });

  const lab = await labUp({ nodes: opts.nodes, dir: path.join(dir, 'lab'), dieWithParent: true });
  await mkdir(path.join(dir, 'files'), { recursive: true });
  const configFile = path.join(dir, 'castellan.yaml');
  await writeFile(
    configFile,
    stringify({
      inventory: lab.inventoryFile,
      known_hosts: lab.knownHostsFile,
      ssh: { user: lab.loginUser, private_key_file: lab.clientKeyFile, connect_timeout: '5s', command_timeout: '2m' },
      // confirm_within below the 60 s default: a claim or ending waits out this lab's forced
      // failover (~15 s without a confirming replica), and the kill test (no replica left at
      // all) is not held a full minute.
      redis: { sentinels: sentinels.map((s) => `127.0.0.1:${s.port}`), name: MASTER, prefix: 'castellan', confirm_within: '25s' },
      server: { listen: '127.0.0.1:0', public_url: 'http://127.0.0.1:8080' },
      auth: { roles: ROLE_MAP, local_identity: { subject: 'local-admin', display_name: 'Local admin', groups: ['admins'] } },
      policy: { approvals: { required: 1, allow_self_approval: false, expiry: '15m' } },
      jobs: { files_root: path.join(dir, 'files') },
      audit: { file: path.join(dir, 'audit.jsonl') },
      log: { level: 'info' },
      // The failover tests submit faster than one worker drains at low load: the default 16
      // jobs in flight per person refused submissions ("you already have 16 jobs…"), and the
      // per-minute rate would next; neither is what they are about.
      limits: { jobs_per_requester: 200, rate: { per_minute: 6000, burst: 500 } },
    }),
  );
  const config = await loadConfig(configFile);
  const logger = createLogger({ level: 'warn', redactor: new Redactor(config.secrets.values()) });
  const runtime = await createRuntime(config, { mode: 'server', logger, jobSettings: { submitGraceMs: 3000, reconcileEveryMs: 1000 } });
  const worker = await startCastellanProcess(['--config', configFile, 'worker'], { ready: /worker .* started/ });
  return {
    dir,
    servers,
    sentinels,
    lab,
    runtime,
    worker,
    configFile,
    async down() {
      await worker.stop();
      await runtime.close();
      await lab.down();
      for (const s of sentinels) s.child.kill('SIGKILL');
      for (const s of servers) await s.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
