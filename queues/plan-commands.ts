// How a plan's actions are written down for people: the exact argv in audit records,
// approval requests, the API's job view. One rendering (each step kind's own), so an
// approver sees exactly what the audit trail later records.
import type { Plan, PlanStep, StepAction } from '../tools/types.js';
import { stepKind } from '../tools/steps/index.js';
import { walkPlan } from '../tools/steps/walk.js';
import type { PlanBinding } from './plan-binding.js';

/** A host's login user as known (undefined: not bound). */
export type LoginUserOf = (host: string) => string | undefined;

/** Login users as a binding fixed them. */
export function bindingUsers(binding: PlanBinding | undefined): LoginUserOf {
  return (host) => binding?.hosts[host]?.user;
}

/** The argv for a host whose login user is `loginUser` (unknown: as most logins run it). */
export function actionArgv(action: StepAction, loginUser?: string): string[] {
  return stepKind(action).command(action, loginUser);
}

/**
 * What a step runs on its hosts, as bound (each host's login user decides whether `as root`
 * goes through `sudo -n --`): `command` on every host but `rootLogin`, where `direct` runs
 * instead (hosts logging in as root, when the step's hosts log in as different users).
 */
export function stepArgv(step: PlanStep, userOf: LoginUserOf = () => undefined): { command: string[]; direct?: { command: string[]; rootLogin: string[] } | undefined } {
  const users = step.hosts.map(userOf);
  const rootLogin = step.hosts.filter((_, i) => users[i] === 'root');
  if (step.hosts.length > 0 && rootLogin.length === step.hosts.length) return { command: actionArgv(step.action, 'root') };
  const command = actionArgv(step.action);
  const direct = actionArgv(step.action, 'root');
  const differs = rootLogin.length > 0 && direct.join('\0') !== command.join('\0');
  return { command, ...(differs ? { direct: { command: direct, rootLogin } } : {}) };
}

/** Every step's argv as bound, in plan order, on-failure steps after the step that arms them. */
export function planCommands(plan: Plan, userOf?: LoginUserOf): string[][] {
  return walkPlan(plan).flatMap(({ step }) => {
    const { command, direct } = stepArgv(step, userOf);
    return direct ? [command, direct.command] : [command];
  });
}
