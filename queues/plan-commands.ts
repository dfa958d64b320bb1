// How a plan's actions are written down for people: the exact argv in audit records,
// approval requests, the API's job view. One rendering, so an approver sees exactly what
// the audit trail later records.
import type { Plan, StepAction } from '../tools/types.js';

export function actionArgv(action: StepAction): string[] {
  switch (action.kind) {
    case 'exec':
      return action.asRoot ? ['sudo', '-n', '--', ...action.argv] : [...action.argv];
    case 'upload':
      return ['upload', action.localPath, action.remotePath];
    case 'download':
      return ['download', action.remotePath, action.localDir];
    case 'relay':
      return ['relay', `${action.fromHost}:${action.remotePath}`, action.destPath];
    case 'wait_reachable':
      return ['wait-reachable'];
  }
}

/** Every step's argv, in plan order. */
export function planCommands(plan: Plan): string[][] {
  return plan.batches.flatMap((b) => b.steps.map((s) => actionArgv(s.action)));
}
