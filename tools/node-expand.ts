// MetalK8s-style expansion: a node already in the inventory joins the cluster. The approver
// sees the host key fingerprint that will be pinned, the Node object (role labels and
// taints) that will be applied, the deployment playbook, and the gates.
// A control-plane node also joins etcd, and Castellan makes that membership change itself,
// with etcdctl on the control-plane host (steps of kind etcd_member, tools/steps/etcd-member.ts),
// the way kubeadm does for a learner: check etcd is healthy (adding a member to an unhealthy
// cluster can cost quorum) → add the node as a learner (a learner has no vote, so a node that
// never comes up cannot cost quorum) → the deployment starts etcd on the node → once the
// learner has caught up, promote it → gate on it being a started voting member with etcd
// healthy. When a later step fails, a learner it added is removed again; a voting member is not
// (that changes quorum) and the result says so. The new member's peer URL is the node's
// inventory var etcd_peer_url (default https://<its address>:2380); the deployment finds its
// entry in `etcdctl member list` to build --initial-cluster.
import { z } from 'zod';
import { duration, k8sNodeName, targets } from './fields.js';
import { playbookFor } from './ansible-playbook.js';
import { etcdFlags, etcdHealth } from './etcd-health.js';
import { k8sNodes } from './k8s-nodes.js';
import { kubectlOn } from './kubernetes.js';
import { execStep, resolveHosts, showArgv } from './planning.js';
import { validatedOrThrow } from './registry.js';
import { gateStep } from './steps/index.js';
import { ToolInputError, defineTool, type PlanContext, type PlanStep } from './types.js';
import type { EtcdMemberAction } from './steps/index.js';

export const NODE_ROLES = ['control-plane', 'infra', 'worker'] as const;

/** Role labels and taints, as MetalK8s and kubeadm give them. */
export function nodeManifest(name: string, role: (typeof NODE_ROLES)[number]): Record<string, unknown> {
  const labels: Record<string, string> = { 'kubernetes.io/hostname': name };
  const taints: Array<{ key: string; effect: string }> = [];
  if (role === 'control-plane') {
    labels['node-role.kubernetes.io/control-plane'] = '';
    labels['node-role.kubernetes.io/etcd'] = '';
    taints.push({ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' });
  } else if (role === 'infra') {
    labels['node-role.kubernetes.io/infra'] = '';
    taints.push({ key: 'node-role.kubernetes.io/infra', effect: 'NoSchedule' });
  } else {
    labels['node-role.kubernetes.io/worker'] = '';
  }
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels }, spec: taints.length > 0 ? { taints } : {} };
}

