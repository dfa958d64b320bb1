// Faults in the middle of a rolling restart (service_restart, batches of one), against a
// separate `castellan worker` process and real sshd nodes. Counted on the nodes: the fake
// `systemctl` on each node's PATH appends a line per run (node, CASTELLAN_RUN), so a host that
// ran twice, or ran at all when it should not have, shows.
//  - The worker is SIGKILLed mid-batch: the job ends `interrupted` naming the host whose outcome
//    is unknown; finished batches are not run again, later batches never start, the remote
//    command does not outlive the worker, the next worker runs nothing of it.
//  - A node's host key changes mid-roll (reinstalled, or another machine took its address):
//    Castellan refuses that node — never connects, never pins the new key by itself — and the
//    rest of the roll follows the failure budget (0: later batches skipped; 1: they run).
// (Spawns dist/: run `npx tsc -p tsconfig.build.json` first.)
import { randomBytes } from 'node:crypto';
import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { nodeBinDir } from '../../src/lab/sshd-lab.js';
import { useCastellan } from '../support/castellan.js';
import { startWorkerProcess, type WorkerProcess } from '../support/castellan-process.js';
import { pgrepFull } from '../support/processes.js';
import { eventually } from './mcp-harness.js';

const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const person = (subject: string, groups: string[]): Requester => ({ subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin: 'cli' });
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);

const tag = `castellan-hostkey-${randomBytes(4).toString('hex')}`;
const marker = `/tmp/${tag}.log`;
const hold = `${marker}.hold`;
// Each node's systemctl: one line per run (node, its CASTELLAN_RUN, argv), then a short restart
// named by the tag (a leftover shows in the process table). node02's lasts while the test holds
// it, so the test can act while batch 2 runs.
const SYSTEMCTL = `#!/bin/sh
node=$(basename "$(dirname "$(dirname "$0")")")
echo "$node $CASTELLAN_RUN $*" >> ${marker}
if [ "$node" = node02 ]; then exec sh -c 'while [ -e ${hold} ]; do sleep 0.2; done; sleep 1' ${tag}; fi
exec sh -c 'sleep 1' ${tag}
`;

const c = useCastellan({
  nodes: 4,
  worker: false,
  lab: { nodeBinDirs: true },
  prepare: async (lab) => {
    for (const node of lab.nodes) {
      const file = path.join(nodeBinDir(lab.dir, node.name), 'systemctl');
      await writeFile(file, SYSTEMCTL);
      await chmod(file, 0o755);
    }
  },
});

let worker: WorkerProcess | undefined;
beforeAll(async () => {
  worker = await startWorkerProcess(c.configFile);
}, 180_000);
afterAll(async () => {
  await worker?.stop();
  await rm(marker, { force: true });
  await rm(hold, { force: true });
});

const runs = async (): Promise<string[]> => (await readFile(marker, 'utf8').catch(() => '')).split('\n').filter(Boolean);
const runsOf = async (jobId: string): Promise<string[]> => (await runs()).filter((l) => l.split(' ')[1]?.startsWith(`${jobId}.`)).map((l) => l.split(' ')[0]!).sort();

