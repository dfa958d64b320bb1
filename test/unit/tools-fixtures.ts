// Shared by the tools-* unit tests: a small hand-built inventory (independent of config/
// loaders that are written in parallel) and a PlanContext whose resolver does plain name,
// group and comma-union lookups.
import type { Host, Inventory } from '../../config/types.js';
import type { HostResult, HostStatus } from '../../tools/host-result.js';
import { InvalidInputError, validateInput, type AnyTool } from '../../tools/registry.js';
import type { Plan, PlanContext, StepResults } from '../../tools/types.js';
import { ToolInputError } from '../../tools/types.js';

function host(name: string, groups: string[], labels: Record<string, string> = {}, vars: Record<string, unknown> = {}): Host {
  return { name, address: `10.0.0.${name.length}${name.charCodeAt(0) % 10}`, port: 22, user: undefined, privateKeyFile: undefined, groups: ['all', ...groups], labels, vars };
}

const hosts = [
  host('cp1', ['k8s_cluster', 'k8s_control_plane'], { role: 'k8s-control-plane' }),
  host('cp2', ['k8s_cluster', 'k8s_control_plane'], { role: 'k8s-control-plane' }, { castellan_kubeconfig: '/etc/kubernetes/admin.conf' }),
  host('node01', ['k8s_cluster', 'k8s_worker', 'web'], { role: 'k8s-worker', rack: 'left' }),
  host('node02', ['k8s_cluster', 'k8s_worker', 'web'], { role: 'k8s-worker', rack: 'left' }),
  host('node03', ['k8s_cluster', 'k8s_worker'], { role: 'k8s-worker', rack: 'right' }),
  host('node04', ['k8s_cluster', 'k8s_worker'], { role: 'k8s-worker', rack: 'right' }),
  host('storage1', ['nfs_server'], { role: 'storage' }),
];

function groupOf(name: string): string[] {
  return hosts.filter((h) => h.groups.includes(name)).map((h) => h.name);
}

export const inventory: Inventory = {
  sources: ['test-inventory.yaml'],
  hosts: new Map(hosts.map((h) => [h.name, h])),
  groups: new Map(['all', 'k8s_cluster', 'k8s_control_plane', 'k8s_worker', 'web', 'nfs_server'].map((g) => [g, groupOf(g)])),
  children: new Map([
    ['all', ['k8s_cluster', 'nfs_server']],
    ['k8s_cluster', ['k8s_control_plane', 'k8s_worker']],
  ]),
};

/** Names, groups and `a,b` unions; anything else is an unknown target. */
export function resolve(expression: string): string[] {
  const out: string[] = [];
  for (const part of expression.split(',')) {
    const names = inventory.groups.get(part) ?? (inventory.hosts.has(part) ? [part] : undefined);
    if (!names) throw new Error(`unknown host or group '${part}'`);
    for (const name of names) if (!out.includes(name)) out.push(name);
  }
  return out;
}

export const ctx: PlanContext = {
  inventory,
  resolve,
  defaults: { commandTimeoutMs: 60_000, connectTimeoutMs: 10_000 },
  localRoot: '/srv/castellan/files',
  playbooks: { motd: { path: '/srv/castellan/playbooks/motd.yml', risk: 'change', description: 'Write /etc/motd', tags: undefined, extraVars: {} } },
};

export function hostResult(host: string, stdout: string, status: HostStatus = 'ok', extra: Partial<HostResult> = {}): HostResult {
  return {
    host,
    status,
    exitCode: status === 'ok' ? 0 : status === 'failed' ? 1 : null,
    signal: null,
    stdout,
    stderr: '',
    truncated: false,
    startedAt: '2025-06-01T12:00:00.000Z',
    durationMs: 42,
    connectMs: 12,
    ...extra,
  };
}

/** Results of one step, keyed like the job runner hands them to summarize. */
export function stepResults(stepId: string, results: HostResult[]): StepResults {
  return new Map([[stepId, new Map(results.map((r) => [r.host, r]))]]);
}

/** Validate and plan in one go, as the job service does (tests only; it wraps errors for its callers). */
export function planFor(tool: AnyTool, raw: unknown, ctx: PlanContext): Plan {
  if (!tool.plan) throw new ToolInputError('tool', `${tool.name} answers from the inventory and has no plan`);
  const validated = validateInput(tool, raw);
  if (!validated.ok) throw new InvalidInputError(validated.issues);
  return tool.plan(validated.input, ctx);
}

/** Validate and answer an inventory-only tool (tests only). */
export function answerFor(tool: AnyTool, raw: unknown, ctx: PlanContext): unknown {
  if (!tool.answer) throw new ToolInputError('tool', `${tool.name} runs on hosts`);
  const validated = validateInput(tool, raw);
  if (!validated.ok) throw new InvalidInputError(validated.issues);
  return tool.answer(validated.input, ctx);
}
