// The files every lab writes so that any SSH tool can be pointed at its nodes: an Ansible YAML
// inventory, a pinned known_hosts, and a castellan.yaml. Shared by the real-sshd lab and the
// fake-node farm so both look the same to Castellan, parallel-ssh, clush, pdsh and ansible.
import { readFile, writeFile } from 'node:fs/promises';
import { stringify } from 'yaml';

export interface LabHost {
  readonly name: string;
  readonly address: string;
  readonly port: number;
}

export interface LabAccess {
  readonly user: string;
  readonly privateKeyFile: string;
  readonly knownHostsFile: string;
}

const ROLES = ['control', 'worker', 'worker', 'storage'] as const;

/** 'node01' … zero-padded to 2 digits, or to as many digits as the largest index needs. */
export function nodeName(index: number, total: number): string {
  const width = Math.max(2, String(total).length);
  return `node${String(index).padStart(width, '0')}`;
}

/** Roles cycle control, worker, worker, storage so label targeting has something to select. */
export function nodeRole(index: number): string {
  return ROLES[(index - 1) % ROLES.length] ?? 'worker';
}

/** A known_hosts line for a non-default port: `[address]:port type base64`. */
export function knownHostsLine(address: string, port: number, publicKey: string): string {
  const [type, blob] = publicKey.trim().split(/\s+/);
  if (!type || !blob) throw new Error(`not an OpenSSH public key: ${publicKey.slice(0, 40)}`);
  const host = port === 22 ? address : `[${address}]:${port}`;
  return `${host} ${type} ${blob}`;
}

export async function readPublicKey(privateKeyFile: string): Promise<string> {
  return (await readFile(`${privateKeyFile}.pub`, 'utf8')).trim();
}

export async function writeKnownHosts(file: string, lines: readonly string[]): Promise<void> {
  await writeFile(file, lines.map((line) => `${line}\n`).join(''), { mode: 0o644 });
}

/** Ansible YAML: hosts under `lab`, also grouped `odd`/`even`, with castellan_labels.role. */
export async function writeInventory(
  file: string,
  hosts: readonly LabHost[],
  access: LabAccess,
  extraGroups: Readonly<Record<string, readonly string[]>> = {},
): Promise<void> {
  const labHosts: Record<string, unknown> = {};
  const odd: Record<string, null> = {};
  const even: Record<string, null> = {};
  hosts.forEach((host, i) => {
    labHosts[host.name] = {
      ansible_host: host.address,
      ansible_port: host.port,
      ansible_user: access.user,
      ansible_ssh_private_key_file: access.privateKeyFile,
      castellan_labels: { role: nodeRole(i + 1) },
    };
    ((i + 1) % 2 === 1 ? odd : even)[host.name] = null;
  });
  const groups: Record<string, unknown> = { lab: { hosts: labHosts }, odd: { hosts: odd }, even: { hosts: even } };
  for (const [group, members] of Object.entries(extraGroups)) {
    groups[group] = { hosts: Object.fromEntries(members.map((name) => [name, null])) };
  }
  const inventory = {
    all: {
      vars: {
        // Ansible (and anything reading these vars) checks host keys against the lab's pins.
        ansible_ssh_common_args: `-o UserKnownHostsFile=${access.knownHostsFile} -o StrictHostKeyChecking=yes`,
      },
      children: groups,
    },
  };
  await writeFile(file, stringify(inventory, { nullStr: '' }), { mode: 0o644 });
}

export interface LabConfigOptions extends LabAccess {
  readonly inventoryFile: string;
  readonly redisUrl?: string | undefined;
}

/** castellan.yaml in the draft config shape; absolute paths so it works from any cwd. */
export async function writeCastellanConfig(file: string, options: LabConfigOptions): Promise<void> {
  const config = {
    inventory: options.inventoryFile,
    known_hosts: options.knownHostsFile,
    ssh: {
      user: options.user,
      private_key_file: options.privateKeyFile,
      connect_timeout: '5s',
      command_timeout: '5m',
      window: 64,
    },
    redis: { url: options.redisUrl ?? 'redis://127.0.0.1:6379', prefix: 'castellan' },
    server: { listen: '127.0.0.1:8080', public_url: 'http://127.0.0.1:8080' },
    auth: {
      roles: { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] },
      local_identity: { subject: 'local-admin', display_name: 'Local admin', groups: ['admins'] },
    },
    policy: { read_only: false, approvals: { required: 1, allow_self_approval: false, expiry: '15m' } },
  };
  await writeFile(file, stringify(config), { mode: 0o644 });
}
