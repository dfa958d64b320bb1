// Plan shape: every step kind renders through its own module, on-failure steps are walked
// after the step that arms them, and unsound plans (duplicate ids, rollbacks about another
// subject) are named before anything is recorded.
import { describe, expect, it } from 'vitest';
import { planCommands } from '../../queues/plan-commands.js';
import { execStep } from '../../tools/planning.js';
import { STEP_KINDS } from '../../tools/steps/index.js';
import { planShapeProblems, walkPlan } from '../../tools/steps/walk.js';
import type { Plan } from '../../tools/types.js';

const step = (id: string, extra: Partial<Parameters<typeof execStep>[0]> = {}) => execStep({ id, hosts: ['cp1'], argv: ['kubectl', id], asRoot: false, timeoutMs: 1000, ...extra });

function plan(...steps: ReturnType<typeof step>[]): Plan {
  return { tool: 't', hosts: ['cp1'], failureBudget: 0, batches: [{ steps }] };
}

describe('plan shape', () => {
  it('knows every kind by its module', () => {
    expect([...STEP_KINDS].sort()).toEqual(['download', 'etcd_member', 'exec', 'gate', 'ipmi', 'pin_host_key', 'playbook', 'relay', 'upload']);
  });

  it('walks on-failure steps right after the step that arms them, and lists their commands for audit', () => {
    const p = plan(step('cordon', { subject: 'w1', onFailure: [step('uncordon', { subject: 'w1' })] }), step('drain', { subject: 'w1', asRoot: true }));
    expect(walkPlan(p).map((w) => [w.step.id, w.onFailureOf])).toEqual([['cordon', undefined], ['uncordon', 'cordon'], ['drain', undefined]]);
    expect(planCommands(p)).toEqual([['kubectl', 'cordon'], ['kubectl', 'uncordon'], ['sudo', '-n', '--', 'kubectl', 'drain']]);
    expect(planShapeProblems(p)).toEqual([]);
  });

  it('names duplicate ids, odd ids and rollbacks about another subject', () => {
    const p = plan(step('a', { subject: 'w1', onFailure: [step('a', { subject: 'w2' })] }), step('bad id!'));
    expect(planShapeProblems(p)).toEqual([
      "step id 'a' is used twice",
      "on-failure step 'a' is about w2, but 'a' is about w1",
      "step id 'bad id!' must be 1-40 characters of [A-Za-z0-9._-]",
    ]);
  });
});
