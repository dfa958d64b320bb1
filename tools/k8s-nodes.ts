// Cluster nodes as Kubernetes sees them, from the JSON API output (stable, unlike the table).
import { z } from 'zod';
import { kubectlFields, kubectlOn } from './kubernetes.js';
import { execStep, singleBatchPlan, stepTimeout } from './planning.js';
import { OutputFormatError, hostReportSchema, reportHosts } from './reports.js';
import { defineTool } from './types.js';

export interface K8sNode {
  name: string;
  ready: boolean;
  roles: string[];
  version: string;
  unschedulable: boolean;
  internal_ip: string | null;
}

const ROLE_LABEL = 'node-role.kubernetes.io/';

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? (value as unknown[]) : [];
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/** `kubectl get nodes -o json` → one entry per node. */
export function parseKubectlNodes(stdout: string): K8sNode[] {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    throw new OutputFormatError('kubectl output is not JSON');
  }
  const root = record(doc);
  if (root.kind !== 'List' && root.kind !== 'NodeList') throw new OutputFormatError(`expected a NodeList, got kind '${String(root.kind)}'`);
  return list(root.items).map((item) => {
    const metadata = record(record(item).metadata);
    const spec = record(record(item).spec);
    const status = record(record(item).status);
    const labels = record(metadata.labels);
    const ready = list(status.conditions).some((c) => record(c).type === 'Ready' && record(c).status === 'True');
    const address = list(status.addresses).map(record).find((a) => a.type === 'InternalIP');
    return {
      name: text(metadata.name),
      ready,
      roles: Object.keys(labels)
        .filter((key) => key.startsWith(ROLE_LABEL))
        .map((key) => key.slice(ROLE_LABEL.length))
        .sort(),
      version: text(record(status.nodeInfo).kubeletVersion),
      unschedulable: spec.unschedulable === true,
      internal_ip: typeof address?.address === 'string' ? address.address : null,
    };
  });
}

export const k8sNodes = defineTool({
  name: 'k8s_nodes',
  title: 'Kubernetes nodes',
  description:
    'List Kubernetes nodes with readiness, roles, kubelet version and whether they are cordoned, asking the API ' +
    'server from one control-plane host. Mirrors `kubectl get nodes -o json`.',
  risk: 'read',
  idempotent: true,
  input: z.object(kubectlFields).strict(),
  output: hostReportSchema({
    nodes: z.array(
      z.object({
        name: z.string(),
        ready: z.boolean(),
        roles: z.array(z.string()),
        version: z.string(),
        unschedulable: z.boolean(),
        internal_ip: z.string().nullable(),
      }),
    ),
  }),
  plan(input, ctx) {
    const { host, kubectl } = kubectlOn(input, ctx);
    return singleBatchPlan('k8s_nodes', [host], [
      execStep({ id: 'nodes', hosts: [host], argv: [...kubectl, 'get', 'nodes', '--output=json'], asRoot: input.as_root, timeoutMs: stepTimeout(ctx, input.timeout) }),
    ]);
  },
  summarize(_input, results) {
    return reportHosts(results, 'nodes', (stdout) => ({ nodes: parseKubectlNodes(stdout) }));
  },
});
