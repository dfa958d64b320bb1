// Redis that fails over, with Debian's redis-sentinel: a primary, a replica and three
// sentinels on loopback, Castellan configured with `redis.sentinels` + `redis.name`, a
// separate `castellan worker` process and real sshd nodes.
//  - (A failover forced DURING SUBMISSIONS is not here yet: with submissions confirmed only
//    after Redis WAIT, queues/replication.ts, a confirmed job is no longer lost, but a job that
//    a worker ran on the old primary can run again on the new one — see the issue notes.)
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
import { redisTopology } from '../../src/redis.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
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
  const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1000, commandTimeout: 2000 });
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
      redis: { sentinels: sentinels.map((s) => `127.0.0.1:${s.port}`), name: MASTER, prefix: 'castellan' },
      server: { listen: '127.0.0.1:0', public_url: 'http://127.0.0.1:8080' },
      auth: { roles: ROLE_MAP, local_identity: { subject: 'local-admin', display_name: 'Local admin', groups: ['admins'] } },
      policy: { approvals: { required: 1, allow_self_approval: false, expiry: '15m' } },
      jobs: { files_root: path.join(dir, 'files') },
      audit: { file: path.join(dir, 'audit.jsonl') },
      log: { level: 'info' },
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

describe('Sentinel failover', () => {
  it('Castellan finds the primary through the sentinels and reports the topology', async () => {
    const topology = await redisTopology(runtime.redis, runtime.config.redis);
    expect(topology).toMatchObject({ mode: 'sentinel', role: 'master', connectedTo: `127.0.0.1:${primary.port}`, replicas: 1, problems: [] });
    expect(topology.sentinel?.sentinels.filter((s) => s.reachable)).toHaveLength(3);
  });

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
    await victim.kill();
    await eventually(async () => ((await agreedPrimary()) === survivor.port ? true : undefined), 60_000, 'the sentinels to promote the replica');

    for (const j of jobs) {
      const final = await retrying(async () => {
        const record = await runtime.service.get(j.id, oscar);
        if (record.state === 'running' || record.state === 'queued') throw new Error(`still ${record.state}`);
        return record;
      }, `${j.id} to end`);
      expect(final.state, `${j.id}: ${final.reason ?? ''}`).toBe('succeeded');
      expect(await lines(j.file)).toEqual(['ran']);
      const audit = await runtime.ctx.audit.read({ jobId: j.id });
      expect(audit.map((a) => a.kind).sort()).toEqual(['decision', 'execution', 'outcome', 'request']);
    }
    const topology = await retrying(() => redisTopology(runtime.redis, runtime.config.redis), 'topology');
    expect(topology.connectedTo).toBe(`127.0.0.1:${survivor.port}`);
    expect(topology.role).toBe('master');
  }, 240_000);
});
