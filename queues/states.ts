// The life of a Castellan job. BullMQ's own states (delayed, waiting, active, …) are an
// implementation detail; these are the states operators see in every front end.

export const JOB_STATES = [
  'awaiting_approval',
  'queued',
  /** Approved (or needing none), parked until a maintenance window of its hosts opens. */
  'waiting_window',
  'running',
  'succeeded',
  'failed',
  'partially_failed',
  'cancelled',
  'denied',
  'expired',
  'interrupted',
] as const;
export type JobState = (typeof JOB_STATES)[number];

/** States that never change again: everything but waiting for approval, queued and running. */
const IN_FLIGHT: readonly JobState[] = ['awaiting_approval', 'queued', 'waiting_window', 'running'];
export const FINAL_STATES: ReadonlySet<JobState> = new Set(JOB_STATES.filter((s) => !IN_FLIGHT.includes(s)));

export function isFinal(state: JobState): boolean {
  return FINAL_STATES.has(state);
}

/** Allowed predecessors of each state; every transition is checked atomically in Redis. */
export const ALLOWED_FROM: Readonly<Record<JobState, readonly JobState[]>> = {
  awaiting_approval: [],
  queued: ['awaiting_approval', 'waiting_window'],
  waiting_window: ['queued'],
  running: ['queued'],
  succeeded: ['running'],
  // From awaiting_approval only when its submission never completed (queues/submission.ts).
  failed: ['running', 'queued', 'waiting_window', 'awaiting_approval'],
  partially_failed: ['running'],
  cancelled: ['awaiting_approval', 'queued', 'waiting_window', 'running'],
  denied: ['awaiting_approval', 'queued', 'waiting_window'],
  expired: ['awaiting_approval'],
  interrupted: ['running'],
};
