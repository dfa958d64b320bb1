// ZFS boot environments, whichever tool a node manages them with. The inventory says which:
//   castellan_be_tool: kbe | zectl | bectl | zfs   (default zfs: plain zfs/zpool commands)
//   castellan_be_root: rpool/ROOT                  (the dataset that holds the environments)
// Listing goes through `zfs list -H -p` and `zpool get bootfs` for kbe and plain ZFS (kbe has
// no documented machine-readable listing), and through `zectl list -H` / `bectl list -H` for
// those tools. Every command is an argv; the one shell script (the zfs fallback's create,
// which must find the booted environment first) is a constant taking its values as "$1" "$2".
import { z } from 'zod';
import type { Host } from '../config/types.js';
import { execStep } from './planning.js';
import { OutputFormatError } from './reports.js';
import { ToolInputError, type PlanContext, type PlanStep } from './types.js';

export const BE_TOOLS = ['kbe', 'zectl', 'bectl', 'zfs'] as const;
export type BeTool = (typeof BE_TOOLS)[number];

export const BE_TOOL_VAR = 'castellan_be_tool';
export const BE_ROOT_VAR = 'castellan_be_root';
const DEFAULT_ROOT = 'rpool/ROOT';
const DATASET = /^[A-Za-z0-9][A-Za-z0-9_.:-]*(\/[A-Za-z0-9_.:-]+)+$/;

export const beName = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, { error: 'a boot environment name: letters, digits and . _ : - (not starting with a symbol)' })
  .describe('Boot environment name, e.g. `pre-upgrade-20261129-050000`.');

export interface BeDriver {
  readonly tool: BeTool;
  /** Dataset holding the environments (rpool/ROOT). */
  readonly root: string;
  /** Pool of the root (rpool). */
  readonly pool: string;
}

/** The boot-environment driver a host's inventory vars name; a bad var is a clear error. */
export function beDriverFor(host: Host): BeDriver {
  const tool = host.vars[BE_TOOL_VAR] ?? 'zfs';
  if (typeof tool !== 'string' || !(BE_TOOLS as readonly string[]).includes(tool)) {
    throw new ToolInputError('targets', `${host.name}: inventory var ${BE_TOOL_VAR} must be one of ${BE_TOOLS.join(', ')}, not ${JSON.stringify(tool)}`);
  }
  const root = host.vars[BE_ROOT_VAR] ?? DEFAULT_ROOT;
  if (typeof root !== 'string' || !DATASET.test(root)) {
    throw new ToolInputError('targets', `${host.name}: inventory var ${BE_ROOT_VAR} must be a dataset like rpool/ROOT, not ${JSON.stringify(root)}`);
  }
  return { tool: tool as BeTool, root, pool: root.split('/')[0] ?? root };
}

/** Hosts grouped by identical driver, in host order, so each group is one step. */
export function groupByDriver(ctx: PlanContext, hosts: readonly string[]): Array<{ driver: BeDriver; hosts: string[] }> {
  const groups = new Map<string, { driver: BeDriver; hosts: string[] }>();
  for (const name of hosts) {
    const host = ctx.inventory.hosts.get(name);
    if (!host) throw new ToolInputError('targets', `${name} is not in the inventory`);
    const driver = beDriverFor(host);
    const key = `${driver.tool}|${driver.root}`;
    const group = groups.get(key) ?? { driver, hosts: [] };
    group.hosts.push(name);
    groups.set(key, group);
  }
  return [...groups.values()];
}

// --- commands -----------------------------------------------------------------------------

/** Find the booted environment under $1 (the one mounted), snapshot it as @$2, clone it to $1/$2. */
const ZFS_CREATE = `set -e
root=$1 name=$2
cur=$(zfs list -H -o name,mounted -r -d 1 "$root" | awk -F '\\t' -v r="$root" '$2 == "yes" && $1 != r { print $1 }')
[ -n "$cur" ] || { echo "no mounted boot environment under $root" >&2; exit 1; }
zfs snapshot "$cur@$name"
zfs clone -o canmount=noauto -o mountpoint=/ "$cur@$name" "$root/$name"`;

export interface BeCommand {
  readonly argv: string[];
  /** What an approver reads when the argv is a script. */
  readonly description?: string | undefined;
}

export function createCommand(driver: BeDriver, name: string): BeCommand {
  if (driver.tool !== 'zfs') return { argv: [driver.tool, 'create', name] };
  return {
    argv: ['sh', '-c', ZFS_CREATE, 'castellan-be-create', driver.root, name],
    description: `zfs snapshot <booted environment under ${driver.root}>@${name} && zfs clone -o canmount=noauto -o mountpoint=/ <that snapshot> ${driver.root}/${name}`,
  };
}

