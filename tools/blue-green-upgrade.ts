// The rack's blue/green procedure: upgrade one half (rolling, with boot environments and
// rollback), check that half's health, then upgrade the other half; report per node.
import { z } from 'zod';
import { targets } from './fields.js';
import { k8sNodes } from './k8s-nodes.js';
import { ping } from './ping.js';
import { resolveHosts } from './planning.js';
import { validatedOrThrow } from './registry.js';
import { gateStep } from './steps/index.js';
import { ToolInputError, defineTool, type PlanBatch, type PlanContext } from './types.js';
import { batchTags, kubeFor, nodeReportSchema, nodeReports, nodeRunbook, stepSubjects, upgradeBatches, upgradeFields, upgradeView, type UpgradeOptions } from './upgrade-plan.js';

/** Every node of the upgraded half answers and, when it is a Kubernetes node, is Ready. */
function healthBatch(hosts: readonly string[], options: UpgradeOptions, ctx: PlanContext): PlanBatch {
  const kube = kubeFor(hosts, options, ctx);
  const probe = { targets: hosts.join(','), timeout: '5s', connect_timeout: '3s' };
  const steps = [gateStep({ id: 'health-answers', check: ping, input: probe, until: 'reachable', intervalMs: 2000, timeoutMs: options.up_timeout }, ctx, validatedOrThrow)];
  for (const host of hosts) {
    const node = nodeRunbook(ctx, host);
    if (node.k8sNode === undefined || !kube) continue;
    steps.push(gateStep({ id: `health-ready-${host}`, subject: host, check: k8sNodes, input: kube.checkInput, until: 'node_ready', args: { node: node.k8sNode }, intervalMs: 2000, timeoutMs: options.ready_timeout }, ctx, validatedOrThrow));
  }
  return { steps };
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
    'half (every node answers, Kubernetes nodes Ready), then upgrade the other half (default `color=blue`). ' +
    'The failure budget covers the whole run: once spent, the rest (including the other half) is skipped. Reports ' +
    'per node its old and new version, the boot environment created, the outcome and any rollback. Mirrors ' +
    "`kupgrade` half by half as in the rack's runbook: drain green, upgrade green, test green, drain blue, upgrade blue.",
  risk: 'destructive',
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
