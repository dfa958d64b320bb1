// The upgrade runbook of the rack, as plan steps, shared by rolling_upgrade and
// blue_green_upgrade. Per batch of nodes:
//   version (old) → drain (kubectl on a control plane, Kubernetes nodes) → boot environment
//   pre-upgrade-… per node → upgrade packages → reboot → gates: each node stops answering and
//   answers again, its Kubernetes node is Ready, its expected units are active, it has fresh
//   WireGuard handshakes with every peer on each of its planes, both ways (wireguard_mesh,
//   node_meshed), etcd is healthy (control-plane nodes) → version (new) → uncordon.
// A node's boot-environment step arms its rollback: when any later step or gate of that node
// fails, the pre-upgrade environment is activated, the node rebooted and gated again (the
// same gates). The node still counts as failed (against the failure budget): it was not
// upgraded. The drain arms an uncordon, which runs after the rollback (most recently armed
// runs first). Drain comes before the boot environment so a drain that fails leaves nothing
// to roll back.
//
// Inventory vars (per host, group vars allowed):
//   castellan_package_manager: apt | dnf            (default apt)
//   castellan_upgrade_command: [argv…]              (overrides the package manager's)
//   castellan_reboot_command: [argv…]               (default systemd-run --on-active=2 systemctl reboot)
//   castellan_version_command: [argv…]              (default uname -r; what "old/new version" reports)
//   castellan_k8s_node: <name> | true | false       (default: the host name when it is in k8s_cluster)
//   castellan_expected_units: [unit…]               (each must be active after the reboot)
//   wireguard: { wg0: {…}, … }                       (its planes, as wireguard_mesh reads them)
//   castellan_etcd_member: true | false             (default: the host is one of `control_plane`'s hosts;
//                                                     etcd_health then runs on it with its etcd_* vars)
//   castellan_be_tool / castellan_be_root           (see boot-env.ts)
import { z } from 'zod';
import type { Host } from '../config/types.js';
import { activateCommand, beDriverFor, beName, createCommand } from './boot-env.js';
import { etcdHealth } from './etcd-health.js';
import { batchSize, duration, failureBudget, targets, unitName } from './fields.js';
import { k8sNodes } from './k8s-nodes.js';
import { kubectlOn } from './kubernetes.js';
import { execStep, rollingBatches, showArgv } from './planning.js';
import { reachabilityGates, SCHEDULE_REBOOT } from './reboot.js';
import { validatedOrThrow } from './registry.js';
import { serviceStatus } from './service-status.js';
import { gateStep } from './steps/index.js';
import { meshLayout, wireguardMesh } from './wireguard-mesh.js';
import { ToolInputError, type PlanBatch, type PlanContext, type PlanStep, type StepResults } from './types.js';
import type { ResultViewDefinition } from './result-view.js';

