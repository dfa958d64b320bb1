// Drain one node per batch, so capacity leaves the cluster one node at a time and a node that
// will not drain (PodDisruptionBudget, stuck pod) stops the roll before the next one.
import { z } from 'zod';
import { duration, failureBudget, formatDuration } from './fields.js';
import { kubectlFields, kubectlOn, nodeList } from './kubernetes.js';
import { execStep } from './planning.js';
import { defineTool } from './types.js';

/** Time for kubectl itself to start and report after its own --timeout expires. */
const KUBECTL_MARGIN_MS = 60_000;

export const k8sDrain = defineTool({
  name: 'k8s_drain',
  title: 'Drain Kubernetes nodes',
  description:
    'Cordon and evict pods from Kubernetes nodes one node at a time (DaemonSet pods stay; emptyDir data is lost), ' +
    'running kubectl on one control-plane host; stops after `failure_budget` failed drains. ' +
    'Mirrors `kubectl drain NODE --ignore-daemonsets --delete-emptydir-data --timeout=…`.',
  risk: 'destructive',
  toolset: 'kubernetes',
  idempotent: true,
  input: z
    .object({
      nodes: nodeList,
      drain_timeout: duration({ minMs: 10_000, maxMs: 3_600_000 })
        .prefault('5m')
        .describe('How long kubectl waits for each node\'s pods to be evicted (10s to 1h). Default 5m.'),
      failure_budget: failureBudget.default(0).describe('Failed drains tolerated before the remaining nodes are skipped. Default 0.'),
      control_plane: kubectlFields.control_plane,
      as_root: kubectlFields.as_root,
    })
    .strict(),
  plan(input, ctx) {
    const { host, kubectl } = kubectlOn(input, ctx);
    const flags = ['--ignore-daemonsets', '--delete-emptydir-data', `--timeout=${formatDuration(input.drain_timeout)}`];
    return {
      tool: 'k8s_drain',
      hosts: [host],
      batches: input.nodes.map((node, i) => ({
        steps: [
          execStep({
            id: `drain-${i + 1}`,
            hosts: [host],
            subject: node,
            argv: [...kubectl, 'drain', ...flags, '--', node],
            asRoot: input.as_root,
            timeoutMs: input.drain_timeout + KUBECTL_MARGIN_MS,
          }),
        ],
      })),
      failureBudget: input.failure_budget,
    };
  },
});
