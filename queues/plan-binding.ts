// What an approval is bound to, beyond the plan's own steps: where each host really is (the
// resolved address, port and login user, the key file Castellan logs in with, the host keys
// pinned for it) and the content of every local file an upload sends. The plan already holds
// argv and stdin/script text byte for byte. An approver approves the hash of both; the
// worker recomputes both just before it runs and refuses, naming each difference, when
// anything moved (an inventory edit of ansible_host, a re-pinned key, an edited upload).
import { createHash } from 'node:crypto';
import type { Inventory } from '../config/types.js';
import type { Plan } from '../tools/types.js';
import { walkPlan } from '../tools/steps/walk.js';
import type { SshTarget } from './execution.js';
import { canonicalJson } from '../config/canonical-json.js';

export interface HostBinding {
  readonly address: string;
  readonly port: number;
  readonly user: string;
  /** The private key file (absent: the ssh-agent). */
  readonly keyFile: string | null;
  /** Fingerprints of the keys pinned for this host (sorted; empty: none pinned, it will be refused). */
  readonly hostKeys: readonly string[];
}

export interface PlanBinding {
  readonly hosts: Readonly<Record<string, HostBinding>>;
  /** sha256 of each uploaded local file's content, by path (`missing` when it cannot be read). */
  readonly files: Readonly<Record<string, string>>;
}

/** The I/O a binding needs, provided by the executor (src/ssh): pinned keys and file digests. */
export interface BindingSource {
  pinnedFingerprints(target: SshTarget): Promise<string[]>;
  /** The same for many targets, known_hosts checked once (optional: else one lookup per target). */
  pinnedFingerprintsOf?(targets: readonly SshTarget[]): Promise<string[][]>;
  fileDigest(path: string): Promise<string>;
}

/** Every host the plan touches (on-failure steps and relay sources included). */
function hostsOf(plan: Plan): string[] {
  const hosts = new Set(plan.hosts);
  for (const { step } of walkPlan(plan)) {
    for (const host of step.hosts) hosts.add(host);
    if (step.action.kind === 'relay') hosts.add(step.action.fromHost);
  }
  return [...hosts];
}

function uploadsOf(plan: Plan): string[] {
  const files = new Set<string>();
  for (const { step } of walkPlan(plan)) if (step.action.kind === 'upload') files.add(step.action.localPath);
  return [...files];
}

export async function bindPlan(
  plan: Plan,
  inventory: Inventory,
  targetFor: (inventory: Inventory, host: string) => SshTarget,
  source: BindingSource,
): Promise<PlanBinding> {
  const names = hostsOf(plan);
  const targets = names.map((host) => targetFor(inventory, host));
  // One lookup per host, each checking known_hosts for changes, made binding 1000 hosts ~25 ms,
  // twice a job: all at once where the source can, else the first (it reloads the pins when
  // known_hosts changed) and then the others concurrently.
  let pinned: string[][];
  if (source.pinnedFingerprintsOf) pinned = await source.pinnedFingerprintsOf(targets);
  else {
    const first = targets[0] === undefined ? [] : [await source.pinnedFingerprints(targets[0])];
    pinned = [...first, ...(await Promise.all(targets.slice(1).map((t) => source.pinnedFingerprints(t))))];
  }
  const hosts: Record<string, HostBinding> = {};
  names.forEach((host, i) => {
    const target = targets[i]!;
    hosts[host] = {
      address: target.address,
      port: target.port,
      user: target.user,
      keyFile: target.privateKeyFile ?? null,
      hostKeys: [...(pinned[i] ?? [])].sort(),
    };
  });
  const files: Record<string, string> = {};
  for (const path of uploadsOf(plan)) files[path] = await source.fileDigest(path);
  return { hosts, files };
}

/** The hash an approval is given for: the plan's steps and where and what they run with. */
export function boundPlanHash(plan: Plan, binding: PlanBinding): string {
  return createHash('sha256').update(canonicalJson({ plan, binding })).digest('hex');
}

/**
 * What differs between the approved plan and binding and the ones built now, in words an
 * operator can check ("node01: address 10.0.0.5 → 10.0.0.9"). Empty when nothing did.
 */
export function describeChanges(approved: { plan: Plan; binding: PlanBinding | undefined }, now: { plan: Plan; binding: PlanBinding }): string[] {
  const changes: string[] = [];
  const before = new Set(approved.plan.hosts);
  const after = new Set(now.plan.hosts);
  const added = [...after].filter((h) => !before.has(h));
  const removed = [...before].filter((h) => !after.has(h));
  if (added.length) changes.push(`hosts added: ${added.join(', ')}`);
  if (removed.length) changes.push(`hosts removed: ${removed.join(', ')}`);
  if (added.length === 0 && removed.length === 0 && canonicalJson(approved.plan) !== canonicalJson(now.plan)) {
    changes.push('the steps (commands, stdin or options) differ');
  }
  const old = approved.binding;
  if (old === undefined) {
    changes.push('the approved job carries no host binding');
    return changes;
  }
  for (const [host, b] of Object.entries(now.binding.hosts)) {
    const a = old.hosts[host];
    if (a === undefined) continue;
    if (a.address !== b.address) changes.push(`${host}: address ${a.address} → ${b.address}`);
    if (a.port !== b.port) changes.push(`${host}: port ${a.port} → ${b.port}`);
    if (a.user !== b.user) changes.push(`${host}: login user ${a.user} → ${b.user}`);
    if (a.keyFile !== b.keyFile) changes.push(`${host}: key file ${a.keyFile ?? '(agent)'} → ${b.keyFile ?? '(agent)'}`);
    if (canonicalJson(a.hostKeys) !== canonicalJson(b.hostKeys)) {
      changes.push(`${host}: pinned host key ${a.hostKeys.join(' ') || '(none)'} → ${b.hostKeys.join(' ') || '(none)'}`);
    }
  }
  for (const [path, digest] of Object.entries(now.binding.files)) {
    const was = old.files[path];
    if (was !== undefined && was !== digest) changes.push(`${path}: content changed (sha256 ${was.slice(0, 12)} → ${digest.slice(0, 12)})`);
  }
  if (changes.length === 0) changes.push('the plan hash differs');
  return changes;
}
