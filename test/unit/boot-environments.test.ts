// Boot environments: the driver chosen per host from inventory vars, the exact commands per
// driver, and the list parsers on recorded output formats.
import { describe, expect, it } from 'vitest';
import { parseBeadmListing, parseZfsListing } from '../../tools/boot-env.js';
import { getTool, validateInput } from '../../tools/index.js';
import type { Host } from '../../config/types.js';
import type { PlanContext, StepResults } from '../../tools/types.js';
import { ctx as baseCtx, hostResult, planFor } from './tools-fixtures.js';

// `zfs list -H -p -o name,used,creation,mounted -r -d 1 rpool/ROOT` on a ZFSBootMenu host:
// tab-separated, exact bytes and epoch seconds (OpenZFS zfs-list(8), -H and -p).
const ZFS_LIST = [
  'rpool/ROOT\t5308432384\t1761987600\tno',
  'rpool/ROOT/debian\t5300043776\t1761987600\tyes',
  'rpool/ROOT/pre-upgrade-20261129-050000\t8388608\t1764392400\tno',
  '',
].join('\n');

// `zectl list -H` (zectl README/man page: Name, Active, Mountpoint, Creation; N = now, R = on reboot).
const ZECTL = 'default\tN\t/\t2026-11-01 09:00\npre-upgrade-20261129-050000\tR\t-\t2026-11-29 05:00\n';
// `bectl list -H` (FreeBSD bectl(8): name, active, mountpoint, space, created).
const BECTL = 'default\tNR\t/\t1.02G\t2026-11-01 09:00\n13.2-p4\t-\t-\t8.36M\t2026-10-01 10:53\n';

function withVars(vars: Record<string, Record<string, unknown>>): PlanContext {
  const hosts = new Map<string, Host>();
  for (const [name, host] of baseCtx.inventory.hosts) hosts.set(name, { ...host, vars: { ...host.vars, ...(vars[name] ?? {}) } });
  return { ...baseCtx, inventory: { ...baseCtx.inventory, hosts } };
}

function plan(tool: string, input: Record<string, unknown>, ctx: PlanContext) {
  const parsed = validateInput(getTool(tool), input);
  if (!parsed.ok) throw new Error(parsed.message);
  return planFor(getTool(tool), parsed.input, ctx);
}

describe('boot environment listings', () => {
  it('reads zfs list -H -p and bootfs: running and next-boot environments', () => {
    const envs = parseZfsListing('rpool/ROOT', ZFS_LIST, 'rpool/ROOT/pre-upgrade-20261129-050000\n');
    expect(envs).toEqual([
      { name: 'debian', booted: true, next_boot: false, created: '2025-11-01T09:00:00.000Z', used_bytes: 5300043776 },
      { name: 'pre-upgrade-20261129-050000', booted: false, next_boot: true, created: '2025-11-29T05:00:00.000Z', used_bytes: 8388608 },
    ]);
  });

  it('reads zectl and bectl -H listings', () => {
    expect(parseBeadmListing('zectl', ZECTL).map((e) => [e.name, e.booted, e.next_boot])).toEqual([
      ['default', true, false],
      ['pre-upgrade-20261129-050000', false, true],
    ]);
    expect(parseBeadmListing('bectl', BECTL)[0]).toEqual({ name: 'default', booted: true, next_boot: true, created: '2026-11-01 09:00' });
  });

  it('names the problem when output is not a listing', () => {
    expect(() => parseZfsListing('rpool/ROOT', 'NAME USED\n', '')).toThrow(/tab-separated/);
    expect(() => parseZfsListing('rpool/ROOT', 'tank/other\t1\t1\tno\n', '')).toThrow(/not under rpool\/ROOT/);
    expect(() => parseBeadmListing('zectl', 'default\tX\t/\t2026\n')).toThrow(/active flags/);
  });
});

describe('boot environment tools', () => {
  const ctx = withVars({
    node01: { castellan_be_tool: 'kbe' },
    node02: { castellan_be_tool: 'kbe' },
    node03: { castellan_be_tool: 'zectl' },
    node04: { castellan_be_root: 'tank/BE' },
  });

  it('plans one command per driver: kbe, zectl, plain zfs', () => {
    const create = plan('boot_environment_create', { targets: 'k8s_worker', name: 'pre-upgrade-1' }, ctx);
    const steps = create.batches[0]!.steps;
    expect(steps.map((s) => [s.id, s.hosts])).toEqual([
      ['create-1', ['node01', 'node02']],
      ['create-2', ['node03']],
      ['create-3', ['node04']],
    ]);
    expect(steps[0]!.action).toMatchObject({ kind: 'exec', argv: ['kbe', 'create', 'pre-upgrade-1'], asRoot: true });
    expect(steps[1]!.action).toMatchObject({ argv: ['zectl', 'create', 'pre-upgrade-1'] });
    // The zfs fallback: a constant script, the values as positional parameters.
    expect(steps[2]!.action).toMatchObject({ argv: ['sh', '-c', expect.stringContaining('zfs clone'), 'castellan-be-create', 'tank/BE', 'pre-upgrade-1'] });
    expect(steps[2]!.description).toContain('tank/BE/pre-upgrade-1');

    const activate = plan('boot_environment_activate', { targets: 'node04', name: 'pre-upgrade-1' }, ctx);
    expect(activate.batches[0]!.steps[0]!.action).toMatchObject({ argv: ['zpool', 'set', 'bootfs=tank/BE/pre-upgrade-1', 'tank'] });
    const destroy = plan('boot_environment_destroy', { targets: 'node01', name: 'old' }, ctx);
    expect(destroy.batches[0]!.steps[0]!.action).toMatchObject({ argv: ['kbe', 'delete', 'old'] });
  });

  it('risk follows what each operation can do', () => {
    expect(getTool('boot_environments').risk).toBe('read');
    expect(getTool('boot_environment_create').risk).toBe('change');
    expect(getTool('boot_environment_activate').risk).toBe('destructive');
    expect(getTool('boot_environment_destroy').risk).toBe('destructive');
  });

  it('refuses a hostile name and a bad inventory var with a clear error', () => {
    const bad = validateInput(getTool('boot_environment_create'), { targets: 'node01', name: '-rf' });
    expect(bad.ok).toBe(false);
    const broken = withVars({ node01: { castellan_be_tool: 'beadm; reboot' } });
    expect(() => plan('boot_environments', { targets: 'node01' }, broken)).toThrow(/node01: inventory var castellan_be_tool must be one of kbe, zectl, bectl, zfs/);
  });

  it('summarizes each host with its own driver', () => {
    const list = plan('boot_environments', { targets: 'node01,node03' }, ctx);
    expect(list.batches[0]!.steps.map((s) => s.id)).toEqual(['list-1', 'bootfs-1', 'list-2']);
    const results: StepResults = new Map([
      ['list-1', new Map([['node01', hostResult('node01', ZFS_LIST)]])],
      ['bootfs-1', new Map([['node01', hostResult('node01', 'rpool/ROOT/debian\n')]])],
      ['list-2', new Map([['node03', hostResult('node03', ZECTL)]])],
    ]);
    const parsed = validateInput(getTool('boot_environments'), { targets: 'node01,node03' });
    if (!parsed.ok) throw new Error(parsed.message);
    const data = getTool('boot_environments').summarize!(parsed.input, results, ctx) as { hosts: Array<{ host: string; booted: string; next_boot: string }> };
    expect(data.hosts.map((h) => [h.host, h.booted, h.next_boot])).toEqual([
      ['node01', 'debian', 'debian'],
      ['node03', 'default', 'pre-upgrade-20261129-050000'],
    ]);
  });
});
