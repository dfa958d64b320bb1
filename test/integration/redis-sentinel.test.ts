// Redis that fails over, with Debian's redis-sentinel: a primary, a replica and three
// sentinels on loopback, Castellan configured with `redis.sentinels` + `redis.name`, a
// separate `castellan worker` process and real sshd nodes.
//  - A failover forced (SENTINEL FAILOVER) while submissions go on, each approved at once:
//    every confirmed job exists afterwards and ends in a correct final state, none ran twice
//    on its node (counted on the node), refused submissions say "unavailable" and never ran,
//    the audit has every record. (Before queues/claims.ts a worker's `running` and ledger
//    writes on the old primary could be lost and the job ran again on the new one.)
//  - Sentinels with `requirepass`: Castellan reaches them with redis.sentinel_password_env, and
//    without it says clearly that it cannot.
//  - The primary SIGKILLed during running jobs: every job is in a correct final state, none
//    ran twice on a host (counted on the nodes) and the audit has every record.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { loadConfig } from '../../config/load.js';
import { findFreePort } from '../../src/lab/net.js';
import { startRedis, type PrivateRedis } from '../../src/lab/redis.js';
import { labUp, type Lab } from '../../src/lab/sshd-lab.js';
import { createLogger } from '../../src/log.js';
import { Redactor } from '../../queues/redact.js';
import { connectRedis, closeRedis, redisTopology } from '../../src/redis.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { isFinal } from '../../queues/states.js';
import { startCastellanProcess, type CastellanProcess } from '../support/castellan-process.js';
import { eventually } from './mcp-harness.js';

const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const person = (subject: string, groups: string[]): Requester => ({ subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin: 'cli' });
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);
const MASTER = 'castellan';

let dir: string;
let primary: PrivateRedis;
let replica: PrivateRedis;
const sentinels: Array<{ port: number; child: ChildProcess }> = [];
let lab: Lab;
let runtime: Runtime;
let worker: CastellanProcess;
let configFile: string;

function spawnSentinel(conf: string): ChildProcess {
  const args = ['--pdeathsig', 'SIGKILL', '--', '/usr/bin/redis-sentinel', conf];
  return existsSync('/usr/bin/setpriv') ? spawn('/usr/bin/setpriv', args, { stdio: 'ignore' }) : spawn('/usr/bin/redis-sentinel', [conf], { stdio: 'ignore' });
}

async function ask(port: number, ...args: string[]): Promise<unknown> {
  return askAs(port, undefined, ...args);
}

async function askAs(port: number, password: string | undefined, ...args: string[]): Promise<unknown> {
  // No ready check: a sentinel with requirepass would refuse it and the connection never be ready.
  const client = new Redis({ host: '127.0.0.1', port, ...(password !== undefined ? { password } : {}), enableReadyCheck: false, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1000, commandTimeout: 2000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await client.call(args[0]!, ...args.slice(1));
  } finally {
    client.disconnect();
  }
}

/** The port every sentinel names as the primary, once they agree. */
async function agreedPrimary(): Promise<number | undefined> {
  const named = await Promise.all(sentinels.map((s) => ask(s.port, 'SENTINEL', 'get-master-addr-by-name', MASTER).catch(() => null)));
  const ports = new Set(named.map((n) => (Array.isArray(n) ? Number(n[1]) : NaN)));
  if (ports.size !== 1) return undefined;
  const [port] = [...ports];
  return Number.isNaN(port) ? undefined : port;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-sentinel-'));
  primary = await startRedis({ dir: path.join(dir, 'primary') });
  replica = await startRedis({ dir: path.join(dir, 'replica') });
  await ask(replica.port, 'REPLICAOF', '127.0.0.1', String(primary.port));
  await eventually(async () => (/master_link_status:up/.test(String(await ask(replica.port, 'INFO', 'replication').catch(() => ''))) ? true : undefined), 30_000, 'the replica to sync');
  for (let i = 0; i < 3; i++) {
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
        `sentinel monitor ${MASTER} 127.0.0.1 ${primary.port} 2`,
        `sentinel down-after-milliseconds ${MASTER} 1000`,
        `sentinel failover-timeout ${MASTER} 4000`,
        `sentinel parallel-syncs ${MASTER} 1`,
        '',
      ].join('\n'),
    );
    sentinels.push({ port, child: spawnSentinel(conf) });
  }
  // Every sentinel knows the primary, its replica and the two other sentinels.
  await eventually(async () => {
    for (const s of sentinels) {
      const master = (await ask(s.port, 'SENTINEL', 'master', MASTER).catch(() => [])) as string[];
      const field = (k: string): number => Number(master[master.indexOf(k) + 1] ?? '0');
      if (field('num-slaves') < 1 || field('num-other-sentinels') < 2) return undefined;
    }
    return true;
  }, 60_000, 'the sentinels to find each other and the replica');

  lab = await labUp({ nodes: 3, dir: path.join(dir, 'lab'), dieWithParent: true });
  await mkdir(path.join(dir, 'files'), { recursive: true });
  configFile = path.join(dir, 'castellan.yaml');
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
      // The failover test submits faster than one worker drains at low load: the default 16
      // jobs in flight per person refused submissions ("you already have 16 jobs…"), and the
      // per-minute rate would next; neither is what it is about.
      limits: { jobs_per_requester: 200, rate: { per_minute: 6000, burst: 500 } },
    }),
  );
  const config = await loadConfig(configFile);
  const logger = createLogger({ level: 'warn', redactor: new Redactor(config.secrets.values()) });
  runtime = await createRuntime(config, { mode: 'server', logger, jobSettings: { submitGraceMs: 3000, reconcileEveryMs: 1000 } });
  worker = await startCastellanProcess(['--config', configFile, 'worker'], { ready: /worker .* started/ });
}, 180_000);