const APT_UPGRADE = ['sh', '-c', 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Options::=--force-confold dist-upgrade', 'castellan-upgrade'];
const DNF_UPGRADE = ['dnf', '-y', 'upgrade'];
const VERSION = ['uname', '-r'];
const ARGV_WORD = /^[^\0\n\r]{1,4096}$/;

/** `pre-upgrade-YYYYMMDD-HHMMSS` (UTC), the name the rack's runbook gives its environments. */
export function preUpgradeName(now: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `pre-upgrade-${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}-${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}`;
}

/** Fields both upgrade tools take (besides their targets). */
export const upgradeFields = {
  batch_size: batchSize.prefault(1).describe('Nodes upgraded at a time: a count like `2` or `25%`. Default 1.'),
  failure_budget: failureBudget.default(0).describe('Nodes allowed to fail (rolled back or not) before the remaining batches are skipped. Default 0.'),
  // Fixed when the request is validated, so the plan (and its hash) stays the same until it runs.
  // Not `.default(fn)`: the JSON schema (help, MCP tools/list) would freeze one evaluation of
  // it as the default, a time long past, which a client might send back as is.
  boot_environment: beName.optional().transform((name) => name ?? preUpgradeName(new Date())).describe('Name of the boot environment created before upgrading each node. Default `pre-upgrade-<UTC time of the request>`.'),
  control_plane: targets.default('k8s_control_plane').describe('Where kubectl runs (first host it resolves to). Default `k8s_control_plane`.'),
  kubectl_as_root: z.boolean().default(false).describe('Run kubectl through `sudo -n`.'),
  drain_timeout: duration({ minMs: 10_000, maxMs: 3_600_000 }).prefault('5m').describe('How long a drain may take per node. Default 5m.'),
  upgrade_timeout: duration({ minMs: 10_000, maxMs: 6 * 3_600_000 }).prefault('30m').describe('How long the package upgrade may take. Default 30m.'),
  down_timeout: duration({ minMs: 5000, maxMs: 30 * 60_000 }).prefault('2m').describe('How long a node may take to go down after the reboot is scheduled. Default 2m.'),
  up_timeout: duration({ minMs: 10_000, maxMs: 2 * 3_600_000 }).prefault('10m').describe('How long a node may take to answer again. Default 10m.'),
  ready_timeout: duration({ minMs: 5000, maxMs: 3_600_000 }).prefault('5m').describe('How long its Kubernetes node, units, WireGuard planes and etcd may take to be Ready/active/healthy. Default 5m.'),
  gate_interval: duration({ minMs: 200, maxMs: 60_000 }).prefault('2s').describe('How often the gates look (answers, Ready, units, WireGuard, etcd). Default 2s.'),
  handshake_within: duration({ minMs: 1000, maxMs: 3_600_000 }).prefault('180s').describe('A WireGuard link counts as up when its latest handshake is this recent (WireGuard re-keys every 2 minutes). Default 180s.'),
  etcd_as_root: z.boolean().default(false).describe('Run etcdctl (the etcd gate of control-plane nodes) through `sudo -n`, to read the etcd client key.'),
};

export type UpgradeOptions = z.output<z.ZodObject<typeof upgradeFields>>;

function argvVar(host: Host, name: string): string[] | undefined {
  const value = host.vars[name];
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length === 0 || !value.every((w) => typeof w === 'string' && ARGV_WORD.test(w))) {
    throw new ToolInputError('targets', `${host.name}: inventory var ${name} must be a non-empty list of argv words (no shell string)`);
  }
  return value as string[];
}

export interface NodeRunbook {
  readonly host: string;
  readonly upgrade: string[];
  readonly reboot: string[];
  readonly version: string[];
  /** Kubernetes node name, when the host is one. */
  readonly k8sNode: string | undefined;
  readonly units: string[];
  /** Its WireGuard planes (the `wireguard` var's keys): every link on them must handshake after the reboot. */
  readonly wireguard: string[];
  /** An etcd member (control-plane node): etcd must be healthy after its reboot. */
  readonly etcd: boolean;
}

/**
 * The hosts `control_plane` names: the control-plane nodes, etcd members unless a node's
 * castellan_etcd_member says otherwise. None when it names nothing in this inventory (a roll
 * of plain hosts need not have a control plane).
 */
export function controlPlaneHosts(ctx: PlanContext, expression: string): ReadonlySet<string> {
  try {
    return new Set(ctx.resolve(expression));
  } catch {
    return new Set();
  }
}

export function nodeRunbook(ctx: PlanContext, name: string, controlPlanes: ReadonlySet<string> = new Set()): NodeRunbook {
  const host = ctx.inventory.hosts.get(name);
  if (!host) throw new ToolInputError('targets', `${name} is not in the inventory`);
  const manager = host.vars.castellan_package_manager ?? 'apt';
  if (manager !== 'apt' && manager !== 'dnf') throw new ToolInputError('targets', `${name}: inventory var castellan_package_manager must be apt or dnf`);
  const k8sVar = host.vars.castellan_k8s_node;
  let k8sNode: string | undefined;
  if (typeof k8sVar === 'string') k8sNode = k8sVar;
  else if (k8sVar === true || (k8sVar === undefined && host.groups.includes('k8s_cluster'))) k8sNode = name;
  if (k8sNode !== undefined && !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(k8sNode)) throw new ToolInputError('targets', `${name}: '${k8sNode}' is not a Kubernetes node name`);
  const unitsVar = host.vars.castellan_expected_units ?? [];
  if (!Array.isArray(unitsVar) || !unitsVar.every((u) => typeof u === 'string' && unitName.safeParse(u).success)) {
    throw new ToolInputError('targets', `${name}: inventory var castellan_expected_units must be a list of unit names`);
  }
  const wgVar = host.vars.wireguard;
  const planes = wgVar !== null && typeof wgVar === 'object' && !Array.isArray(wgVar) ? Object.keys(wgVar) : [];
  const etcdVar = host.vars.castellan_etcd_member;
  if (etcdVar !== undefined && typeof etcdVar !== 'boolean') throw new ToolInputError('targets', `${name}: inventory var castellan_etcd_member must be true or false`);
  return {
    host: name,
    upgrade: argvVar(host, 'castellan_upgrade_command') ?? (manager === 'dnf' ? DNF_UPGRADE : APT_UPGRADE),
    reboot: argvVar(host, 'castellan_reboot_command') ?? [...SCHEDULE_REBOOT],
    version: argvVar(host, 'castellan_version_command') ?? VERSION,
    k8sNode,
    units: unitsVar as string[],
    wireguard: planes,
    etcd: etcdVar ?? controlPlanes.has(name),
  };
}

