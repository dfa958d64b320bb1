// The rack's upgrade runbook over any target, in batches (see upgrade-plan.ts for the steps).
import { z } from 'zod';
import { targets } from './fields.js';
import { resolveHosts } from './planning.js';
import { defineTool } from './types.js';
import { batchTags, nodeReportSchema, nodeReports, stepSubjects, upgradeBatches, upgradeFields, upgradeView } from './upgrade-plan.js';

export const rollingUpgrade = defineTool({
  name: 'rolling_upgrade',
  title: 'Rolling upgrade with boot environments',
  description:
    'Upgrade nodes in batches. Per node: drain it (kubectl on a control-plane host, when it is a Kubernetes node), ' +
    'create a ZFS boot environment pre-upgrade-<time>, upgrade packages (apt-get dist-upgrade, dnf upgrade, or the ' +
    "inventory's castellan_upgrade_command), reboot, then gate: it answers again, its Kubernetes node is Ready, its " +
    'castellan_expected_units are active, it has fresh WireGuard handshakes with every peer on its planes both ways ' +
    '(wireguard_mesh, from the `wireguard` var), and etcd is healthy when it is a control-plane node; then uncordon. A node that fails after its boot environment exists is rolled ' +
    'back (the environment activated, rebooted, gated again) and counts against the failure budget; once the budget ' +
    'is spent the remaining batches are skipped. Resumable: after a worker restart, finished steps are not repeated. ' +
    'Mirrors `kupgrade`, and on failure `kbe activate` + `reboot`, batch by batch as in the rack runbook.',
  risk: 'destructive',
  toolset: 'upgrades',
  idempotent: false,
  input: z.object({ targets, ...upgradeFields }).strict(),
  output: z.object({ nodes: z.array(nodeReportSchema) }),
  view: upgradeView,
  plan(input, ctx) {
    const hosts = resolveHosts(ctx, input.targets);
    const batches = upgradeBatches('b', hosts, input, ctx);
    const all = [...new Set([...hosts, ...batches.flatMap((b) => b.steps.flatMap((s) => s.hosts))])];
    return { tool: 'rolling_upgrade', hosts: all, batches, failureBudget: input.failure_budget, resumable: true };
  },
  summarize(input, results, ctx) {
    const hosts = resolveHosts(ctx, input.targets);
    const subjects = stepSubjects(upgradeBatches('b', hosts, input, ctx));
    return { nodes: nodeReports(hosts, batchTags('b', hosts, input.batch_size), subjects, input, results) };
  },
});