export const nodeExpand = defineTool({
  name: 'node_expand',
  title: 'Add a node to the cluster',
  description:
    'Add a node that is in the inventory but not yet in the cluster: pin its SSH host key (only the fingerprint ' +
    'given, shown for approval), apply its Node object with the role\'s labels and taints (control-plane + etcd, ' +
    'infra, or worker) through kubectl on a control-plane host, run the configured deployment playbook on it, then ' +
    'wait until the node is Ready. For a control-plane node Castellan changes etcd membership itself with etcdctl on ' +
    'the control-plane host: etcd healthy first, `member add --learner` (not again if already listed), the deployment ' +
    'starts etcd on the node, `member promote` once the learner caught up, then a gate on a started voting member and ' +
    'healthy etcd; on a later failure the learner is removed again. Mirrors `deploy_node` (MetalK8s salt orchestrate) ' +
    'with kubectl, etcdctl and ansible-playbook.',
  risk: 'destructive',
  toolset: 'upgrades',
  idempotent: false,
  input: z
    .object({
      node: targets.describe('The inventory host to add (exactly one).'),
      role: z.enum(NODE_ROLES).describe('control-plane (with etcd), infra, or worker.'),
      host_key_fingerprint: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, { error: 'a fingerprint like SHA256:… (ssh-keygen -lf / ssh-keyscan | ssh-keygen -lf -)' }).describe('The fingerprint of the node\'s host key, checked out of band; only this key is pinned.'),
      k8s_name: k8sNodeName.optional().describe('Kubernetes node name; the inventory name by default.'),
      etcd_name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/).optional().describe('The etcd member name the deployment gives a control-plane node; the Kubernetes node name by default (as kubeadm does).'),
      etcd_as_root: z.boolean().default(false).describe('Run etcdctl through `sudo -n` (to read the etcd client key).'),
      etcd_retry_for: duration({ minMs: 10_000, maxMs: 30 * 60_000 }).prefault('2m').describe('How long each etcd membership change (add as learner, promote, remove) retries refusals etcd says are passing: "unhealthy cluster" for ~5 s after a member (re)connects, a learner not yet in sync. Default 2m.'),
      deploy_playbook: z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/).describe('The allowlisted playbook (ansible.playbooks) that deploys the node; it gets `node_role` when it declares it.'),
      control_plane: targets.default('k8s_control_plane').describe('Where kubectl runs (first host it resolves to). Default `k8s_control_plane`.'),
      kubectl_as_root: z.boolean().default(false).describe('Run kubectl through `sudo -n`.'),
      deploy_timeout: duration({ minMs: 10_000, maxMs: 6 * 3_600_000 }).prefault('30m').describe('How long the deployment may take. Default 30m.'),
      ready_timeout: duration({ minMs: 5000, maxMs: 3_600_000 }).prefault('10m').describe('How long the node may take to be Ready. Default 10m.'),
    })
    .strict(),
  plan(input, ctx) {
    const nodes = resolveHosts(ctx, input.node, 'node');
    if (nodes.length !== 1) throw new ToolInputError('node', `'${input.node}' names ${nodes.length} hosts; expand one node at a time`);
    const node = nodes[0] ?? '';
    const name = input.k8s_name ?? node;
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) throw new ToolInputError('k8s_name', `'${name}' is not a Kubernetes node name; give k8s_name`);
    const { host: cp, kubectl } = kubectlOn({ control_plane: input.control_plane }, ctx);
    const playbook = playbookFor(ctx, input.deploy_playbook, 'deploy_playbook');
    const vars: Record<string, string> = {};
    if (playbook.extraVars.node_role) vars.node_role = input.role;
    // The member name the deployment should give etcd, when the playbook takes it.
    if (playbook.extraVars.etcd_name && input.role === 'control-plane') vars.etcd_name = input.etcd_name ?? name;
    const deployArgs = ['--limit', node, ...(Object.keys(vars).length ? ['--extra-vars', JSON.stringify(vars)] : []), '--', playbook.path];
    const manifest = JSON.stringify(nodeManifest(name, input.role));
    const checkInput = { control_plane: cp, as_root: input.kubectl_as_root };
    const etcdName = vars.etcd_name ?? input.etcd_name ?? name;
    const controlPlane = input.role === 'control-plane';
    if (!controlPlane && input.etcd_name !== undefined) throw new ToolInputError('etcd_name', `only a control-plane node joins etcd; this one is ${input.role}`);
    const etcdCheck = { control_plane: cp, as_root: input.etcd_as_root };
    const etcdBefore = controlPlane
      ? [gateStep({ id: 'etcd-before', subject: node, check: etcdHealth, input: etcdCheck, until: 'healthy', intervalMs: 2000, timeoutMs: 30_000, description: `before ${node} joins etcd: etcd is healthy as ${cp} sees it (etcd_health, up to 30s)` }, ctx, validatedOrThrow)]
      : [];
    const membership = controlPlane ? etcdMembership(ctx, cp, node, etcdName, input.etcd_as_root, input.etcd_retry_for) : undefined;
    const etcdAfter = controlPlane && membership
      ? [membership.promote, gateStep({ id: 'etcd-member', subject: node, check: etcdHealth, input: etcdCheck, until: 'member', args: { name: etcdName }, intervalMs: 2000, timeoutMs: input.ready_timeout }, ctx, validatedOrThrow)]
      : [];
    const apply = execStep({ id: 'node-object', hosts: [cp], argv: [...kubectl, 'apply', '-f', '-'], asRoot: input.kubectl_as_root, stdin: manifest, timeoutMs: ctx.defaults.commandTimeoutMs, description: `apply the Node object ${name} (${input.role}): ${showArgv([...kubectl, 'apply', '-f', '-'])} < ${manifest}` });
    return {
      tool: 'node_expand',
      hosts: [node, cp],
      batches: [
        {
          steps: [
            { id: 'pin-host-key', description: `pin ${node}'s host key ${input.host_key_fingerprint} in known_hosts (refused if it offers any other)`, hosts: [node], action: { kind: 'pin_host_key', fingerprint: input.host_key_fingerprint }, timeoutMs: ctx.defaults.connectTimeoutMs + 5000 },
            ...etcdBefore,
            { ...apply, subject: node },
            ...(membership ? [membership.add] : []),
            { id: 'deploy', description: `deploy with playbook ${input.deploy_playbook} (${playbook.description}): ansible-playbook ${showArgv(deployArgs)}`, hosts: [node], action: { kind: 'playbook', playbook: input.deploy_playbook, args: deployArgs }, timeoutMs: input.deploy_timeout },
            gateStep({ id: 'ready', subject: node, check: k8sNodes, input: checkInput, until: 'node_ready', args: { node: name }, intervalMs: 2000, timeoutMs: input.ready_timeout }, ctx, validatedOrThrow),
            ...etcdAfter,
          ],
        },
      ],
      failureBudget: 0,
    };
  },
});

