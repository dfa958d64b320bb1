// The shared middle of the YAML and INI inventory readers: both describe groups, hosts,
// children and vars; this collects them across files and builds the Inventory contract with
// Ansible's rules (nested groups, var precedence) plus Castellan's (labels, strict names).
import { homedir } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { describe } from './describe.js';
import type { Host, Inventory } from './types.js';

export class InventoryError extends Error {
  constructor(
    /** The inventory file (or source name) at fault. */
    readonly source: string,
    /** Where in it: `all.children.k8s_worker.hosts.fenn` or `line 12`. */
    readonly path: string,
    problem: string,
  ) {
    super(path === '' ? `${source}: ${problem}` : `${source}: ${path}: ${problem}`);
    this.name = 'InventoryError';
  }
}

/** Where a definition came from, for error messages and relative key files. */
export interface Origin {
  readonly source: string;
  readonly path: string;
}

export type Vars = Record<string, unknown>;

/** Letters, digits, dot, underscore, dash: what target expressions can name. */
const NAME = /^[A-Za-z0-9_.][A-Za-z0-9._-]*$/;
const LABEL = /^[A-Za-z0-9_.][A-Za-z0-9._-]*$/;
const KEY_FILE_VARS = ['ansible_ssh_private_key_file', 'ansible_private_key_file'];
const STRING_VARS = ['ansible_host', 'ansible_ssh_host', 'ansible_user', 'ansible_ssh_user', ...KEY_FILE_VARS];
const PORT_VARS = ['ansible_port', 'ansible_ssh_port'];
const LABELS_VAR = 'castellan_labels';

interface GroupDraft {
  readonly name: string;
  readonly order: number;
  readonly origin: Origin;
  readonly hosts: Set<string>;
  readonly children: Set<string>;
  readonly vars: Vars;
  readonly labels: Record<string, string>;
}

interface HostDraft {
  readonly name: string;
  readonly origin: Origin;
  readonly vars: Vars;
  readonly labels: Record<string, string>;
}

export interface BuildOptions {
  /** Port for hosts without ansible_port (the config's ssh.port). */
  readonly defaultPort?: number;
}

export class InventoryBuilder {
  private readonly groups = new Map<string, GroupDraft>();
  private readonly hosts = new Map<string, HostDraft>();
  private readonly sources: string[] = [];

  addSource(source: string): void {
    if (!this.sources.includes(source)) this.sources.push(source);
  }

  group(name: string, origin: Origin): void {
    checkName(name, 'group', origin);
    if (!this.groups.has(name)) {
      this.groups.set(name, { name, order: this.groups.size, origin, hosts: new Set(), children: new Set(), vars: {}, labels: {} });
    }
  }

  /** A host line or key; `vars` are host vars (later definitions win, key by key). */
  host(groupName: string, name: string, vars: Vars, origin: Origin): void {
    checkName(name, 'host', origin);
    this.group(groupName, origin);
    this.groups.get(groupName)!.hosts.add(name);
    let host = this.hosts.get(name);
    if (!host) this.hosts.set(name, (host = { name, origin, vars: {}, labels: {} }));
    assignVars(host.vars, host.labels, vars, origin);
  }

  child(parent: string, child: string, origin: Origin): void {
    this.group(parent, origin);
    this.group(child, origin);
    if (parent === child) throw new InventoryError(origin.source, origin.path, `group '${child}' cannot be its own child`);
    if (child === 'all') throw new InventoryError(origin.source, origin.path, `'all' cannot be a child group`);
    this.groups.get(parent)!.children.add(child);
  }

  groupVars(name: string, vars: Vars, origin: Origin): void {
    this.group(name, origin);
    const group = this.groups.get(name)!;
    assignVars(group.vars, group.labels, vars, origin);
  }