/** One exec step per distinct argv among `nodes` (hosts in order), ids `<id>` or `<id>-<n>`. */
function stepsByArgv(id: string, nodes: readonly NodeRunbook[], argvOf: (n: NodeRunbook) => string[], asRoot: boolean, timeoutMs: number, what: string): PlanStep[] {
  const groups = new Map<string, { argv: string[]; hosts: string[] }>();
  for (const n of nodes) {
    const argv = argvOf(n);
    const key = JSON.stringify(argv);
    const g = groups.get(key) ?? { argv, hosts: [] };
    g.hosts.push(n.host);
    groups.set(key, g);
  }
  return [...groups.values()].map((g, i, all) =>
    execStep({ id: all.length === 1 ? id : `${id}-${i + 1}`, hosts: g.hosts, argv: g.argv, asRoot, timeoutMs, description: `${what}: ${asRoot ? 'sudo ' : ''}${showArgv(g.argv)}` }),
  );
}

const KUBECTL_MARGIN_MS = 60_000;

export interface Kube {
  readonly host: string;
  readonly kubectl: string[];
  readonly asRoot: boolean;
  readonly checkInput: Record<string, unknown>;
}

function readyGate(id: string, node: NodeRunbook, kube: Kube, options: UpgradeOptions, ctx: PlanContext): PlanStep {
  return gateStep({ id, subject: node.host, check: k8sNodes, input: kube.checkInput, until: 'node_ready', args: { node: node.k8sNode ?? node.host }, intervalMs: options.gate_interval, timeoutMs: options.ready_timeout }, ctx, validatedOrThrow);
}

/**
 * What a running node must show to count as healthy: its Kubernetes node Ready, its expected
 * units active, every peer of its WireGuard planes handshaking, and etcd healthy as the node
 * itself sees it (etcdctl on it, against the members its etcd_endpoints var names) when it is
 * an etcd member. Ids end in `tag` (`-<tag>`, or for per-node gates `<node>-<tag>`) so the
 * rollback's and the health batch's gates stay distinct from the roll's.
 */
export function serviceGates(tag: string, nodes: readonly NodeRunbook[], kube: Kube | undefined, options: UpgradeOptions, ctx: PlanContext, perNode: (id: string, host: string) => string): PlanStep[] {
  const steps: PlanStep[] = [];
  for (const n of nodes) if (n.k8sNode !== undefined && kube) steps.push(readyGate(perNode('ready', n.host), n, kube, options, ctx));
  const units = [...new Set(nodes.flatMap((n) => n.units))];
  units.forEach((unit, i) => {
    const on = nodes.filter((n) => n.units.includes(unit)).map((n) => n.host);
    steps.push(gateStep({ id: `units-${tag}-${i + 1}`, check: serviceStatus, input: { targets: on.join(','), unit }, until: 'active', args: { unit }, intervalMs: options.gate_interval, timeoutMs: options.ready_timeout }, ctx, validatedOrThrow));
  });
  // Each node's links on its planes, both ways: the check runs on every host of those planes
  // (a link is seen from both ends) and judges the node's row and column (wireguard_mesh).
  const meshed = nodes.filter((n) => n.wireguard.length > 0);
  if (meshed.length > 0) {
    const layout = meshLayout(ctx);
    for (const n of meshed) {
      const peers = [...new Set(n.wireguard.flatMap((plane) => [...(layout.planes.get(plane)?.keys() ?? [])]))];
      const input = { targets: peers.join(','), planes: n.wireguard, stale_after: `${options.handshake_within}ms` };
      steps.push(gateStep({ id: perNode('wg', n.host), subject: n.host, check: wireguardMesh, input, until: 'node_meshed', args: { node: n.host }, intervalMs: options.gate_interval, timeoutMs: options.ready_timeout }, ctx, validatedOrThrow));
    }
  }
  for (const n of nodes) {
    if (!n.etcd) continue;
    steps.push(gateStep({ id: perNode('etcd', n.host), subject: n.host, check: etcdHealth, input: { control_plane: n.host, as_root: options.etcd_as_root }, until: 'healthy', intervalMs: options.gate_interval, timeoutMs: options.ready_timeout }, ctx, validatedOrThrow));
  }
  return steps;
}