const ETCD_URL = /^https?:\/\/[A-Za-z0-9.\-[\]:]+$/;

/** The new member's peer URL: the node's inventory var etcd_peer_url, else https://<its address>:2380. */
export function etcdPeerUrl(ctx: PlanContext, node: string): string {
  const host = ctx.inventory.hosts.get(node);
  const value = host?.vars.etcd_peer_url;
  if (value === undefined) {
    const address = host?.address ?? node;
    return `https://${address.includes(':') ? `[${address}]` : address}:2380`;
  }
  if (typeof value !== 'string' || !ETCD_URL.test(value)) throw new ToolInputError('node', `inventory var etcd_peer_url of ${node} must be an http(s)://host:port URL`);
  return value;
}

/**
 * The membership steps Castellan runs on the control-plane host `cp` for a control-plane node:
 * add it as a learner (arming the learner's removal should a later step fail), and promote it.
 */
function etcdMembership(ctx: PlanContext, cp: string, node: string, name: string, asRoot: boolean, retryForMs: number): { add: PlanStep; promote: PlanStep } {
  const { flags } = etcdFlags(ctx, cp);
  const peerUrl = etcdPeerUrl(ctx, node);
  // No output format: the step asks for JSON only where it reads it (member list).
  const connection = flags.filter((f) => !f.startsWith('--write-out='));
  const action = (op: EtcdMemberAction['op']): EtcdMemberAction => ({ kind: 'etcd_member', op, etcdctl: ['etcdctl', ...connection], asRoot, name, peerUrl, retryForMs, commandTimeoutMs: 30_000 });
  const within = `etcd's passing refusals retried up to ${Math.round(retryForMs / 1000)}s`;
  // The step's bound: the retries plus one last etcdctl call (list and change).
  const timeoutMs = retryForMs + 60_000;
  const remove: PlanStep = {
    id: 'etcd-remove-learner',
    subject: node,
    description: `roll back: remove ${name} from etcd again if it is still a learner (a voting member is left for a person to decide; ${within})`,
    hosts: [cp],
    action: action('remove_learner'),
    timeoutMs,
  };
  return {
    add: {
      id: 'etcd-add',
      subject: node,
      description: `add ${name} (peer ${peerUrl}) to etcd as a learner, unless etcd already lists that peer URL (${within})`,
      hosts: [cp],
      action: action('add_learner'),
      timeoutMs,
      onFailure: [remove],
    },
    promote: {
      id: 'etcd-promote',
      subject: node,
      description: `promote ${name} to a voting etcd member once it has caught up (a voting member is left as it is; ${within})`,
      hosts: [cp],
      action: action('promote'),
      timeoutMs,
    },
  };
}
