// Hostile values in every string parameter of every tool: each is either refused by the
// schema with an issue naming that parameter, or carried inert (one whole argv element, an
// `--option=value` element, stdin, or a file-transfer path), never split or placed where a
// leading `-` would be read as an option.
import { describe, expect, it } from 'vitest';
import { catalogue, validateInput } from '../../tools/index.js';
import { ctx, planFor } from './tools-fixtures.js';
import type { AnyTool, Plan } from '../../tools/index.js';

const HOSTILE = ['a;reboot', '$(id)', '`id`', 'a\nreboot', 'a\0b', '-rf', '--help', "a'b\"c", 'a|b&&c', '../../etc/shadow', ' '];

/** A valid input for each tool, the base that one field at a time is made hostile in. */
const BASE: Record<string, Record<string, unknown>> = {
  ping: {},
  uptime: {},
  resource_usage: {},
  service_status: { unit: 'nginx' },
  journal: { unit: 'nginx', since: '-1h' },
  disk_usage: { paths: ['/'] },
  list_nodes: {},
  list_groups: {},
  wireguard_status: {},
  wireguard_mesh: {},
  cert_expiry: { paths: ['/etc/ssl/a.pem'] },
  k8s_nodes: {},
  etcd_health: { control_plane: 'cp1' },
  bmc_power: { targets: 'web' },
  service_restart: { targets: 'web', unit: 'nginx' },
  service_reload: { targets: 'web', unit: 'nginx' },
  copy_file: { targets: 'web', direction: 'upload', source: 'a.txt', destination: '/etc/a.txt', mode: '0644' },
  run_script: { targets: 'web', script: 'echo hi', args: ['x'] },
  k8s_cordon: { nodes: ['node01'] },
  k8s_uncordon: { nodes: ['node01'] },
  exec: { targets: 'web', command: 'uptime' },
  reboot: { targets: 'web' },
  shutdown: { targets: 'web' },
  k8s_drain: { nodes: ['node01'] },
  boot_environments: {},
  boot_environment_create: { targets: 'web', name: 'pre-upgrade-20261129-050000' },
  boot_environment_activate: { targets: 'web', name: 'pre-upgrade-20261129-050000' },
  boot_environment_destroy: { targets: 'web', name: 'old' },
  rolling_upgrade: { targets: 'web' },
  ansible_playbook: { playbook: 'motd', targets: 'web' },
  node_expand: { node: 'node03', role: 'worker', host_key_fingerprint: 'SHA256:' + 'A'.repeat(43), deploy_playbook: 'motd' },
  blue_green_upgrade: { first: 'node01', second: 'node02' },
};

type Slot = { field: string; list: boolean };

function stringSlots(tool: AnyTool): Slot[] {
  const schema = tool.input.toJSONSchema({ io: 'input' }) as { properties?: Record<string, { type?: string; items?: { type?: string }; anyOf?: { type?: string }[] }> };
  return Object.entries(schema.properties ?? {}).flatMap(([field, prop]): Slot[] => {
    if (prop.type === 'string' || prop.anyOf?.some((b) => b.type === 'string')) return [{ field, list: false }];
    if (prop.type === 'array' && prop.items?.type === 'string') return [{ field, list: true }];
    return [];
  });
}

function carriedInert(plan: Plan, value: string): boolean {
  for (const step of plan.batches.flatMap((b) => b.steps)) {
    const action = step.action;
    if (action.kind !== 'exec') {
      const paths = Object.values(action).filter((v): v is string => typeof v === 'string');
      if (paths.some((p) => p.includes(value))) return true;
      continue;
    }
    if (action.stdin === value) return true;
    const at = action.argv.indexOf(value);
    if (at >= 0) {
      // A whole element; if it looks like an option it must sit after `--` (or be sh -c's script).
      const afterDoubleDash = action.argv.slice(0, at).includes('--') || (action.argv[0] === 'python3' && action.argv[1] === '-');
      const isShellScript = action.argv[1] === '-c' && at === 2;
      if (!value.startsWith('-') || afterDoubleDash || isShellScript) return true;
      return false;
    }
    if (action.argv.some((word) => /^--[a-z-]+=/.test(word) && word.slice(word.indexOf('=') + 1) === value)) return true;
  }
  return false;
}

describe('hostile values in every string parameter', () => {
  for (const tool of catalogue) {
    it(`${tool.name}: refused with a field-named issue or carried as one inert element`, () => {
      const base = BASE[tool.name];
      expect(base, `BASE needs a valid input for ${tool.name}`).toBeDefined();
      const baseline = validateInput(tool, base);
      expect(baseline.ok, JSON.stringify(baseline)).toBe(true);
      for (const slot of stringSlots(tool)) {
        for (const value of HOSTILE) {
          const input = { ...base, [slot.field]: slot.list ? [value] : value };
          if (slot.field === 'command' || slot.field === 'script' || slot.field === 'lines' || slot.field === 'argv') {
            // exec takes exactly one form: swap the base form for the one under test.
            delete (input as Record<string, unknown>).command;
            (input as Record<string, unknown>)[slot.field] = slot.list ? [value] : value;
          }
          const result = validateInput(tool, input);
          const label = `${tool.name}.${slot.field} = ${JSON.stringify(value)}`;
          if (!result.ok) {
            expect(result.issues.some((i) => i.field === slot.field || i.field.startsWith(`${slot.field}[`)), `${label}: ${JSON.stringify(result.issues)}`).toBe(true);
            continue;
          }
          if (!tool.plan) continue; // inventory-only: nothing reaches a host
          let plan: Plan;
          try {
            plan = planFor(tool, input, ctx);
          } catch (error) {
            // Semantic refusal (unknown target, path outside localRoot) must name the field too.
            expect(String(error), label).toMatch(new RegExp(`^\\w*Error: ${slot.field}`));
            continue;
          }
          expect(carriedInert(plan, value.trim() === '' ? value : value), label).toBe(true);
        }
      }
    });
  }

  it('NUL and newline never reach argv of any plan', () => {
    for (const tool of catalogue) {
      for (const slot of stringSlots(tool)) {
        const result = validateInput(tool, { ...BASE[tool.name], [slot.field]: slot.list ? ['a\0b'] : 'a\0b' });
        expect(result.ok, `${tool.name}.${slot.field}`).toBe(false);
      }
    }
  });

  it('a shell line or lines entry starting with "-" is refused (sh -c would read it as options)', () => {
    const exec = catalogue.find((t) => t.name === 'exec')!;
    expect(validateInput(exec, { targets: 'web', command: '-x' })).toMatchObject({ ok: false, issues: [{ field: 'command', message: 'must not start with "-"' }] });
    expect(validateInput(exec, { targets: 'web', lines: ['ls', '  -x'] })).toMatchObject({ ok: false, issues: [{ field: 'lines[1]' }] });
    expect(validateInput(exec, { targets: 'web', argv: ['-x', 'y'] })).toMatchObject({ ok: false, issues: [{ field: 'argv' }] });
  });
});