  build(options: BuildOptions = {}): Inventory {
    if (!this.groups.has('all')) this.group('all', { source: this.sources[0] ?? 'inventory', path: '' });
    this.checkCollisions();
    const parents = this.parentsOf();
    this.checkCycles();
    // Ansible: every group without another parent is a child of `all`; hosts in no group
    // other than `all` form `ungrouped`.
    const all = this.groups.get('all')!;
    for (const group of this.groups.values()) {
      if (group.name !== 'all' && (parents.get(group.name)?.length ?? 0) === 0) all.children.add(group.name);
    }
    const members = this.recursiveMembers();
    const ungrouped = [...this.hosts.keys()].filter((h) => ![...this.groups.values()].some((g) => g.name !== 'all' && members.get(g.name)!.has(h)));
    if (ungrouped.length > 0 && !this.groups.has('ungrouped')) {
      this.groups.set('ungrouped', { name: 'ungrouped', order: this.groups.size, origin: all.origin, hosts: new Set(ungrouped), children: new Set(), vars: {}, labels: {} });
      all.children.add('ungrouped');
      members.set('ungrouped', new Set(ungrouped));
      parents.set('ungrouped', ['all']);
    }
    const depth = this.depths(parents);
    const hostOrder = [...this.hosts.keys()];
    const groupOrder = [...this.groups.values()].sort((a, b) => a.order - b.order).map((g) => g.name);
    // `all` is first in every host's list, as in Ansible's group_names plus all.
    groupOrder.splice(groupOrder.indexOf('all'), 1);
    groupOrder.unshift('all');

    const hosts = new Map<string, Host>();
    for (const draft of this.hosts.values()) {
      const groupNames = groupOrder.filter((g) => g === 'all' || members.get(g)!.has(draft.name));
      // Ansible precedence: shallow groups first, then by ansible_group_priority, then name;
      // host vars last. Labels merge key by key in the same order (Castellan's choice: a host
      // label adds to its group's labels instead of replacing them all).
      const ordered = groupNames
        .map((g) => this.groups.get(g)!)
        .sort((a, b) => depth.get(a.name)! - depth.get(b.name)! || priority(a) - priority(b) || (a.name < b.name ? -1 : 1));
      const vars: Vars = {};
      const labels: Record<string, string> = {};
      for (const g of ordered) {
        Object.assign(vars, g.vars);
        Object.assign(labels, g.labels);
      }
      Object.assign(vars, draft.vars);
      Object.assign(labels, draft.labels);
      hosts.set(draft.name, {
        name: draft.name,
        address: str(vars.ansible_host) ?? str(vars.ansible_ssh_host) ?? draft.name,
        port: num(vars.ansible_port) ?? num(vars.ansible_ssh_port) ?? options.defaultPort ?? 22,
        user: str(vars.ansible_user) ?? str(vars.ansible_ssh_user),
        privateKeyFile: str(vars.ansible_ssh_private_key_file) ?? str(vars.ansible_private_key_file),
        groups: groupNames,
        labels: Object.freeze(labels),
        vars: Object.freeze(vars),
      });
    }
    const indexOf = new Map(hostOrder.map((h, i) => [h, i]));
    const groups = new Map<string, readonly string[]>();
    const children = new Map<string, readonly string[]>();
    for (const name of groupOrder) {
      const set = name === 'all' ? hostOrder : [...members.get(name)!].sort((a, b) => indexOf.get(a)! - indexOf.get(b)!);
      groups.set(name, set);
      const kids = [...this.groups.get(name)!.children].sort((a, b) => this.groups.get(a)!.order - this.groups.get(b)!.order);
      children.set(name, kids);
    }
    return { sources: [...this.sources], hosts, groups, children };
  }

  private parentsOf(): Map<string, string[]> {
    const parents = new Map<string, string[]>();
    for (const g of this.groups.values()) {
      for (const child of g.children) parents.set(child, [...(parents.get(child) ?? []), g.name]);
    }
    return parents;
  }

  private checkCollisions(): void {
    for (const group of this.groups.values()) {
      const host = this.hosts.get(group.name);
      if (host) {
        throw new InventoryError(
          host.origin.source,
          host.origin.path,
          `'${group.name}' is both a host and a group (group defined at ${group.origin.source}: ${group.origin.path || 'top level'}); rename one so targets are unambiguous`,
        );
      }
    }
  }

  private checkCycles(): void {
    const state = new Map<string, 'visiting' | 'done'>();
    const visit = (name: string, trail: string[]): void => {
      if (state.get(name) === 'done') return;
      if (state.get(name) === 'visiting') {
        const group = this.groups.get(name)!;
        throw new InventoryError(group.origin.source, group.origin.path, `group cycle: ${[...trail.slice(trail.indexOf(name)), name].join(' -> ')}`);
      }
      state.set(name, 'visiting');
      for (const child of this.groups.get(name)!.children) visit(child, [...trail, name]);
      state.set(name, 'done');
    };
    for (const name of this.groups.keys()) visit(name, []);
  }

  private recursiveMembers(): Map<string, Set<string>> {
    const memo = new Map<string, Set<string>>();
    const collect = (name: string): Set<string> => {
      const known = memo.get(name);
      if (known) return known;
      const group = this.groups.get(name)!;
      const set = new Set(group.hosts);
      for (const child of group.children) for (const h of collect(child)) set.add(h);
      memo.set(name, set);
      return set;
    };
    for (const name of this.groups.keys()) collect(name);
    memo.set('all', new Set(this.hosts.keys()));
    return memo;
  }

  /** Longest path from `all`, as Ansible computes group depth. */
  private depths(parents: Map<string, string[]>): Map<string, number> {
    const depth = new Map<string, number>([['all', 0]]);
    const of = (name: string): number => {
      const known = depth.get(name);
      if (known !== undefined) return known;
      const ps = parents.get(name) ?? ['all'];
      const d = 1 + Math.max(...ps.map(of));
      depth.set(name, d);
      return d;
    };
    for (const name of this.groups.keys()) of(name);
    return depth;
  }
}

