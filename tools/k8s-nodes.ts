// Cluster nodes as Kubernetes sees them, from the JSON API output (stable, unlike the table),
// and the readiness gate orchestrations wait on: Ready, cordoned, and (with `pods`) the pods
// a drain still has to move off each node.
import { z } from 'zod';
import type { ConditionDefinition, Observation, Verdict } from './steps/index.js';
import { kubectlFields, kubectlOn } from './kubernetes.js';
import { execStep, singleBatchPlan, stepTimeout } from './planning.js';
import { OutputFormatError, hostReportSchema, reportHosts } from './reports.js';
import { plural, reportRows, type ResultViewDefinition } from './result-view.js';
import { defineTool } from './types.js';

export interface K8sNode {
  name: string;
  ready: boolean;
  roles: string[];
  version: string;
  unschedulable: boolean;
  internal_ip: string | null;
}

/** A node with the gate's extra facts: why it is not Ready, and pods still on it. */
export interface K8sNodeReadiness extends K8sNode {
  ready_reason: string | null;
  /** Pods a drain would still evict (not DaemonSet-owned, not mirror, not finished); null when pods were not read. */
  pods_left: number | null;
  /** The first few of them, `namespace/name`. */
  pods_left_names: string[];
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

/** `kubectl get pods --all-namespaces -o json` → node name → evictable pods still there. */
export function parseKubectlPods(stdout: string): Map<string, string[]> {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    throw new OutputFormatError('kubectl pods output is not JSON');
  }
  const root = record(doc);
  if (root.kind !== 'List' && root.kind !== 'PodList') throw new OutputFormatError(`expected a PodList, got kind '${String(root.kind)}'`);
  const byNode = new Map<string, string[]>();
  for (const item of list(root.items)) {
    const metadata = record(record(item).metadata);
    const node = text(record(record(item).spec).nodeName);
    const phase = text(record(record(item).status).phase);
    const owners = list(metadata.ownerReferences).map((o) => text(record(o).kind));
    const mirror = Object.keys(record(metadata.annotations)).includes('kubernetes.io/config.mirror');
    // What `kubectl drain --ignore-daemonsets` leaves alone never counts as "left".
    if (!node || owners.includes('DaemonSet') || mirror || phase === 'Succeeded' || phase === 'Failed') continue;
    byNode.set(node, [...(byNode.get(node) ?? []), `${text(metadata.namespace)}/${text(metadata.name)}`]);
  }
  return byNode;
}

function readinessOf(stdout: string, pods: Map<string, string[]> | undefined): K8sNodeReadiness[] {
  const doc = record(JSON.parse(stdout));
  const reasons = new Map(
    list(doc.items).map((item) => {
      const ready = list(record(record(item).status).conditions).map(record).find((c) => c.type === 'Ready');
      return [text(record(record(item).metadata).name), ready && ready.status !== 'True' ? text(ready.reason) || `Ready=${text(ready.status)}` : null] as const;
    }),
  );
  return parseKubectlNodes(stdout).map((n) => {
    const left = pods?.get(n.name) ?? [];
    return { ...n, ready_reason: n.ready ? null : (reasons.get(n.name) ?? 'no Ready condition'), pods_left: pods ? left.length : null, pods_left_names: left.slice(0, 10) };
  });
}

function nodeIn(observation: Observation, name: string): K8sNodeReadiness | undefined | 'no data' {
  const hosts = record(observation.data).hosts;
  const entry = list(hosts).map(record).find((h) => Array.isArray(h.nodes));
  if (!entry) return 'no data';
  return (entry.nodes as K8sNodeReadiness[]).find((n) => n.name === name);
}

function described(n: K8sNodeReadiness): string {
  const pods = n.pods_left === null ? '' : `, ${n.pods_left} pod${n.pods_left === 1 ? '' : 's'} left${n.pods_left_names.length ? ` (${n.pods_left_names.slice(0, 3).join(', ')}${n.pods_left > 3 ? ', …' : ''})` : ''}`;
  return `${n.name}: ${n.ready ? 'Ready' : `NotReady (${n.ready_reason ?? 'unknown'})`}, ${n.unschedulable ? 'cordoned' : 'schedulable'}${pods}`;
}

/** A condition on one node (args.node, else the gate's subject). */
function nodeCondition(describe: (node: string) => string, holds: (n: K8sNodeReadiness) => boolean): ConditionDefinition {
  return {
    describe: (args, subject) => describe(typeof args.node === 'string' ? args.node : (subject ?? 'the node')),
    judge(observation, subject, args): Verdict {
      const name = typeof args.node === 'string' ? args.node : subject;
      const n = nodeIn(observation, name);
      if (n === 'no data') {
        const why = list(record(observation.data).hosts).map(record).map((h) => text(h.error)).find(Boolean);
        return { state: 'waiting', observed: `no answer from the API server${why ? ` (${why})` : ''}` };
      }
      if (!n) return { state: 'waiting', observed: `${name} is not registered` };
      return { state: holds(n) ? 'holds' : 'waiting', observed: described(n) };
    },
  };
}