/** What a node needs to come back healthy after a reboot: it goes away, answers again, then the service gates. */
function healthGates(suffix: string, nodes: readonly NodeRunbook[], kube: Kube | undefined, options: UpgradeOptions, ctx: PlanContext): PlanStep[] {
  const hosts = nodes.map((n) => n.host);
  const rb = suffix.startsWith('rb');
  return [
    ...reachabilityGates(suffix, hosts, options.down_timeout, options.up_timeout, ctx, options.gate_interval),
    ...serviceGates(suffix, nodes, kube, options, ctx, (id, host) => `${id}-${host}${rb ? '-rb' : ''}`),
  ];
}

function rollbackSteps(node: NodeRunbook, kube: Kube | undefined, options: UpgradeOptions, ctx: PlanContext): PlanStep[] {
  const host = ctx.inventory.hosts.get(node.host);
  if (!host) return [];
  const activate = activateCommand(beDriverFor(host), options.boot_environment);
  return [
    execStep({ id: `rb-activate-${node.host}`, hosts: [node.host], argv: activate.argv, asRoot: true, timeoutMs: ctx.defaults.commandTimeoutMs, description: `roll back: boot ${options.boot_environment} next: sudo ${showArgv(activate.argv)}` }),
    execStep({ id: `rb-reboot-${node.host}`, hosts: [node.host], argv: node.reboot, asRoot: true, timeoutMs: ctx.defaults.commandTimeoutMs, description: `roll back: reboot: sudo ${showArgv(node.reboot)}` }),
    ...healthGates(`rb-${node.host}`, [node], kube, options, ctx).map((s) => ({ ...s, subject: node.host })),
    execStep({ id: `rb-version-${node.host}`, hosts: [node.host], argv: node.version, asRoot: false, timeoutMs: ctx.defaults.commandTimeoutMs, description: `version after the rollback: ${showArgv(node.version)}` }),
  ];
}

/** One batch of the runbook for `hosts`. `tag` keeps step ids unique across batches. */
export function upgradeBatch(tag: string, hosts: readonly string[], kube: Kube | undefined, options: UpgradeOptions, ctx: PlanContext): PlanBatch {
  const controlPlanes = controlPlaneHosts(ctx, options.control_plane);
  const nodes = hosts.map((h) => nodeRunbook(ctx, h, controlPlanes));
  const k8s = nodes.filter((n) => n.k8sNode !== undefined);
  if (k8s.length > 0 && !kube) throw new ToolInputError('control_plane', 'Kubernetes nodes are in the roll but no control-plane host resolves');
  const steps: PlanStep[] = [];
  steps.push(...stepsByArgv(`version-before-${tag}`, nodes, (n) => n.version, false, ctx.defaults.commandTimeoutMs, 'version before'));
  for (const n of k8s) {
    if (!kube) break;
    const nodeName = n.k8sNode ?? n.host;
    const uncordon = execStep({ id: `uncordon-${n.host}-rb`, hosts: [kube.host], argv: [...kube.kubectl, 'uncordon', '--', nodeName], asRoot: kube.asRoot, timeoutMs: ctx.defaults.commandTimeoutMs, description: `put ${nodeName} back in service: kubectl uncordon ${nodeName}` });
    steps.push({
      ...execStep({
        id: `drain-${n.host}`,
        hosts: [kube.host],
        argv: [...kube.kubectl, 'drain', '--ignore-daemonsets', '--delete-emptydir-data', `--timeout=${Math.round(options.drain_timeout / 1000)}s`, '--', nodeName],
        asRoot: kube.asRoot,
        timeoutMs: options.drain_timeout + KUBECTL_MARGIN_MS,
      }),
      subject: n.host,
      onFailure: [{ ...uncordon, subject: n.host }],
    });
  }
  for (const n of nodes) {
    const host = ctx.inventory.hosts.get(n.host);
    if (!host) continue;
    const create = createCommand(beDriverFor(host), options.boot_environment);
    steps.push({
      ...execStep({ id: `be-${n.host}`, hosts: [n.host], argv: create.argv, asRoot: true, timeoutMs: ctx.defaults.commandTimeoutMs, description: `boot environment ${options.boot_environment}: ${create.description ?? `sudo ${showArgv(create.argv)}`}` }),
      subject: n.host,
      onFailure: rollbackSteps(n, kube, options, ctx),
    });
  }
  steps.push(...stepsByArgv(`upgrade-${tag}`, nodes, (n) => n.upgrade, true, options.upgrade_timeout, 'upgrade packages'));
  steps.push(...stepsByArgv(`reboot-${tag}`, nodes, (n) => n.reboot, true, ctx.defaults.commandTimeoutMs, 'reboot'));
  steps.push(...healthGates(tag, nodes, kube, options, ctx));
  steps.push(...stepsByArgv(`version-after-${tag}`, nodes, (n) => n.version, false, ctx.defaults.commandTimeoutMs, 'version after'));
  for (const n of k8s) {
    if (!kube) break;
    const nodeName = n.k8sNode ?? n.host;
    steps.push({ ...execStep({ id: `uncordon-${n.host}`, hosts: [kube.host], argv: [...kube.kubectl, 'uncordon', '--', nodeName], asRoot: kube.asRoot, timeoutMs: ctx.defaults.commandTimeoutMs }), subject: n.host });
  }
  return { steps };
}

