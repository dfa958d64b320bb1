// Shared by service_restart and service_reload: the same input and the same plan shape,
// differing only in the systemctl verb. The unit goes after `--` as well as being allowlisted.
import { z } from 'zod';
import { targets, timeout, unitName } from './fields.js';
import { execStep, resolveHosts } from './planning.js';
import { optionalRollingFields, rollingPlan } from './rolling.js';
import type { Plan, PlanContext } from './types.js';

export const serviceActionInput = z
  .object({ targets, unit: unitName, ...optionalRollingFields, timeout })
  .strict();

export function serviceActionPlan(
  tool: string,
  verb: 'restart' | 'reload',
  input: z.output<typeof serviceActionInput>,
  ctx: PlanContext,
): Plan {
  const hosts = resolveHosts(ctx, input.targets);
  const timeoutMs = input.timeout ?? ctx.defaults.commandTimeoutMs;
  return rollingPlan(tool, hosts, input.batch_size, input.failure_budget, (batch, n) => [
    execStep({ id: `${verb}-${n}`, hosts: batch, argv: ['systemctl', verb, '--', input.unit], asRoot: true, timeoutMs }),
  ]);
}
