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
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadConfig } from '../../config/load.js';
import { findFreePort } from '../../src/lab/net.js';
import { startRedis, type PrivateRedis } from '../../src/lab/redis.js';
import type { Lab } from '../../src/lab/sshd-lab.js';
import { createLogger } from '../../src/log.js';
import { Redactor } from '../../queues/redact.js';
import { connectRedis, closeRedis, redisTopology } from '../../src/redis.js';
import type { Runtime } from '../../src/runtime.js';
import type { CastellanProcess } from '../support/castellan-process.js';
import {
  agreedPrimary,
  ask,
  askAs,
  endings,
  expectRanOnceAndAudited,
  fileLines,
  isRefused,
  printFailoverTiming,
  replicaInSync,
  retrying,
  sentinelsKnow,
  spawnSentinel,
  submitApproved,
  type Confirmed,
  type Refused,
  type FailoverSite,
  type Sentinel,
  april,
  MASTER,
  oscar,
  startFailoverSite,
} from '../support/sentinel.js';
import { eventually } from './mcp-harness.js';

let dir: string;
let primary: PrivateRedis;
let replica: PrivateRedis;
let sentinels: Sentinel[] = [];
let lab: Lab;
let runtime: Runtime;
let worker: CastellanProcess;

const agreed = (): Promise<number | undefined> => agreedPrimary(sentinels, MASTER);

let site: FailoverSite;

beforeAll(async () => {
  site = await startFailoverSite({ replicas: 1, nodes: 3 });
  ({ dir, sentinels, lab, runtime, worker } = site);
  [primary, replica] = site.servers as [PrivateRedis, PrivateRedis];
}, 180_000);

afterAll(async () => {
  await site?.down();
});

/** The primary now, once its replica is in sync and every sentinel knows that replica. */
async function settledPrimary(): Promise<{ current: PrivateRedis; other: PrivateRedis }> {
  const port = await eventually(agreed, 60_000, 'the sentinels to agree on the primary');
  const [current, other] = port === primary.port ? [primary, replica] : [replica, primary];
  await replicaInSync(other.port);
  await sentinelsKnow(sentinels, MASTER, { replicas: 1 });
  return { current, other };
}

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
    const confirmed: Confirmed[] = [];
    const refused: Refused[] = [];
    let switchedAt: number | undefined;
    let failoverAsked = false;
    let askedAt = 0;
    const deadline = Date.now() + 75_000;
    // Submissions one after the other; SENTINEL FAILOVER after the 4th confirmed one; on until
    // 4 are confirmed after the sentinels name the new primary.
    for (let i = 0; Date.now() < deadline; i++) {
      if (switchedAt === undefined && failoverAsked && (await agreed().catch(() => undefined)) === other.port) switchedAt = Date.now();
      if (confirmed.filter((c) => c.afterSwitch).length >= 4) break;
      const made = await submitApproved(runtime, { requester: oscar, approver: april }, nodes[i % 3]!, `/tmp/${tag}-${i}.log`, tag, switchedAt !== undefined);
      if (isRefused(made)) {
        refused.push(made);
        continue;
      }
      confirmed.push(made);
      if (!failoverAsked && confirmed.length >= 4) {
        failoverAsked = true;
        askedAt = Date.now();
        expect(await ask(sentinels[0]!.port, 'SENTINEL', 'FAILOVER', MASTER)).toBe('OK');
      }
    }
    expect(switchedAt, 'the sentinels named the new primary').toBeDefined();
    expect(confirmed.filter((c) => c.afterSwitch).length, `confirmed after the switch (refused: ${refused.length})`).toBeGreaterThanOrEqual(4);

    const ended = await endings(runtime, oscar, confirmed, worker);
    printFailoverTiming(askedAt, switchedAt, ended, refused);
    const said = worker.stderr().split('\n').filter((l) => /claim|ending|ledger finish|job lock|redelivered/.test(l)).map((l) => /"msg":"([^"]*)"/.exec(l)?.[1] ?? l);
    console.log(
      `failover during submissions: ${confirmed.length} confirmed (${confirmed.filter((c) => c.afterSwitch).length} after the switch), ${refused.length} refused\n` +
        `${ended.map((f) => `${f.id} ${f.state}: ${f.reason}`).join('\n')}\nworker lines about claims, endings, checkpoints, lost locks and redeliveries:\n${said.join('\n')}`,
    );
    await expectRanOnceAndAudited(runtime, ended, refused);
    expect(current.port).not.toBe(await agreed());
  }, 240_000);

  it('a run that loses its BullMQ job lock goes on when its claims are confirmed: it ends succeeded, having run once', async () => {
    const tag = `castellan-lock-${randomBytes(4).toString('hex')}`;
    const current = await agreed();
    // A replica in sync (the test before failed the primary over): claims can be confirmed.
    await replicaInSync(current === primary.port ? replica.port : primary.port);
    const file = `/tmp/${tag}.log`;
    // Longer than BullMQ's lock renewal period (lock_duration 30 s: renewed every 7.5-15 s).
    const { job } = await runtime.service.submit({ tool: 'exec', input: { targets: 'node02', command: `echo ran >> ${file}; sleep 20 # ${tag}` }, requester: oscar, replyTo: { kind: 'cli' } });
    await retrying(() => runtime.service.approve(job.id, april), 'the approval');
    await eventually(async () => ((await fileLines(file)).length === 1 ? true : undefined), 30_000, 'the job to run');
    // The job lock gone, as a failover can lose it: BullMQ's next renewal fails.
    await runtime.ctx.redis.del(`${runtime.ctx.queue.toKey(job.id)}:lock`);
    const final = await runtime.service.wait(job.id, oscar, 90_000);
    expect(final.state, final.reason ?? '').toBe('succeeded');
    expect(await fileLines(file)).toEqual(['ran']);
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
    for (const j of jobs) await eventually(async () => ((await fileLines(j.file)).length === 1 ? true : undefined), 30_000, `${j.id} to run`);

    // The primary now (the test before failed it over once), with its replica in sync, so a
    // failover has somewhere to go.
    const current = await agreed();
    await replicaInSync(current === primary.port ? replica.port : primary.port);
    await sentinelsKnow(sentinels, MASTER, { replicas: 1 });
    const [victim, survivor] = current === primary.port ? [primary, replica] : [replica, primary];
    expect(victim.port).toBe(current);
    const killedAt = Date.now();
    await victim.kill();
    await eventually(async () => ((await agreed()) === survivor.port ? true : undefined), 60_000, 'the sentinels to promote the replica');

    for (const j of jobs) {
      const final = await retrying(async () => {
        const record = await runtime.service.get(j.id, oscar);
        if (record.state === 'running' || record.state === 'queued') throw new Error(`still ${record.state}`);
        return record;
      }, `${j.id} to end`);
      if (final.state !== 'succeeded') console.log(`${j.id} did not succeed; killed at ${new Date(killedAt).toISOString()}; the worker said:\n${worker.stderr().split('\n').slice(-60).join('\n')}`);
      expect(final.state, `${j.id}: ${final.reason ?? ''}`).toBe('succeeded');
      expect(await fileLines(j.file)).toEqual(['ran']);
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
