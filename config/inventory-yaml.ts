// Ansible YAML inventories as operators keep them:
//   all: { hosts: {name: {vars}}, vars: {...}, children: { group: { hosts, vars, children } } }
// Top-level keys are groups (usually just `all`). Anything else under a group is an error,
// not a warning: `host:` instead of `hosts:` would otherwise silently drop machines.
import { describe } from './describe.js';
import { expandAnsibleHosts, InventoryError, type InventoryBuilder, type Origin, type Vars } from './inventory-builder.js';
import { didYouMean } from './suggest.js';
import { parseYamlTree, type YamlTree } from './yaml-tree.js';

const GROUP_KEYS = ['hosts', 'vars', 'children'];

export function readYamlInventory(text: string, source: string, builder: InventoryBuilder): void {
  readYamlTree(parseYamlTree(text), source, builder);
}

/** An inventory's YAML, already parsed (possibly off the event loop: config/yaml-tree.ts). */
export function readYamlTree(tree: YamlTree, source: string, builder: InventoryBuilder): void {
  if (!tree.ok) {
    throw new InventoryError(source, tree.line ? `line ${tree.line}, column ${tree.col}` : '', `invalid YAML: ${tree.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`);
  }
  const root = tree.root;
  if (root === null || root === undefined) return;
  if (!(root instanceof Map)) throw new InventoryError(source, '', `expected a mapping of groups (all: ...), found ${describe(root)}`);
  for (const [name, node] of root) readGroup(String(name), node, { source, path: String(name) }, builder);
}

function readGroup(name: string, node: unknown, at: Origin, builder: InventoryBuilder): void {
  builder.group(name, at);
  if (node === null || node === undefined) return;
  if (!(node instanceof Map)) throw new InventoryError(at.source, at.path, `expected a group (hosts, vars, children), found ${describe(node)}`);
  for (const [rawKey, value] of node) {
    const key = String(rawKey);
    const here: Origin = { source: at.source, path: `${at.path}.${key}` };
    if (key === 'hosts') readHosts(name, value, here, builder);
    else if (key === 'vars') builder.groupVars(name, toVars(value, here), here);
    else if (key === 'children') readChildren(name, value, here, builder);
    else throw new InventoryError(at.source, here.path, `unknown key in group '${name}' (expected hosts, vars or children)${didYouMean(key, GROUP_KEYS)}`);
  }
}

function readHosts(group: string, value: unknown, at: Origin, builder: InventoryBuilder): void {
  if (value === null || value === undefined) return;
  if (!(value instanceof Map)) {
    throw new InventoryError(at.source, at.path, `expected a mapping of host names to their vars (fenn: or fenn: {ansible_host: ...}), found ${describe(value)}`);
  }
  for (const [rawName, vars] of value) {
    const here: Origin = { source: at.source, path: `${at.path}.${String(rawName)}` };
    const hostVars = toVars(vars, here);
    for (const name of expandAnsibleHosts(String(rawName), here)) builder.host(group, name, hostVars, here);
  }
}

function readChildren(parent: string, value: unknown, at: Origin, builder: InventoryBuilder): void {
  if (value === null || value === undefined) return;
  if (!(value instanceof Map)) throw new InventoryError(at.source, at.path, `expected a mapping of child groups, found ${describe(value)}`);
  for (const [rawName, node] of value) {
    const name = String(rawName);
    const here: Origin = { source: at.source, path: `${at.path}.${name}` };
    builder.child(parent, name, here);
    readGroup(name, node, here, builder);
  }
}

function toVars(value: unknown, at: Origin): Vars {
  if (value === null || value === undefined) return {};
  if (!(value instanceof Map)) throw new InventoryError(at.source, at.path, `expected a mapping of variables, found ${describe(value)}`);
  return plain(value) as Vars;
}

/** Maps (kept for key order above) back to plain objects for vars. */
function plain(value: unknown): unknown {
  if (value instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of value) out[String(k)] = plain(v);
    return out;
  }
  if (Array.isArray(value)) return value.map(plain);
  return value;
}
