// Checks that need no network: the config file, the inventory, pinned host keys, key files.
import { access, constants, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { loadConfig, type Config } from '../../config/load.js';
import { loadInventory } from '../../config/inventory.js';
import { foldNodeSet } from '../../config/nodeset.js';
import type { Inventory } from '../../config/types.js';
import { errorMessage } from '../../config/errors.js';
import { KnownHosts } from '../ssh/known-hosts.js';
import { fail, ok, warn, type Finding } from './finding.js';

export async function checkConfig(file: string): Promise<{ finding: Finding; config?: Config }> {
  try {
    const config = await loadConfig(file);
    return { finding: ok('config', file), config };
  } catch (err) {
    const [first, ...rest] = errorMessage(err).split('\n');
    return { finding: fail('config', first ?? 'cannot load', `edit ${file} (every key: docs/configuration.md)`, rest.map((l) => l.trim())) };
  }
}

export async function checkInventory(config: Config): Promise<{ finding: Finding; inventory?: Inventory }> {
  try {
    const inventory = await loadInventory(config.inventory, { defaultPort: config.ssh.port });
    const groups = [...inventory.groups.keys()].filter((g) => g !== 'all' && g !== 'ungrouped').length;
    if (inventory.hosts.size === 0) return { finding: warn('inventory', `no hosts in ${config.inventory.join(', ')}`, 'add hosts to the inventory (Ansible YAML or INI)'), inventory };
    return { finding: ok('inventory', `${inventory.hosts.size} host${inventory.hosts.size === 1 ? '' : 's'}, ${groups} group${groups === 1 ? '' : 's'} (${config.inventory.join(', ')})`), inventory };
  } catch (err) {
    return { finding: fail('inventory', errorMessage(err), `fix the inventory file${config.inventory.length > 1 ? 's' : ''} ${config.inventory.join(', ')}`) };
  }
}

/** Every host must have a pinned key before Castellan will talk to it. */
export async function checkPins(config: Config, inventory: Inventory): Promise<{ finding: Finding; pinned: string[] }> {
  let known: KnownHosts;
  try {
    known = await KnownHosts.load(config.knownHosts);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const all = foldNodeSet(inventory.hosts.keys());
    return {
      finding: fail('host keys', code === 'ENOENT' ? `${config.knownHosts} does not exist: no host is trusted yet` : `cannot read ${config.knownHosts}: ${errorMessage(err)}`, `castellan hosts trust ${all || 'all'}   (shows each fingerprint and asks before pinning)`),
      pinned: [],
    };
  }
  const pinned: string[] = [];
  const missing: string[] = [];
  for (const host of inventory.hosts.values()) {
    if (known.pinnedKeys({ name: host.name, address: host.address, port: host.port }).length > 0) pinned.push(host.name);
    else missing.push(host.name);
  }
  const notes = known.notes.map((n) => `skipped: ${n}`);
  if (missing.length > 0) {
    const set = foldNodeSet(missing);
    return {
      finding: fail('host keys', `${set} (${missing.length} of ${inventory.hosts.size}) ha${missing.length === 1 ? 's' : 've'} no pinned key in ${config.knownHosts}`, `castellan hosts trust ${set}   (shows each fingerprint and asks before pinning)`, notes),
      pinned,
    };
  }
  if (notes.length > 0) return { finding: warn('host keys', `all ${pinned.length} hosts pinned; some known_hosts lines were skipped`, `edit ${config.knownHosts}`, notes), pinned };
  return { finding: ok('host keys', `all ${pinned.length} host${pinned.length === 1 ? '' : 's'} pinned in ${config.knownHosts}`), pinned };
}

/** The SSH private key files: present, readable, not readable by others (OpenSSH refuses those too). */
export async function checkKeyFiles(config: Config, inventory: Inventory): Promise<Finding> {
  const files = new Map<string, string[]>();
  for (const host of inventory.hosts.values()) {
    const file = host.privateKeyFile ?? config.ssh.privateKeyFile;
    if (file === undefined) continue;
    files.set(file, [...(files.get(file) ?? []), host.name]);
  }
  if (files.size === 0) {
    return config.ssh.agentSocket !== undefined
      ? ok('ssh keys', 'no key file configured: using the SSH agent')
      : fail('ssh keys', 'no ssh.private_key_file and no SSH agent', 'set ssh.private_key_file in castellan.yaml (or ansible_ssh_private_key_file per host), or start ssh-agent');
  }
  const problems: string[] = [];
  let fix: string | undefined;
  let worst: 'ok' | 'warn' | 'fail' = 'ok';
  for (const [file, hosts] of files) {
    const who = foldNodeSet(hosts);
    const info = await stat(file).catch(() => undefined);
    if (!info) {
      problems.push(`${file} (for ${who}) does not exist`);
      fix ??= `create the key (ssh-keygen -t ed25519 -f ${file}) or fix ssh.private_key_file / ansible_ssh_private_key_file`;
      worst = 'fail';
      continue;
    }
    if (await access(file, constants.R_OK).then(() => false, () => true)) {
      problems.push(`${file} (for ${who}) is not readable by this user`);
      fix ??= `run Castellan as the key's owner, or chown it`;
      worst = 'fail';
    } else if ((info.mode & 0o077) !== 0) {
      problems.push(`${file} (for ${who}) is readable by group or others (mode ${(info.mode & 0o777).toString(8)})`);
      fix ??= `chmod 600 ${file}`;
      if (worst === 'ok') worst = 'warn';
    }
  }
  const list = [...files.keys()].join(', ');
  if (worst === 'ok') return ok('ssh keys', `${files.size === 1 ? list : `${files.size} key files`} readable, mode 0600`);
  const summary = problems.length === 1 ? problems[0]! : `${problems.length} problems with key files`;
  return worst === 'fail' ? fail('ssh keys', summary, fix, problems.length > 1 ? problems : undefined) : warn('ssh keys', summary, fix, problems.length > 1 ? problems : undefined);
}

/** Files Castellan writes: the audit file's directory, the files root for copy_file. */
export async function checkFiles(config: Config): Promise<Finding> {
  const problems: string[] = [];
  if (config.audit.file !== undefined) {
    const dir = dirname(config.audit.file);
    if (await access(dir, constants.W_OK).then(() => false, () => true)) problems.push(`audit.file: cannot write in ${dir}`);
  }
  const root = await stat(config.jobs.filesRoot).catch(() => undefined);
  if (!root?.isDirectory()) problems.push(`jobs.files_root: ${config.jobs.filesRoot} is not a directory (copy_file uploads come from there)`);
  if (problems.length === 0) return ok('files', `${config.audit.file !== undefined ? `audit to ${config.audit.file}; ` : 'audit in Redis only; '}uploads from ${config.jobs.filesRoot}`);
  return warn('files', problems[0]!, problems[0]!.startsWith('audit') ? `mkdir -p ${dirname(config.audit.file ?? '.')} (owned by the Castellan user)` : `mkdir -p ${config.jobs.filesRoot}`, problems.length > 1 ? problems : undefined);
}