/** kubectl's host, resolved only when some node of the roll is a Kubernetes node. */
export function kubeFor(hosts: readonly string[], options: UpgradeOptions, ctx: PlanContext): Kube | undefined {
  if (!hosts.some((h) => nodeRunbook(ctx, h).k8sNode !== undefined)) return undefined;
  const { host, kubectl } = kubectlOn({ control_plane: options.control_plane }, ctx);
  return {
    host,
    kubectl,
    asRoot: options.kubectl_as_root,
    checkInput: { control_plane: host, as_root: options.kubectl_as_root },
  };
}

/** Rolling batches of the runbook over `hosts`; `prefix` tags the batch ids (b1, g1, …). */
export function upgradeBatches(prefix: string, hosts: readonly string[], options: UpgradeOptions, ctx: PlanContext): PlanBatch[] {
  const kube = kubeFor(hosts, options, ctx);
  return rollingBatches(hosts, options.batch_size).map((batch, i) => upgradeBatch(`${prefix}${i + 1}`, batch, kube, options, ctx));
}

// --- the per-node report --------------------------------------------------------------------

export interface NodeReport {
  node: string;
  old_version: string | null;
  new_version: string | null;
  boot_environment: string | null;
  outcome: 'upgraded' | 'rolled_back' | 'rollback_failed' | 'failed' | 'not_run';
  /** The step where it failed, and why. */
  failed_at?: string | undefined;
  reason?: string | undefined;
}

export const nodeReportSchema = z.object({
  node: z.string(),
  old_version: z.string().nullable(),
  new_version: z.string().nullable(),
  boot_environment: z.string().nullable(),
  outcome: z.enum(['upgraded', 'rolled_back', 'rollback_failed', 'failed', 'not_run']),
  failed_at: z.string().optional(),
  reason: z.string().optional(),
});

const OUTCOME_WORDS = { upgraded: 'upgraded', rolled_back: 'rolled back', rollback_failed: 'ROLLBACK FAILED', failed: 'failed', not_run: 'not run' } as const;

/** Per node: outcome · old → new version · boot environment · where and why it failed; alike nodes fold. */
export const upgradeView: ResultViewDefinition<{ nodes: NodeReport[] }, NodeReport> = {
  columns: [
    {
      label: 'outcome',
      cell: (n) => OUTCOME_WORDS[n.outcome],
      tone: (n) => (n.outcome === 'upgraded' ? 'ok' : n.outcome === 'not_run' || n.outcome === 'rolled_back' ? 'warn' : 'bad'),
    },
    { label: 'version', cell: (n) => (n.old_version === null && n.new_version === null ? '' : `${n.old_version ?? '?'} → ${n.new_version ?? '?'}`) },
    { label: 'boot environment', cell: (n) => n.boot_environment ?? '' },
    { label: 'failed at', cell: (n) => [n.failed_at, n.reason].filter(Boolean).join(': ') },
  ],
  rows: (data) => data.nodes.map((n) => ({ host: n.node, row: n })),
  summary(data) {
    const counts = new Map<string, number>();
    for (const n of data.nodes) counts.set(OUTCOME_WORDS[n.outcome], (counts.get(OUTCOME_WORDS[n.outcome]) ?? 0) + 1);
    return [...counts].map(([word, n]) => `${n} ${word}`).join(', ') || 'no nodes';
  },
};