afterAll(async () => {
  await worker?.stop();
  await runtime?.close();
  await lab?.down();
  for (const s of sentinels) s.child.kill('SIGKILL');
  await replica?.stop();
  await primary?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const lines = async (file: string): Promise<string[]> => (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean);

/** Retries through the seconds of a failover, when the front connection answers `unavailable`. */
async function retrying<T>(work: () => Promise<T>, what: string, attempts = 120): Promise<T> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      return await work();
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new Error(`${what}: ${String(last)}`);
}

/** The primary now, once its replica is in sync and every sentinel knows that replica. */
async function settledPrimary(): Promise<{ current: PrivateRedis; other: PrivateRedis }> {
  const port = await eventually(agreedPrimary, 60_000, 'the sentinels to agree on the primary');
  const [current, other] = port === primary.port ? [primary, replica] : [replica, primary];
  await eventually(async () => (/master_link_status:up/.test(String(await ask(other.port, 'INFO', 'replication').catch(() => ''))) ? true : undefined), 60_000, 'the replica to be in sync');
  await eventually(async () => {
    for (const s of sentinels) {
      const master = (await ask(s.port, 'SENTINEL', 'master', MASTER).catch(() => [])) as string[];
      if (Number(master[master.indexOf('num-slaves') + 1] ?? '0') < 1) return undefined;
    }
    return true;
  }, 60_000, 'the sentinels to know the replica');
  return { current, other };
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('Sentinel failover', () => {
  it('Castellan finds the primary through the sentinels and reports the topology', async () => {
    const topology = await redisTopology(runtime.redis, runtime.config.redis);
    expect(topology).toMatchObject({ mode: 'sentinel', role: 'master', connectedTo: `127.0.0.1:${primary.port}`, replicas: 1, problems: [] });
    expect(topology.sentinel?.sentinels.filter((s) => s.reachable)).toHaveLength(3);
  });

  it('a failover forced during submissions: every confirmed job ends correctly, none ran twice, refusals said unavailable and never ran', async () => {
    const tag = `castellan-submit-${randomBytes(4).toString('hex')}`;
    const { current, other } = await settledPrimary();
    const nodes = ['node01', 'node02', 'node03'];
    const confirmed: Array<{ id: string; file: string; afterSwitch: boolean; approvedAt: number }> = [];
    const refused: Array<{ file: string; error: string; at: number }> = [];
    let switchedAt: number | undefined;
    let failoverAsked = false;
    let askedAt = 0;
    const deadline = Date.now() + 75_000;
    // Submissions one after the other; SENTINEL FAILOVER after the 4th confirmed one; on until
    // 4 are confirmed after the sentinels name the new primary.
    for (let i = 0; Date.now() < deadline; i++) {
      if (switchedAt === undefined && failoverAsked && (await agreedPrimary().catch(() => undefined)) === other.port) switchedAt = Date.now();
      if (confirmed.filter((c) => c.afterSwitch).length >= 4) break;
      const file = `/tmp/${tag}-${i}.log`;
      const afterSwitch = switchedAt !== undefined;
      let id: string;
      try {
        const { job } = await runtime.service.submit({ tool: 'exec', input: { targets: nodes[i % 3]!, command: `echo ran >> ${file}; sleep 1 # ${tag}` }, requester: oscar, replyTo: { kind: 'cli' } });
        id = job.id;
      } catch (err) {
        refused.push({ file, error: String(err), at: Date.now() });
        // A refusal comes back at once while Redis is away: pause, so this loop never starves
        // the event loop (ioredis's reconnect timer must get its turn).
        await pause(100);
        continue;
      }
      const entry = { id, file, afterSwitch, approvedAt: 0 };
      confirmed.push(entry);
      // Approve at once; an approval refused as unconfirmed is given again until it holds.
      for (let a = 0; ; a++) {
        try {
          await runtime.service.approve(id, april);
          entry.approvedAt = Date.now();
          break;
        } catch (err) {
          const state = await runtime.service.get(id, oscar).then((r) => r.state).catch(() => undefined);
          if (state !== undefined && state !== 'awaiting_approval') break;
          if (a > 300) throw new Error(`approval of ${id} never confirmed`, { cause: err });
          await pause(200);
        }
      }
      if (!failoverAsked && confirmed.length >= 4) {
        failoverAsked = true;
        askedAt = Date.now();
        expect(await ask(sentinels[0]!.port, 'SENTINEL', 'FAILOVER', MASTER)).toBe('OK');
      }
    }
    expect(switchedAt, 'the sentinels named the new primary').toBeDefined();
    expect(confirmed.filter((c) => c.afterSwitch).length, `confirmed after the switch (refused: ${refused.length})`).toBeGreaterThanOrEqual(4);

    const finals = [];
    for (const c of confirmed) {
      const final = await retrying(async () => {
        const record = await runtime.service.get(c.id, oscar);
        if (!isFinal(record.state)) throw new Error(`still ${record.state}`);
        return record;
      }, `${c.id} to end`, 480).catch(async (err: unknown) => {
        // For whoever reads the failure: the record as it stands and what the worker said about it.
        const record = await runtime.ctx.store.get(c.id).catch(() => undefined);
        const about = worker.stderr().split('\n').filter((l) => l.includes(c.id));
        console.log(`${c.id} did not end: ${JSON.stringify({ state: record?.state, worker: record?.worker, reason: record?.reason })}\nworker lines about it:\n${about.join('\n')}\nworker's last lines:\n${worker.stderr().split('\n').slice(-40).join('\n')}`);
        throw err;
      });
      finals.push({ ...c, state: final.state, reason: final.reason ?? '', startedAt: final.startedAt === undefined ? undefined : Date.parse(final.startedAt) });
    }
    // How long the failover kept work away (printed for bench/failover.ts; timing goals live in
    // bench/, not in assertions): until submissions were taken again, and until a job approved
    // after the switch started on a worker (BullMQ's fetch retry, runRetryDelay, is in this).
    const afterSwitch = finals.filter((f) => f.afterSwitch && f.startedAt !== undefined && f.approvedAt > 0);
    const firstAfter = afterSwitch.sort((a, b) => a.approvedAt - b.approvedAt)[0];
    const lastRefusedAt = refused.length > 0 ? Math.max(...refused.map((r) => r.at)) : undefined;
    console.log(`failover timing: ${JSON.stringify({
      switchMs: (switchedAt ?? askedAt) - askedAt,
      refused: refused.length,
      refusedForMs: lastRefusedAt === undefined ? 0 : lastRefusedAt - Math.min(...refused.map((r) => r.at)),
      firstStartAfterFailoverMs: firstAfter?.startedAt === undefined ? null : firstAfter.startedAt - askedAt,
      approvedToStartAfterSwitchMs: firstAfter?.startedAt === undefined ? null : firstAfter.startedAt - firstAfter.approvedAt,
    })}`);
    // Refused submissions never run: whatever might still start them has had time to.
    await pause(3000);
    const counted = [];
    for (const f of finals) counted.push({ ...f, runs: (await lines(f.file)).length });
    const said = worker.stderr().split('\n').filter((l) => /claim|ending|ledger finish|job lock|redelivered/.test(l)).map((l) => /"msg":"([^"]*)"/.exec(l)?.[1] ?? l);
    console.log(
      `failover during submissions: ${confirmed.length} confirmed (${confirmed.filter((c) => c.afterSwitch).length} after the switch), ${refused.length} refused\n` +
        `${counted.map((f) => `${f.id} ${f.state} ran ${f.runs}: ${f.reason}`).join('\n')}\nworker lines about claims, endings, checkpoints, lost locks and redeliveries:\n${said.join('\n')}`,
    );
    for (const f of counted) {
      const { runs } = f;
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
      expect(await lines(r.file), `refused submission ${r.file} never ran`).toEqual([]);
    }
    expect(current.port).not.toBe(await agreedPrimary());
  }, 240_000);

  it('a run that loses its BullMQ job lock goes on when its claims are confirmed: it ends succeeded, having run once', async () => {
    const tag = `castellan-lock-${randomBytes(4).toString('hex')}`;
    const current = await agreedPrimary();
    // A replica in sync (the test before failed the primary over): claims can be confirmed.
    await eventually(async () => {
      const other = current === primary.port ? replica.port : primary.port;
      return /master_link_status:up/.test(String(await ask(other, 'INFO', 'replication').catch(() => ''))) ? true : undefined;
    }, 60_000, 'the replica to be in sync');
    const file = `/tmp/${tag}.log`;
    // Longer than BullMQ's lock renewal period (lock_duration 30 s: renewed every 7.5-15 s).
    const { job } = await runtime.service.submit({ tool: 'exec', input: { targets: 'node02', command: `echo ran >> ${file}; sleep 20 # ${tag}` }, requester: oscar, replyTo: { kind: 'cli' } });
    await retrying(() => runtime.service.approve(job.id, april), 'the approval');
    await eventually(async () => ((await lines(file)).length === 1 ? true : undefined), 30_000, 'the job to run');
    // The job lock gone, as a failover can lose it: BullMQ's next renewal fails.
    await runtime.ctx.redis.del(`${runtime.ctx.queue.toKey(job.id)}:lock`);
    const final = await runtime.service.wait(job.id, oscar, 90_000);
    expect(final.state, final.reason ?? '').toBe('succeeded');
    expect(await lines(file)).toEqual(['ran']);
    expect(worker.stderr().split('\n').filter((l) => l.includes(job.id) && l.includes('lost the BullMQ job lock; the run goes on'))).not.toEqual([]);
  }, 120_000);

  it('a primary killed during running jobs: they finish succeeded, once per host, with a complete audit', async () => {
    const tag = `castellan-sentinel-${randomBytes(4).toString('hex')}`;
    const jobs = [];
    for (const node of ['node01', 'node02', 'node03']) {
      const file = `/tmp/${tag}-${node}.log`;
      const { job } = await runtime.service.submit({ tool: 'exec', input: { targets: node, command: `echo ran >> ${file}; sleep 6 # ${tag}` }, requester: oscar, replyTo: { kind: 'cli' } });
      await runtime.service.approve(job.id, april);
      jobs.push({ id: job.id, file });
    }
    for (const j of jobs) await eventually(async () => ((await lines(j.file)).length === 1 ? true : undefined), 30_000, `${j.id} to run`);

    // The primary now (the test before failed it over once), with its replica in sync, so a
    // failover has somewhere to go.
    const current = await agreedPrimary();
    await eventually(async () => {
      const other = current === primary.port ? replica.port : primary.port;
      return /master_link_status:up/.test(String(await ask(other, 'INFO', 'replication').catch(() => ''))) ? true : undefined;
    }, 60_000, 'the replica to be in sync');
    await eventually(async () => {
      for (const s of sentinels) {
        const master = (await ask(s.port, 'SENTINEL', 'master', MASTER).catch(() => [])) as string[];
        if (Number(master[master.indexOf('num-slaves') + 1] ?? '0') < 1) return undefined;
      }
      return true;
    }, 60_000, 'the sentinels to know the replica');
    const [victim, survivor] = current === primary.port ? [primary, replica] : [replica, primary];
    expect(victim.port).toBe(current);
    const killedAt = Date.now();
    await victim.kill();
    await eventually(async () => ((await agreedPrimary()) === survivor.port ? true : undefined), 60_000, 'the sentinels to promote the replica');

    for (const j of jobs) {
      const final = await retrying(async () => {
        const record = await runtime.service.get(j.id, oscar);
        if (record.state === 'running' || record.state === 'queued') throw new Error(`still ${record.state}`);
        return record;
      }, `${j.id} to end`);
      if (final.state !== 'succeeded') console.log(`${j.id} did not succeed; killed at ${new Date(killedAt).toISOString()}; the worker said:\n${worker.stderr().split('\n').slice(-60).join('\n')}`);
      expect(final.state, `${j.id}: ${final.reason ?? ''}`).toBe('succeeded');
      expect(await lines(j.file)).toEqual(['ran']);
      // The outcome record is written right after the state: wait for it, do not race it.
      const kinds = await retrying(async () => {
        const found = (await runtime.ctx.audit.read({ jobId: j.id })).map((a) => a.kind).sort();
        if (found.length < 4) throw new Error(`audit so far: ${found.join(', ')}`);
        return found;
      }, `${j.id} audit`, 40);
      expect(kinds).toEqual(['decision', 'execution', 'outcome', 'request']);
    }
    const topology = await retrying(() => redisTopology(runtime.redis, runtime.config.redis), 'topology');
    expect(topology.connectedTo).toBe(`127.0.0.1:${survivor.port}`);
    expect(topology.role).toBe('master');
  }, 240_000);
});

describe('Sentinels that require a password', () => {
  it('are reached with redis.sentinel_password_env; without it the error says where Castellan looked', async () => {
    const password = `sentinel-${randomBytes(8).toString('hex')}`;
    const own = await startRedis({ dir: path.join(dir, 'auth-primary') });
    const port = await findFreePort();
    const conf = path.join(dir, 'sentinel-auth.conf');
    await mkdir(path.join(dir, 'sentinel-auth'), { recursive: true });
    await writeFile(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        'daemonize no',
        `dir ${path.join(dir, 'sentinel-auth')}`,
        `logfile ${path.join(dir, 'sentinel-auth.log')}`,
        `requirepass ${password}`,
        'sentinel announce-ip 127.0.0.1',
        `sentinel monitor guarded 127.0.0.1 ${own.port} 1`,
        '',
      ].join('\n'),
    );
    const child = spawnSentinel(conf);
    try {
      // The sentinel answers with the password, and refuses commands without it.
      await eventually(async () => (Array.isArray(await askAs(port, password, 'SENTINEL', 'get-master-addr-by-name', 'guarded').catch(() => null)) ? true : undefined), 30_000, 'the sentinel to monitor the primary');
      expect(String(await ask(port, 'SENTINEL', 'masters').catch((err: unknown) => String(err)))).toMatch(/NOAUTH/);
      const file = path.join(dir, 'castellan-auth.yaml');
      await writeFile(file, stringify({ inventory: lab.inventoryFile, known_hosts: lab.knownHostsFile, redis: { sentinels: [`127.0.0.1:${port}`], name: 'guarded', sentinel_password_env: 'TEST_SENTINEL_PASSWORD' } }));
      const logger = createLogger({ level: 'silent', redactor: new Redactor([password]) });
      const withPassword = await loadConfig(file, { env: { ...process.env, TEST_SENTINEL_PASSWORD: password } });
      const redis = await connectRedis(withPassword, 'client', logger);
      try {
        expect(await redis.ping()).toBe('PONG');
        const topology = await redisTopology(redis, withPassword.redis, withPassword.secrets.redisSentinelPassword);
        expect(topology.connectedTo).toBe(`127.0.0.1:${own.port}`);
        expect(topology.sentinel?.sentinels).toMatchObject([{ reachable: true, primary: `127.0.0.1:${own.port}` }]);
      } finally {
        closeRedis(redis);
      }
      const wrong = await loadConfig(file, { env: { ...process.env, TEST_SENTINEL_PASSWORD: 'not-it' } });
      const refused = await connectRedis(wrong, 'client', logger).then(
        (r) => {
          closeRedis(r);
          return 'connected';
        },
        (err: unknown) => String(err),
      );
      expect(refused).toMatch(/unavailable: cannot reach Redis at Sentinel master 'guarded' via 127\.0\.0\.1:\d+/);
      expect(refused).not.toContain('not-it');
      expect(refused).not.toContain(password);
    } finally {
      child.kill('SIGKILL');
      await own.stop();
    }
  }, 90_000);
});