describe('worker SIGKILL mid-batch', () => {
  it('the job ends interrupted naming the batch host; no batch runs twice, later batches never start, nothing is left', async () => {
    await writeFile(hold, '');
    const { job } = await c.runtime.service.submit({ tool: 'service_restart', input: { targets: 'node[01-04]', unit: 'nginx', batch_size: 1 }, requester: oscar, replyTo: { kind: 'cli' } });
    if (job.state === 'awaiting_approval') await c.runtime.service.approve(job.id, april);
    await eventually(async () => ((await runsOf(job.id)).includes('node02') ? true : undefined), 60_000, 'batch 2 (node02) to run');
    const killed = worker!;
    await killed.kill('SIGKILL');
    // The remote command dies with the worker's connection (the lifeline), even though it holds on.
    await eventually(async () => (pgrepFull(tag) === '' ? true : undefined), 30_000, "node02's command to be gone");
    worker = await startWorkerProcess(c.configFile);
    await rm(hold, { force: true });

    const final = await c.runtime.service.wait(job.id, oscar, 120_000);
    expect(final.state).toBe('interrupted');
    expect(final.reason).toMatch(new RegExp(`the worker running this job \\(${killed.id}\\) (is gone|stopped before it finished); outcome unknown on: node02\\.`));
    expect([...(final.result?.unknownHosts ?? [])]).toEqual(['node02']);
    // node01 once, node02 once (never again), node03 and node04 never.
    expect(await runsOf(job.id)).toEqual(['node01', 'node02']);
    const ledger = await c.runtime.ctx.ledger.entries(job.id);
    expect(ledger.map((e) => `${e.host}:${e.attempt}:${e.finishedAt !== undefined}`).sort()).toEqual(['node01:0:true', 'node02:0:false']);
    const audit = await c.runtime.ctx.audit.read({ jobId: job.id });
    expect(audit.filter((a) => a.kind === 'execution').map((a) => `${a.host}:${a.status}`)).toEqual(['node01:ok']);
    expect(audit.filter((a) => a.kind === 'outcome').map((a) => a.state)).toEqual(['interrupted']);
  }, 300_000);
});

describe('a host key that changes mid-roll', () => {
  it('is refused; with a failure budget of 0 the rest of the roll is skipped, with 1 it goes on', async () => {
    await writeFile(hold, '');
    const { job } = await c.runtime.service.submit({ tool: 'service_restart', input: { targets: 'node[01-04]', unit: 'nginx', batch_size: 1 }, requester: oscar, replyTo: { kind: 'cli' } });
    if (job.state === 'awaiting_approval') await c.runtime.service.approve(job.id, april);
    // Batch 2 (node02) runs: now node03's key changes, before its batch connects.
    await eventually(async () => ((await runsOf(job.id)).includes('node02') ? true : undefined), 60_000, 'node02 to restart');
    await c.lab.rotateHostKey('node03');
    await rm(hold, { force: true });

    const final = await c.runtime.service.wait(job.id, oscar, 120_000);
    expect(final.result?.hosts.map((h) => `${h.host}:${h.status}`)).toEqual(['node01:ok', 'node02:ok', 'node03:host_key_rejected', 'node04:skipped']);
    expect(final.state).toBe('partially_failed');
    const node03 = final.result!.hosts.find((h) => h.host === 'node03')!;
    expect(node03.error).toMatch(/SHA256:\S+.*SHA256:\S+/);
    // Refused, never connected: node03 ran nothing; nobody ran twice; node04 was never touched.
    expect(await runsOf(job.id)).toEqual(['node01', 'node02']);
    // The new key was not pinned: the known_hosts file still names the old one.
    const again = await c.cli(['ping', 'node03']);
    expect(again.stderr).toMatch(/node03: host key rejected/);

    const audit = await c.runtime.ctx.audit.read({ jobId: job.id });
    expect(audit.filter((a) => a.kind === 'execution').map((a) => `${a.host}:${a.status}`).sort()).toEqual(['node01:ok', 'node02:ok', 'node03:host_key_rejected']);
    expect(audit.filter((a) => a.kind === 'outcome').map((a) => a.state)).toEqual(['partially_failed']);

    // The same roll with a budget of 1: node03 is refused again, node04 still restarts.
    const tolerant = await c.runtime.service.submit({ tool: 'service_restart', input: { targets: 'node[01-04]', unit: 'nginx', batch_size: 1, failure_budget: 1 }, requester: oscar, replyTo: { kind: 'cli' } });
    if (tolerant.job.state === 'awaiting_approval') await c.runtime.service.approve(tolerant.job.id, april);
    const done = await c.runtime.service.wait(tolerant.job.id, oscar, 120_000);
    expect(done.result?.hosts.map((h) => `${h.host}:${h.status}`)).toEqual(['node01:ok', 'node02:ok', 'node03:host_key_rejected', 'node04:ok']);
    expect(await runsOf(tolerant.job.id)).toEqual(['node01', 'node02', 'node04']);
    await eventually(async () => (pgrepFull(tag) === '' ? true : undefined), 30_000, 'nothing of the rolls left');
  }, 300_000);
});