const readinessConditions: Readonly<Record<string, ConditionDefinition>> = {
  node_ready: nodeCondition((node) => `node ${node} is Ready`, (n) => n.ready),
  node_schedulable: nodeCondition((node) => `node ${node} is Ready and uncordoned`, (n) => n.ready && !n.unschedulable),
  node_drained: nodeCondition((node) => `node ${node} is cordoned with no pods left to evict`, (n) => n.unschedulable && n.pods_left === 0),
};

const k8sNodesOutput = hostReportSchema({
    nodes: z.array(
      z.object({
        name: z.string(),
        ready: z.boolean(),
        roles: z.array(z.string()),
        version: z.string(),
        unschedulable: z.boolean(),
        internal_ip: z.string().nullable(),
        ready_reason: z.string().nullable(),
        pods_left: z.number().nullable(),
        pods_left_names: z.array(z.string()),
      }),
    ),
  });
type K8sNodesData = z.output<typeof k8sNodesOutput>;
type K8sNodeRow = NonNullable<K8sNodesData['hosts'][number]['nodes']>[number];

/** `kubectl get nodes`, readable: node · status · roles · version · cordoned · pods left. */
const k8sNodesView: ResultViewDefinition<K8sNodesData, K8sNodeRow> = {
  key: 'node',
  columns: [
    { label: 'status', cell: (n) => (n.ready ? 'Ready' : `NotReady${n.ready_reason ? ` (${n.ready_reason})` : ''}`), tone: (n) => (n.ready ? 'ok' : 'bad') },
    { label: 'roles', cell: (n) => n.roles.join(',') },
    { label: 'version', cell: (n) => n.version },
    { label: 'scheduling', cell: (n) => (n.unschedulable ? 'cordoned' : ''), tone: (n) => (n.unschedulable ? 'warn' : undefined) },
    { label: 'pods left', cell: (n) => (n.pods_left === null ? '' : String(n.pods_left)), align: 'right' },
  ],
  // Rows are Kubernetes nodes, named as the cluster names them; the control-plane host that
  // answered only shows when it could not.
  rows: (data) =>
    reportRows(data.hosts, (h) => h.nodes).map((r) => (r.problem || r.row === undefined ? r : { name: r.row.name, row: r.row })),
  summary(data) {
    const nodes = data.hosts.flatMap((h) => h.nodes ?? []);
    if (nodes.length === 0) return data.hosts.some((h) => h.nodes) ? 'no Kubernetes nodes' : 'the API server did not answer';
    const notReady = nodes.filter((n) => !n.ready).map((n) => n.name);
    const cordoned = nodes.filter((n) => n.unschedulable).map((n) => n.name);
    return [
      `${nodes.length - notReady.length} of ${plural(nodes.length, 'node')} ready${notReady.length ? ` (not: ${notReady.join(', ')})` : ''}`,
      ...(cordoned.length ? [`cordoned: ${cordoned.join(', ')}`] : []),
    ].join('; ');
  },
};

export const k8sNodes = defineTool({
  name: 'k8s_nodes',
  title: 'Kubernetes nodes',
  description:
    'List Kubernetes nodes with readiness (and why not), roles, kubelet version, whether they are cordoned and, ' +
    'with `pods`, the pods a drain would still evict from each, asking the API server from one control-plane host. ' +
    'Gates wait on its conditions node_ready, node_schedulable and node_drained. ' +
    'Mirrors `kubectl get nodes -o json` (and `kubectl get pods --all-namespaces -o json`).',
  risk: 'read',
  toolset: 'kubernetes',
  idempotent: true,
  input: z
    .object({
      ...kubectlFields,
      pods: z.boolean().default(false).describe('Also count the pods left on each node (reads every pod: large clusters produce large output).'),
    })
    .strict(),
  output: k8sNodesOutput,
  view: k8sNodesView,
  plan(input, ctx) {
    const { host, kubectl } = kubectlOn(input, ctx);
    const timeoutMs = stepTimeout(ctx, input.timeout);
    return singleBatchPlan('k8s_nodes', [host], [
      execStep({ id: 'nodes', hosts: [host], argv: [...kubectl, 'get', 'nodes', '--output=json'], asRoot: input.as_root, timeoutMs }),
      ...(input.pods ? [execStep({ id: 'pods', hosts: [host], argv: [...kubectl, 'get', 'pods', '--all-namespaces', '--output=json'], asRoot: input.as_root, timeoutMs })] : []),
    ]);
  },
  summarize(input, results) {
    const pods = results.get('pods');
    return reportHosts(results, 'nodes', (stdout, result) => {
      if (!input.pods) return { nodes: readinessOf(stdout, undefined) };
      const podsResult = pods?.get(result.host);
      if (podsResult?.status !== 'ok') throw new OutputFormatError(`pods could not be read: ${podsResult?.error ?? podsResult?.stderr.trim().split('\n')[0] ?? 'no result'}`);
      return { nodes: readinessOf(stdout, parseKubectlPods(podsResult.stdout)) };
    });
  },
  conditions: readinessConditions,
});
