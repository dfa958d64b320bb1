// Prometheus metrics (prom-client). One registry per process, created lazily so tests can
// build several services without "metric already registered" errors.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface CastellanMetrics {
  readonly registry: Registry;
  readonly jobsSubmitted: Counter<'tool' | 'origin' | 'risk'>;
  readonly jobsFinished: Counter<'tool' | 'state'>;
  readonly jobDuration: Histogram<'tool'>;
  readonly queueWait: Histogram;
  readonly hostResults: Counter<'status'>;
  readonly approvals: Counter<'decision'>;
  /** Job creations refused by limits.rate or limits.jobs_per_requester. */
  readonly rateLimited: Counter<'origin'>;
  readonly activeJobs: Gauge;
  /** Bytes finished jobs hold in Redis (record, events, ledger), as of this process's last job ending. */
  readonly retainedBytes: Gauge;
  /** Finished jobs deleted to keep jobs.retention.max_bytes, and the bytes that freed. */
  readonly prunedJobs: Counter;
  readonly prunedBytes: Counter;
}

let shared: CastellanMetrics | undefined;

export function metrics(): CastellanMetrics {
  if (shared) return shared;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'castellan_process_' });
  shared = {
    registry,
    jobsSubmitted: new Counter({ name: 'castellan_jobs_submitted_total', help: 'Requests accepted as jobs', labelNames: ['tool', 'origin', 'risk'], registers: [registry] }),
    jobsFinished: new Counter({ name: 'castellan_jobs_finished_total', help: 'Jobs that reached a final state', labelNames: ['tool', 'state'], registers: [registry] }),
    jobDuration: new Histogram({ name: 'castellan_job_duration_seconds', help: 'Run time of executed jobs', labelNames: ['tool'], buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800], registers: [registry] }),
    queueWait: new Histogram({ name: 'castellan_job_queue_wait_seconds', help: 'Time from queued to running', buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30], registers: [registry] }),
    hostResults: new Counter({ name: 'castellan_host_results_total', help: 'Per-host step outcomes', labelNames: ['status'], registers: [registry] }),
    approvals: new Counter({ name: 'castellan_approval_decisions_total', help: 'Approval votes and denials', labelNames: ['decision'], registers: [registry] }),
    rateLimited: new Counter({ name: 'castellan_requests_rate_limited_total', help: 'Job creations refused by limits.rate or limits.jobs_per_requester', labelNames: ['origin'], registers: [registry] }),
    activeJobs: new Gauge({ name: 'castellan_active_jobs', help: 'Jobs running in this process', registers: [registry] }),
    retainedBytes: new Gauge({ name: 'castellan_retained_job_bytes', help: 'Bytes finished jobs hold in Redis (record, events, ledger)', registers: [registry] }),
    prunedJobs: new Counter({ name: 'castellan_retention_pruned_jobs_total', help: 'Finished jobs deleted to keep jobs.retention.max_bytes', registers: [registry] }),
    prunedBytes: new Counter({ name: 'castellan_retention_pruned_bytes_total', help: 'Bytes freed by pruning finished jobs (jobs.retention.max_bytes)', registers: [registry] }),
  };
  return shared;
}