function stdoutOf(results: StepResults, prefix: string, host: string): string | null {
  for (const [id, byHost] of results) {
    if (id !== prefix && !id.startsWith(`${prefix}-`)) continue;
    const r = byHost.get(host);
    if (r?.status === 'ok') return r.stdout.trim().split('\n')[0] ?? '';
  }
  return null;
}

function rollbackIds(host: string): (id: string) => boolean {
  const exact = new Set([`rb-activate-${host}`, `rb-reboot-${host}`, `rb-version-${host}`, `down-rb-${host}`, `up-rb-${host}`, `ready-${host}-rb`, `wg-${host}-rb`, `etcd-${host}-rb`]);
  return (id) => exact.has(id) || id.startsWith(`units-rb-${host}-`);
}

/** The result a step has for `host`: its own, or, for a step about the host run elsewhere (kubectl), that run's. */
function resultOf(results: StepResults, subjects: ReadonlyMap<string, string>, id: string, host: string) {
  const byHost = results.get(id);
  if (!byHost) return undefined;
  const subject = subjects.get(id);
  if (subject !== undefined) return subject === host ? [...byHost.values()][0] : undefined;
  return byHost.get(host);
}

/** Step id → the subject it is about, for steps that have one (on-failure steps included). */
export function stepSubjects(batches: readonly PlanBatch[]): Map<string, string> {
  const subjects = new Map<string, string>();
  const visit = (step: PlanStep): void => {
    if (step.subject !== undefined) subjects.set(step.id, step.subject);
    for (const r of step.onFailure ?? []) visit(r);
  };
  for (const b of batches) for (const step of b.steps) visit(step);
  return subjects;
}

/** Old/new version, boot environment, outcome and rollback per node, from the steps' results. */
export function nodeReports(hosts: readonly string[], batchTags: ReadonlyMap<string, string>, subjects: ReadonlyMap<string, string>, options: UpgradeOptions, results: StepResults): NodeReport[] {
  return hosts.map((host) => {
    const tag = batchTags.get(host) ?? '';
    const isRollback = rollbackIds(host);
    const ran = [...results.keys()].flatMap((id) => {
      const r = resultOf(results, subjects, id, host);
      return r ? [{ id, r }] : [];
    });
    const forward = ran.filter(({ id }) => !isRollback(id) && id !== `uncordon-${host}-rb`);
    const rollback = ran.filter(({ id }) => isRollback(id));
    const firstFailure = forward.find(({ r }) => r.status !== 'ok' && r.status !== 'skipped');
    let outcome: NodeReport['outcome'];
    if (rollback.length > 0) outcome = rollback.every(({ r }) => r.status === 'ok') ? 'rolled_back' : 'rollback_failed';
    else if (firstFailure) outcome = 'failed';
    else if (stdoutOf(results, `version-after-${tag}`, host) !== null) outcome = 'upgraded';
    else outcome = forward.every(({ r }) => r.status === 'skipped') ? 'not_run' : 'failed';
    const be = results.get(`be-${host}`)?.get(host);
    return {
      node: host,
      old_version: stdoutOf(results, `version-before-${tag}`, host),
      new_version: stdoutOf(results, `version-after-${tag}`, host) ?? stdoutOf(results, `rb-version-${host}`, host),
      boot_environment: be?.status === 'ok' ? options.boot_environment : null,
      outcome,
      ...(firstFailure ? { failed_at: firstFailure.id, reason: firstFailure.r.error ?? firstFailure.r.status } : {}),
    };
  });
}

/** Host → batch tag, for reading the report back. */
export function batchTags(prefix: string, hosts: readonly string[], size: UpgradeOptions['batch_size']): Map<string, string> {
  const tags = new Map<string, string>();
  rollingBatches(hosts, size).forEach((batch, i) => {
    for (const h of batch) tags.set(h, `${prefix}${i + 1}`);
  });
  return tags;
}
