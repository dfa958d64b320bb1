// What the kubectl tools share: they run on ONE control-plane host (kubectl talks to the API
// server; running it on every node would repeat the operation), chosen as the first host the
// `control_plane` expression resolves to, so the choice is stable and visible in the plan.
import { z } from 'zod';
import { absolutePath, duration, k8sNodeName, targets } from './fields.js';
import { execStep, resolveHosts, singleBatchPlan, stepTimeout } from './planning.js';
import { defineTool, ToolInputError, type PlanContext } from './types.js';

export const kubectlFields = {
  control_plane: targets
    .default('k8s_control_plane')
    .describe('Target expression for the control-plane hosts; kubectl runs on the first host it resolves to. Default `k8s_control_plane`.'),
  as_root: z.boolean().default(false).describe('Run kubectl through `sudo -n` (e.g. to read /etc/kubernetes/admin.conf).'),
  timeout: duration({ minMs: 1000, maxMs: 3_600_000 })
    .optional()
    .describe('Per-command timeout, e.g. `60s` (1s to 1h). Defaults to the configured command timeout.'),
};

export const nodeList = z
  .array(k8sNodeName)
  .min(1)
  .max(256)
  .describe('Kubernetes node names, e.g. `worker1,worker2`.');

export interface KubectlInput {
  control_plane: string;
}

/**
 * The inventory var naming the kubeconfig on a control-plane host. kubectl runs the `exec:`
 * credential plugin a kubeconfig names, so a kubeconfig path is code: it comes from the
 * inventory (an operator's allowlist), never from a request.
 */
export const KUBECONFIG_VAR = 'castellan_kubeconfig';

/** The control-plane host kubectl runs on, and the argv prefix (`kubectl [--kubeconfig=…]`). */
export function kubectlOn(input: KubectlInput, ctx: PlanContext): { host: string; kubectl: string[] } {
  const [host = ''] = resolveHosts(ctx, input.control_plane, 'control_plane');
  const kubectl = ['kubectl'];
  const configured = ctx.inventory.hosts.get(host)?.vars[KUBECONFIG_VAR];
  if (configured !== undefined) {
    const path = absolutePath.safeParse(configured);
    if (!path.success) throw new ToolInputError('control_plane', `inventory var ${KUBECONFIG_VAR} of ${host} must be an absolute path`);
    kubectl.push(`--kubeconfig=${path.data}`);
  }
  return { host, kubectl };
}

/**
 * cordon and uncordon differ only in the kubectl verb: one kubectl step per node on one
 * control-plane host, so the plan shows each node by name and a failure names its node.
 */
export function nodeSchedulingTool(spec: { name: string; verb: 'cordon' | 'uncordon'; title: string; description: string }) {
  return defineTool({
    name: spec.name,
    title: spec.title,
    description: spec.description,
    risk: 'change',
    toolset: 'kubernetes',
    idempotent: true,
    input: z.object({ nodes: nodeList, ...kubectlFields }).strict(),
    plan(input, ctx) {
      const { host, kubectl } = kubectlOn(input, ctx);
      const steps = input.nodes.map((node, i) =>
        execStep({ id: `${spec.verb}-${i + 1}`, hosts: [host], subject: node, argv: [...kubectl, spec.verb, '--', node], asRoot: input.as_root, timeoutMs: stepTimeout(ctx, input.timeout) }),
      );
      return singleBatchPlan(spec.name, [host], steps, 0);
    },
  });
}
