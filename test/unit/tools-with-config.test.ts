// Tools planned against a real parsed inventory and the real target resolver (config/), the
// way the server wires them: labels, intersections and resolver errors.
import { describe, expect, it } from 'vitest';
import { parseInventory } from '../../config/inventory.js';
import { resolveTargets } from '../../config/targets.js';
import { getTool, ToolInputError } from '../../tools/index.js';
import { answerFor, planFor } from './tools-fixtures.js';
import type { PlanContext } from '../../tools/index.js';

const inventory = parseInventory(
  `
all:
  children:
    k8s_cluster:
      children:
        k8s_control_plane:
          hosts:
            cp1: { ansible_host: 10.4.0.2 }
        k8s_worker:
          hosts:
            w1: { ansible_host: 10.4.0.11, castellan_labels: { rack: left } }
            w2: { ansible_host: 10.4.0.12, castellan_labels: { rack: left } }
            w3: { ansible_host: 10.4.0.13, ansible_port: 2222, castellan_labels: { rack: right } }
`,
  'inline.yaml',
);

const ctx: PlanContext = {
  inventory,
  resolve: (expression) => resolveTargets(expression, inventory),
  defaults: { commandTimeoutMs: 30_000, connectTimeoutMs: 5_000 },
  localRoot: '/var/lib/castellan/files',
};

describe('tools with the real inventory and resolver', () => {
  it('plans a rolling reboot of a label intersection', () => {
    const plan = planFor(getTool('reboot'), { targets: 'k8s_worker&rack=left' }, ctx);
    expect(plan.hosts).toEqual(['w1', 'w2']);
    expect(plan.batches.map((b) => b.steps.map((s) => s.id))).toEqual([
      ['reboot-1', 'down-1', 'up-1'],
      ['reboot-2', 'down-2', 'up-2'],
    ]);
  });

  it('turns resolver errors into a targets field error', () => {
    expect(() => planFor(getTool('uptime'), { targets: 'nosuchgroup' }, ctx)).toThrow(ToolInputError);
    try {
      planFor(getTool('uptime'), { targets: 'k8s_worker&rack=middle' }, ctx);
      expect.unreachable();
    } catch (error) {
      expect((error as ToolInputError).field).toBe('targets');
    }
  });

  it('list_nodes shows address, port, groups and labels from the parsed inventory', () => {
    const answer = answerFor(getTool('list_nodes'), { targets: 'rack=right' }, ctx) as { nodes: unknown[] };
    expect(answer.nodes).toEqual([{ name: 'w3', address: '10.4.0.13', port: 2222, groups: expect.arrayContaining(['k8s_worker']), labels: { rack: 'right' } }]);
  });

  it('k8s tools find the control plane through the default group', () => {
    expect(planFor(getTool('k8s_drain'), { nodes: ['w1'] }, ctx).hosts).toEqual(['cp1']);
  });
});
