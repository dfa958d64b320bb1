// Walking a plan's steps in the order they are shown: each batch's steps, each followed by
// the on-failure steps it arms. Commands for audit and approval, and the shape checks, all
// walk the same way.
import type { Plan, PlanStep } from '../types.js';
import { stepKind } from './index.js';

export interface WalkedStep {
  readonly step: PlanStep;
  readonly batch: number;
  /** The step whose success armed this one as an on-failure step. */
  readonly onFailureOf?: string | undefined;
}

export function walkPlan(plan: Plan): WalkedStep[] {
  const out: WalkedStep[] = [];
  const visit = (step: PlanStep, batch: number, onFailureOf?: string): void => {
    out.push({ step, batch, ...(onFailureOf !== undefined ? { onFailureOf } : {}) });
    for (const rollback of step.onFailure ?? []) visit(rollback, batch, step.id);
  };
  for (const [batch, b] of plan.batches.entries()) for (const step of b.steps) visit(step, batch);
  return out;
}

/** The argv people see for a step (its kind decides). */
export function stepCommand(step: PlanStep): string[] {
  return stepKind(step.action).command(step.action);
}

/**
 * Problems that would make a plan unsafe to run: duplicate step ids (the execution ledger
 * claims by id and host), on-failure steps about another subject. Empty when sound.
 */
export function planShapeProblems(plan: Plan): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const { step, onFailureOf } of walkPlan(plan)) {
    if (seen.has(step.id)) problems.push(`step id '${step.id}' is used twice`);
    seen.add(step.id);
    if (!/^[A-Za-z0-9._-]{1,40}$/.test(step.id)) problems.push(`step id '${step.id}' must be 1-40 characters of [A-Za-z0-9._-]`);
    if (onFailureOf !== undefined) {
      const parent = walkPlan(plan).find((w) => w.step.id === onFailureOf)?.step;
      if (parent?.subject !== undefined && step.subject !== undefined && step.subject !== parent.subject) {
        problems.push(`on-failure step '${step.id}' is about ${step.subject}, but '${parent.id}' is about ${parent.subject}`);
      }
    }
  }
  return problems;
}