export function activateCommand(driver: BeDriver, name: string): BeCommand {
  if (driver.tool !== 'zfs') return { argv: [driver.tool, 'activate', name] };
  return { argv: ['zpool', 'set', `bootfs=${driver.root}/${name}`, driver.pool] };
}

export function destroyCommand(driver: BeDriver, name: string): BeCommand {
  switch (driver.tool) {
    case 'kbe':
      return { argv: ['kbe', 'delete', name] };
    case 'zfs':
      return { argv: ['zfs', 'destroy', `${driver.root}/${name}`] };
    default:
      return { argv: [driver.tool, 'destroy', name] };
  }
}

/** One exec step per driver group (root needed: ZFS administration). */
export function beSteps(
  ctx: PlanContext,
  hosts: readonly string[],
  idPrefix: string,
  timeoutMs: number,
  command: (driver: BeDriver) => BeCommand,
): PlanStep[] {
  return groupByDriver(ctx, hosts).map((group, i, all) => {
    const c = command(group.driver);
    return execStep({
      id: all.length === 1 ? idPrefix : `${idPrefix}-${i + 1}`,
      hosts: group.hosts,
      argv: c.argv,
      asRoot: true,
      timeoutMs,
      description: c.description,
    });
  });
}

// --- listing ------------------------------------------------------------------------------

export interface BootEnvironment {
  name: string;
  /** Mounted as / now. */
  booted: boolean;
  /** What the next boot uses. */
  next_boot: boolean;
  /** ISO time when the tool gives seconds; the tool's own text otherwise. */
  created: string;
  /** Bytes, when the tool reports it exactly. */
  used_bytes?: number | undefined;
}

export const bootEnvironmentSchema = z.object({
  name: z.string(),
  booted: z.boolean(),
  next_boot: z.boolean(),
  created: z.string(),
  used_bytes: z.number().optional(),
});

/** The list commands for a driver: one or two argvs whose outputs `parseListing` reads together. */
export function listCommands(driver: BeDriver): string[][] {
  if (driver.tool === 'zectl' || driver.tool === 'bectl') return [[driver.tool, 'list', '-H']];
  return [
    ['zfs', 'list', '-H', '-p', '-o', 'name,used,creation,mounted', '-r', '-d', '1', driver.root],
    ['zpool', 'get', '-H', '-o', 'value', 'bootfs', driver.pool],
  ];
}

function fields(line: string, count: number, what: string): string[] {
  const cells = line.split('\t');
  if (cells.length < count) throw new OutputFormatError(`not a ${what} line (${count} tab-separated fields expected): '${line.slice(0, 80)}'`);
  return cells;
}

/**
 * `zfs list -H -p -o name,used,creation,mounted -r -d 1 ROOT` plus `zpool get -H -o value
 * bootfs POOL` → the environments under ROOT (the root itself is left out).
 */
export function parseZfsListing(root: string, list: string, bootfs: string): BootEnvironment[] {
  const next = bootfs.trim();
  return list
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => fields(line, 4, 'zfs list -H -p'))
    .filter(([name]) => name !== root)
    .map(([name = '', used = '', creation = '', mounted = '']) => {
      if (!name.startsWith(`${root}/`)) throw new OutputFormatError(`zfs listed '${name}', which is not under ${root}`);
      const seconds = Number(creation);
      const bytes = Number(used);
      if (!Number.isFinite(seconds) || !Number.isFinite(bytes)) throw new OutputFormatError(`zfs list -p gave non-numeric used/creation: '${line(name, used, creation)}'`);
      return {
        name: name.slice(root.length + 1),
        booted: mounted === 'yes',
        next_boot: name === next,
        created: new Date(seconds * 1000).toISOString(),
        used_bytes: bytes,
      };
    });
}

function line(...cells: string[]): string {
  return cells.join('\t').slice(0, 80);
}

/**
 * `zectl list -H` (name, active, mountpoint, creation) and `bectl list -H` (name, active,
 * mountpoint, space, created): "N" marks the running environment, "R" the one used on reboot.
 */
export function parseBeadmListing(tool: 'zectl' | 'bectl', stdout: string): BootEnvironment[] {
  const minimum = tool === 'zectl' ? 4 : 5;
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const cells = fields(l, minimum, `${tool} list -H`);
      const active = cells[1] ?? '';
      if (!/^(-|[NRT]+)?$/.test(active)) throw new OutputFormatError(`${tool} list: unexpected active flags '${active}'`);
      return {
        name: cells[0] ?? '',
        booted: active.includes('N'),
        next_boot: active.includes('R'),
        created: (tool === 'zectl' ? cells[3] : cells[4]) ?? '',
      };
    });
}
