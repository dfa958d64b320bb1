// Rolling execution shared by change tools: without `batch_size` every host runs at once;
// with it, hosts go in consecutive batches and the failure budget stops the roll early.
import type { z } from 'zod';
import type { BatchSize } from './host-result.js';
import { batchSize, failureBudget } from './fields.js';
import { rollingBatches } from './planning.js';
import type { Plan, PlanStep } from './types.js';

export const optionalRollingFields = {
  batch_size: batchSize.optional().describe('Roll through the hosts in batches of this size (a count like `2` or `25%`); all at once when absent.'),
  failure_budget: failureBudget.default(0).describe('Failed hosts tolerated before later batches are skipped. Default 0.'),
};

/** Batches that repeat `stepsFor(hosts, index)` over consecutive slices of the hosts. */
export function rollingPlan(
  tool: string,
  hosts: readonly string[],
  size: BatchSize | undefined,
  budget: number,
  stepsFor: (batchHosts: string[], batchNumber: number) => PlanStep[],
): Plan {
  const slices = size === undefined ? [[...hosts]] : rollingBatches(hosts, size);
  return {
    tool,
    hosts: [...hosts],
    batches: slices.map((slice, i) => ({ steps: stepsFor(slice, i + 1) })),
    failureBudget: budget,
  };
}

export type RollingInput = z.output<z.ZodObject<typeof optionalRollingFields>>;
