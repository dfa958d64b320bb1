// One kubectl step per node on one control-plane host, so the plan shows each node by name
// and a failure names the node it happened on.
import { z } from 'zod';
import { kubectlFields, kubectlOn, nodeList } from './kubernetes.js';
import { execStep, singleBatchPlan, stepTimeout } from './planning.js';
import { defineTool } from './types.js';

export const k8sCordon = defineTool({
  name: 'k8s_cordon',
  title: 'Cordon Kubernetes nodes',
  description: 'Mark Kubernetes nodes unschedulable so no new pods land on them (running pods stay), running kubectl on one control-plane host. Mirrors `kubectl cordon NODE`.',
  risk: 'change',
  idempotent: true,
  input: z.object({ nodes: nodeList, ...kubectlFields }).strict(),
  plan(input, ctx) {
    const { host, kubectl } = kubectlOn(input, ctx);
    const steps = input.nodes.map((node, i) =>
      execStep({ id: `cordon-${i + 1}`, hosts: [host], argv: [...kubectl, 'cordon', '--', node], asRoot: input.as_root, timeoutMs: stepTimeout(ctx, input.timeout) }),
    );
    return singleBatchPlan('k8s_cordon', [host], steps, 0);
  },
});