function priority(group: GroupDraft): number {
  return num(group.vars.ansible_group_priority) ?? 1;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function num(value: unknown): number | undefined {
  return typeof value === 'number' ? value : undefined;
}

function checkName(name: string, kind: 'host' | 'group', origin: Origin): void {
  if (!NAME.test(name)) {
    throw new InventoryError(
      origin.source,
      origin.path,
      `${kind} name ${JSON.stringify(name)} cannot be used in target expressions (use letters, digits, '.', '_' and '-', not starting with '-')`,
    );
  }
}

/**
 * Copy vars in, validating the ones Castellan acts on where they are written, so an error
 * names the exact file and key. Key files are made absolute against the inventory file's
 * directory (with `~` expanded) at this point, since a merged var no longer knows its file.
 */
function assignVars(target: Vars, labels: Record<string, string>, vars: Vars, origin: Origin): void {
  for (const [key, raw] of Object.entries(vars)) {
    const at: Origin = { source: origin.source, path: origin.path === '' ? key : `${origin.path}.${key}` };
    let value = raw;
    if (typeof value === 'string' && value.includes('{{')) {
      if ([...STRING_VARS, ...PORT_VARS, LABELS_VAR].includes(key)) {
        throw new InventoryError(at.source, at.path, 'Jinja templates are not evaluated by Castellan; write the literal value');
      }
    }
    if (STRING_VARS.includes(key)) {
      if (typeof value !== 'string' || value === '') throw new InventoryError(at.source, at.path, `expected a non-empty string, found ${describe(value)}`);
      if (KEY_FILE_VARS.includes(key)) value = resolveKeyFile(value, origin.source);
    } else if (PORT_VARS.includes(key)) {
      const port = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
      if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
        throw new InventoryError(at.source, at.path, `expected a port number 1-65535, found ${describe(value)}`);
      }
      value = port;
    } else if (key === LABELS_VAR) {
      Object.assign(labels, readLabels(value, at));
    }
    target[key] = value;
  }
}

function readLabels(value: unknown, at: Origin): Record<string, string> {
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new InventoryError(at.source, at.path, `expected a mapping of label names to values (role: storage), found ${describe(value)}`);
  }
  const labels: Record<string, string> = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    const text = typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined;
    if (!LABEL.test(key)) throw new InventoryError(at.source, `${at.path}.${key}`, `label name must use letters, digits, '.', '_' and '-'`);
    if (text === undefined || !LABEL.test(text)) {
      throw new InventoryError(at.source, `${at.path}.${key}`, `label value must be a word of letters, digits, '.', '_' and '-', found ${describe(v)}`);
    }
    labels[key] = text;
  }
  return labels;
}

function resolveKeyFile(file: string, source: string): string {
  if (file === '~' || file.startsWith('~/')) return resolve(homedir(), file.slice(2));
  if (isAbsolute(file)) return file;
  return resolve(dirname(resolve(source)), file);
}

// ---------------------------------------------------------------------------------------------
// Ansible host ranges: `node[01:09]`, `db-[a:f]`, `www[1:10:2]` (inclusive, padding from start).

const ANSIBLE_RANGE = /\[([0-9a-z]+):([0-9a-z]+)(?::(\d+))?\]/i;

/** Expand every `[start:end(:step)]` in an Ansible host pattern (at most 100,000 names). */
export function expandAnsibleHosts(pattern: string, origin: Origin): string[] {
  const match = ANSIBLE_RANGE.exec(pattern);
  if (!match) {
    if (/[[\]]/.test(pattern)) throw new InventoryError(origin.source, origin.path, `bad host range in '${pattern}' (Ansible writes node[01:09])`);
    return [pattern];
  }
  const [whole, start = '', end = '', stepText] = match;
  const head = pattern.slice(0, match.index);
  const rest = pattern.slice(match.index + whole.length);
  const step = stepText === undefined ? 1 : Number(stepText);
  const values: string[] = [];
  const numeric = /^\d+$/.test(start) && /^\d+$/.test(end);
  const alpha = /^[a-z]$/i.test(start) && /^[a-z]$/i.test(end);
  if (!numeric && !alpha) throw new InventoryError(origin.source, origin.path, `bad host range '${whole}' (numbers or single letters)`);
  const from = numeric ? Number(start) : start.charCodeAt(0);
  const to = numeric ? Number(end) : end.charCodeAt(0);
  if (to < from || step < 1) throw new InventoryError(origin.source, origin.path, `bad host range '${whole}'`);
  if ((to - from) / step > 100_000) throw new InventoryError(origin.source, origin.path, `host range '${whole}' is too large`);
  const width = numeric && start.startsWith('0') ? start.length : 1;
  for (let n = from; n <= to; n += step) values.push(numeric ? String(n).padStart(width, '0') : String.fromCharCode(n));
  return values.flatMap((v) => expandAnsibleHosts(`${head}${v}${rest}`, origin));
}
