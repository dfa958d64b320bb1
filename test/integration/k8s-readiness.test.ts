// k8s_nodes as the readiness gate orchestrations wait on, against the lab's kubectl stand-in
// (recorded kubectl output over real SSH): Ready and why not, cordoned, pods a drain still has
// to evict; gates on node_drained and node_ready through the real runner.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { k8sNodes } from '../../tools/k8s-nodes.js';
import { execStep } from '../../tools/planning.js';
import { validatedOrThrow } from '../../tools/registry.js';
import { gateStep } from '../../tools/steps/index.js';
import type { Plan } from '../../tools/types.js';
import { rolesForGroups } from '../../auth/roles.js';
import { startLabWorld, type LabWorld } from '../fixtures/node-programs/lab-world.js';
import { useCastellan } from '../support/castellan.js';
import { planContextOf, planJobId, runPlanOn } from '../support/run-plan.js';

const c = useCastellan({ nodes: 3, lab: { nodeBinDirs: true } });
let world: LabWorld;
beforeAll(async () => {
  world = await startLabWorld({ lab: c.lab, controlPlane: ['node01'] });
});
afterAll(async () => {
  await world.stop();
});

const viewer = { subject: 'vera', displayName: 'vera', groups: ['everyone'], roles: rolesForGroups(['everyone'], { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] }), origin: 'cli' as const };

describe('k8s_nodes readiness', () => {
  it('reports Ready and why not, cordoned, and the pods a drain would still evict', async () => {
    world.updateCluster((w) => {
      w.nodes.node03!.ready = false;
      w.nodes.node02!.pods = ['default/web-node02', 'shop/cart-7d9f'];
    });
    const { job } = await c.runtime.service.submit({ tool: 'k8s_nodes', input: { control_plane: 'node01', pods: true }, requester: viewer, replyTo: { kind: 'cli' } });
    const done = await c.runtime.service.wait(job.id, viewer, 30_000);
    expect(done.state).toBe('succeeded');
    const nodes = (done.result?.data as { hosts: { nodes: Record<string, unknown>[] }[] }).hosts[0]?.nodes ?? [];
    const by = new Map(nodes.map((n) => [n.name, n]));
    expect(by.get('node02')).toMatchObject({ ready: true, unschedulable: false, ready_reason: null, pods_left: 2, pods_left_names: ['default/web-node02', 'shop/cart-7d9f'] });
    // The kube-proxy DaemonSet pod every node runs is not "left": drain ignores it.
    expect(by.get('node01')).toMatchObject({ pods_left: 1 });
    expect(by.get('node03')).toMatchObject({ ready: false, ready_reason: 'NodeStatusUnknown' });
    world.updateCluster((w) => {
      w.nodes.node03!.ready = true;
    });
  });

  it('gates: a cordoned node is drained once its pods are gone; a node that never gets Ready times out', async () => {
    const ctx = await planContextOf(c);
    world.updateCluster((w) => {
      w.nodes.node02!.pods = ['default/web-node02'];
      w.nodes.node03!.ready = false;
    });
    const gate = (id: string, subject: string, until: string, timeoutMs: number) =>
      gateStep({ id, subject, check: k8sNodes, input: { control_plane: 'node01', pods: true }, until, intervalMs: 400, timeoutMs }, ctx, validatedOrThrow);
    const plan: Plan = {
      tool: 'test_k8s_gates',
      hosts: ['node01'],
      failureBudget: 5,
      batches: [{ steps: [execStep({ id: 'cordon-node02', hosts: ['node01'], subject: 'node02', argv: ['kubectl', 'cordon', '--', 'node02'], asRoot: false, timeoutMs: 20_000 }), gate('drained-node02', 'node02', 'node_drained', 20_000), gate('ready-node03', 'node03', 'node_ready', 2_000)] }],
    };
    expect(plan.batches[0]?.steps[1]?.description).toBe('wait until node node02 is cordoned with no pods left to evict (k8s_nodes every 400ms, up to 20s)');
    // Eviction "finishes" only after the gate has seen the pod at least once (its first poll
    // is published as progress), so the gate provably waited, however slow the machine is.
    const jobId = planJobId();
    let stop = false;
    const evict = (async () => {
      const sawPod = async (): Promise<boolean> => (await c.runtime.ctx.events.read(jobId)).some(({ event }) => event.type === 'gate' && event.step === 'drained-node02');
      while (!stop && !(await sawPod())) await new Promise((r) => setTimeout(r, 100));
      world.updateCluster((w) => {
        w.nodes.node02!.pods = [];
      });
    })();
    const { outcome } = await runPlanOn(c, plan, jobId);
    stop = true;
    await evict;

    const drained = outcome.steps.find((s) => s.id === 'drained-node02');
    expect(drained?.results[0]?.status).toBe('ok');
    expect(drained?.observations?.[0]).toMatchObject({ subject: 'node02', state: 'holds', observed: 'node02: Ready, cordoned, 0 pods left' });
    expect(drained?.observations?.[0]?.polls).toBeGreaterThanOrEqual(2);
    const ready = outcome.steps.find((s) => s.id === 'ready-node03');
    expect(ready?.results[0]).toMatchObject({ status: 'timed_out' });
    expect(ready?.observations?.[0]?.observed).toBe('node03: NotReady (NodeStatusUnknown), schedulable, 1 pod left (default/web-node03)');
    expect(outcome.hosts.map((h) => [h.host, h.status])).toEqual([['node02', 'ok'], ['node03', 'timed_out']]);
    world.updateCluster((w) => {
      w.nodes.node03!.ready = true;
    });
  }, 60_000);
});
