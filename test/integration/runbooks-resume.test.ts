// A rolling upgrade whose worker is SIGKILLed mid-roll resumes under a new worker from the
// execution ledger: the finished node is not rebooted again, the roll completes.
import { afterAll, describe, expect, it } from 'vitest';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import type { NodeReport } from '../../tools/upgrade-plan.js';
import type { LabWorld } from '../fixtures/node-programs/lab-world.js';
import { useCastellan } from '../support/castellan.js';
import { GREEN_ROLL_LAB, shapeRack, startGreenRoll, type Rack } from './runbook-lab.js';

const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const person = (subject: string, groups: string[]): Requester => ({ subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin: 'cli' });

let rack: Rack;
let world: LabWorld;
const c = useCastellan({
  ...GREEN_ROLL_LAB,
  prepare: async (lab) => {
    rack = await shapeRack(lab, { green: ['node02', 'node03', 'node04'] });
    world = rack.world;
  },
});
afterAll(async () => {
  await rack?.stop();
});

describe('resuming a rolling upgrade after a worker crash', () => {
  it('never reboots a finished node twice', async () => {
    const oscar = person('oscar', ['ops']);
    const april = person('april', ['leads']);
    const { jobId, worker } = await startGreenRoll(c, { requester: oscar, approver: april }, 'pre-upgrade-20261129-063000');
    const job = { id: jobId };

    // Kill the worker once node02 is done and node03's reboot is recorded as sent: the
    // worker dies while it waits for node03 to come back.
    const rebootSent = async (): Promise<boolean> => (await c.runtime.ctx.ledger.entries(job.id)).some((e) => e.step === 'reboot-b2' && e.host === 'node03' && e.finishedAt !== undefined);
    for (let i = 0; i < 900 && !(await rebootSent()); i++) await new Promise((r) => setTimeout(r, 100));
    expect(world.node('node02').rebootLog).toHaveLength(1);
    expect(world.node('node03').rebootLog).toHaveLength(1);
    await worker.kill('SIGKILL');

    await c.runtime.startWorker();
    const done = await c.runtime.service.wait(job.id, oscar, 240_000);
    expect(done.state, `${done.reason ?? ''} ${JSON.stringify(done.result?.data)}`).toBe('succeeded');
    const nodes = new Map((done.result?.data as { nodes: NodeReport[] }).nodes.map((n) => [n.node, n]));
    for (const name of ['node02', 'node03', 'node04']) {
      // Exactly one reboot each, although node02's and node03's steps were dispatched by the dead worker.
      expect(world.node(name).rebootLog).toHaveLength(1);
      expect(nodes.get(name)).toMatchObject({ outcome: 'upgraded', old_version: '12.7', new_version: '12.8' });
    }
    const ledger = await c.runtime.ctx.ledger.entries(job.id);
    const reboots = ledger.filter((e) => e.step.startsWith('reboot-'));
    expect(reboots.map((e) => e.host).sort()).toEqual(['node02', 'node03', 'node04']);
    expect(ledger.every((e) => e.finishedAt !== undefined)).toBe(true);
  }, 300_000);
});
