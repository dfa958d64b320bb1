// The rack's blue/green procedure: upgrade one half (rolling, with boot environments and
// rollback), check that half's health, then upgrade the other half; report per node.
import { z } from 'zod';
import { targets } from './fields.js';
import { ping } from './ping.js';
import { resolveHosts } from './planning.js';
import { validatedOrThrow } from './registry.js';
import { gateStep } from './steps/index.js';
import { ToolInputError, defineTool, type PlanBatch, type PlanContext } from './types.js';
import { batchTags, controlPlaneHosts, kubeFor, nodeReportSchema, nodeReports, nodeRunbook, serviceGates, stepSubjects, upgradeBatches, upgradeFields, upgradeView, type UpgradeOptions } from './upgrade-plan.js';

/**
 * The upgraded half's health, all of it at once before the other half is touched: every node
 * answers, and the same service gates as after each reboot (Ready, expected units, WireGuard
 * planes, etcd on control-plane nodes).
 */
function healthBatch(hosts: readonly string[], options: UpgradeOptions, ctx: PlanContext): PlanBatch {
  const kube = kubeFor(hosts, options, ctx);
  const controlPlanes = controlPlaneHosts(ctx, options.control_plane);
  const nodes = hosts.map((h) => nodeRunbook(ctx, h, controlPlanes));
  const probe = { targets: hosts.join(','), timeout: '5s', connect_timeout: '3s' };
  return {
    steps: [
      gateStep({ id: 'health-answers', check: ping, input: probe, until: 'reachable', intervalMs: options.gate_interval, timeoutMs: options.up_timeout }, ctx, validatedOrThrow),
      ...serviceGates('health', nodes, kube, options, ctx, (id, host) => `health-${id}-${host}`),
    ],
  };
}

function halves(input: { first: string; second: string }, ctx: PlanContext): { first: string[]; second: string[] } {
  const first = resolveHosts(ctx, input.first, 'first');
  const second = resolveHosts(ctx, input.second, 'second');
  const both = first.filter((h) => second.includes(h));
  if (both.length > 0) throw new ToolInputError('second', `the halves overlap on ${both.join(', ')}: a node is upgraded in one half only`);
  return { first, second };
}

export const blueGreenUpgrade = defineTool({
  name: 'blue_green_upgrade',
  title: 'Blue/green upgrade',
  description:
    'Upgrade one half of the cluster (default `color=green`) node batch by batch exactly as rolling_upgrade does ' +
    '(drain, boot environment, upgrade, reboot, gates, uncordon; rollback of a node that fails), then check that ' +
    'half (every node answers, Kubernetes nodes Ready, expected units active, WireGuard planes handshaking, etcd ' +
    'healthy on control-plane nodes), then upgrade the other half (default `color=blue`). ' +
    'The failure budget covers the whole run: once spent, the rest (including the other half) is skipped. Reports ' +
    'per node its old and new version, the boot environment created, the outcome and any rollback. Mirrors ' +
    "`kupgrade` half by half as in the rack's runbook: drain green, upgrade green, test green, drain blue, upgrade blue.",
  risk: 'destructive',
  toolset: 'upgrades',
  idempotent: false,
  input: z
    .object({
      first: targets.default('color=green').describe('The half upgraded first. Default `color=green`.'),
      second: targets.default('color=blue').describe('The half upgraded after the first passed its health checks. Default `color=blue`.'),
      ...upgradeFields,
    })
    .strict(),
  output: z.object({ nodes: z.array(nodeReportSchema) }),
  view: upgradeView,
  plan(input, ctx) {
    const { first, second } = halves(input, ctx);
    const batches = [...upgradeBatches('first', first, input, ctx), healthBatch(first, input, ctx), ...upgradeBatches('second', second, input, ctx)];
    const hosts = [...new Set([...first, ...second, ...batches.flatMap((b) => b.steps.flatMap((s) => s.hosts))])];
    return { tool: 'blue_green_upgrade', hosts, batches, failureBudget: input.failure_budget, resumable: true };
  },
  summarize(input, results, ctx) {
    const { first, second } = halves(input, ctx);
    const tags = new Map([...batchTags('first', first, input.batch_size), ...batchTags('second', second, input.batch_size)]);
    const subjects = stepSubjects([...upgradeBatches('first', first, input, ctx), healthBatch(first, input, ctx), ...upgradeBatches('second', second, input, ctx)]);
    return { nodes: nodeReports([...first, ...second], tags, subjects, input, results) };
  },
});
