// Loading inventories: one or several Ansible files (YAML or INI, told apart by extension or
// content), merged in order into the Inventory contract of config/types.ts. See
// inventory-builder.ts for the merge and precedence rules.
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { InventoryBuilder, InventoryError, type BuildOptions } from './inventory-builder.js';
import { readIniInventory } from './inventory-ini.js';
import { readYamlInventory, readYamlTree } from './inventory-yaml.js';
import { parseYamlTreeSized } from './yaml-tree.js';
import type { Inventory } from './types.js';

export { InventoryError } from './inventory-builder.js';
export interface InventoryOptions extends BuildOptions {
  /** Parse large YAML files in a worker thread (long-lived processes: config/yaml-tree.ts). */
  readonly offThread?: boolean;
}

/** Read and merge inventory files (later files add hosts, groups and override vars). */
export async function loadInventory(paths: readonly string[], options: InventoryOptions = {}): Promise<Inventory> {
  if (paths.length === 0) throw new InventoryError('inventory', '', 'no inventory file given');
  const builder = new InventoryBuilder();
  for (const path of paths) {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      throw new InventoryError(path, '', `cannot read inventory file (${code})`);
    }
    builder.addSource(path);
    if (looksLikeIni(text, path)) readIniInventory(text, path, builder);
    else readYamlTree(await parseYamlTreeSized(text, options.offThread ?? false), path, builder);
  }
  return builder.build(options);
}

/** One inventory from text; `sourceName` names it in errors and decides the format. */
export function parseInventory(text: string, sourceName: string, options: InventoryOptions = {}): Inventory {
  const builder = new InventoryBuilder();
  readInto(builder, text, sourceName);
  return builder.build(options);
}

function readInto(builder: InventoryBuilder, text: string, source: string): void {
  builder.addSource(source);
  if (looksLikeIni(text, source)) readIniInventory(text, source, builder);
  else readYamlInventory(text, source, builder);
}

/** `.ini`/`.cfg` is INI, `.yaml`/`.yml`/`.json` is YAML; otherwise (e.g. `hosts`) sniff. */
function looksLikeIni(text: string, source: string): boolean {
  const ext = extname(source).toLowerCase();
  if (ext === '.ini' || ext === '.cfg') return true;
  if (ext === '.yaml' || ext === '.yml' || ext === '.json') return false;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';') || line === '---') continue;
    // The first meaningful line: a `[section]` header or `host key=value` is INI; `key:` is YAML.
    return /^\[[^\]]+\]$/.test(line) || !/^[^\s=]+:(\s|$)/.test(line);
  }
  return false;
}
