// How a plan's actions are written down for people: the exact argv in audit records,
// approval requests, the API's job view. One rendering (each step kind's own), so an
// approver sees exactly what the audit trail later records.
import type { Plan, StepAction } from '../tools/types.js';
import { stepKind } from '../tools/steps/index.js';
import { walkPlan } from '../tools/steps/walk.js';

export function actionArgv(action: StepAction): string[] {
  return stepKind(action).command(action);
}

/** Every step's argv, in plan order, on-failure steps after the step that arms them. */
export function planCommands(plan: Plan): string[][] {
  return walkPlan(plan).map(({ step }) => actionArgv(step.action));
}
