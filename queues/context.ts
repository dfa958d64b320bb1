// Everything the job layer needs, built once per process by src/runtime.ts. The service
// (front-end side) and the worker (execution side) share it; neither knows which front end
// or which transport is involved.
import type { LimitSettings } from '../config/schema.js';
import type { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import type { Inventory } from '../config/types.js';
import type { Logger } from 'pino';
import type { Redactor } from './redact.js';
import type { SshTarget } from './execution.js';
import type { PlanContext, ToolDefinition } from '../tools/types.js';
import type { AuditLog } from './audit.js';
import type { MaintenanceSettings } from './maintenance.js';
import type { CancelBroadcast } from './cancel.js';
import type { JobEventHub } from './follow.js';
import type { JobFeed } from './feed.js';
import type { JobEvents } from './events.js';
import type { HostLocks } from './host-locks.js';
import type { Keys } from './keys.js';
import type { ExecutionLedger } from './ledger.js';
import type { JobStore } from './records.js';
import type { PlanExecutor } from './runner.js';
import type { Durability, DurabilitySettings } from './durable.js';

export interface JobSettings {
  readonly waitBudgetMs: number;
  readonly defaultTimeoutMs: number;
  readonly readOnly: boolean;
  readonly approvals: { readonly required: number; readonly allowSelfApproval: boolean; readonly expiryMs: number };
  readonly retention: {
    readonly completedAgeS: number;
    readonly completedCount: number;
    readonly failedAgeS: number;
    readonly failedCount: number;
    /** Bytes all finished jobs may hold in Redis together (queues/retention.ts); a default when absent. */
    readonly maxBytes?: number | undefined;
  };
  readonly worker: {
    readonly concurrency: number;
    readonly lockDurationMs: number;
    readonly stalledIntervalMs: number;
    readonly readRetries: number;
    readonly shutdownGraceMs: number;
    /** Heartbeat key TTL; a worker whose key has been missing this long (on one primary) is gone. */
    readonly heartbeatTtlMs: number;
    /** A crashed worker: its connection missing this long on a settled primary (0: heartbeat only). */
    readonly goneConfirmMs: number;
  };
  readonly window: number;
  /** TTL of a per-host lock; its owner renews it every third of that. */
  readonly hostLockTtlMs: number;
  /** How often a long-lived process looks for submissions that never completed (queues/submission.ts). */
  readonly reconcileEveryMs: number;
  /** How long a submission may stay unconfirmed before it is ended "never queued". */
  readonly submitGraceMs: number;
  /** Replicas that must hold a submission, a decision, a job's claim and ending (queues/durable.ts); absent: none. */
  readonly replication?: DurabilitySettings | undefined;
  /** When destructive jobs may run on which hosts (queues/maintenance.ts). */
  readonly maintenance: MaintenanceSettings;
  /** Per-person and per-request bounds (config `limits:`); defaults when absent. */
  readonly limits?: LimitSettings | undefined;
  /**
   * The configured local identity's subject: exempt from the rate and concurrency limits when it
   * acts from the CLI (whoever holds it already has the config and Redis; limiting protects nothing).
   */
  readonly localSubject?: string | undefined;
  /** The wall clock maintenance windows are judged by; tests pass a fake one. */
  readonly clock?: (() => number) | undefined;
}

export interface InventoryProvider {
  /** The current inventory (re-read when its files change). */
  current(): Promise<Inventory>;
}

export interface ToolCatalogue {
  get(name: string): ToolDefinition | undefined;
  list(): readonly ToolDefinition[];
}

export interface QueueContext {
  readonly redis: Redis;
  readonly keys: Keys;
  readonly queue: Queue;
  readonly queueName: string;
  readonly store: JobStore;
  readonly events: JobEvents;
  /** The process's one subscription for following jobs. */
  readonly hub: JobEventHub;
  /** Every job's state changes and votes, for notifiers. */
  readonly feed: JobFeed;
  readonly audit: AuditLog;
  readonly ledger: ExecutionLedger;
  /** Confirms writes on replicas over a connection of its own (queues/durable.ts). */
  readonly durable: Durability;
  readonly locks: HostLocks;
  readonly cancel: CancelBroadcast;
  readonly tools: ToolCatalogue;
  readonly inventory: InventoryProvider;
  planContext(inventory: Inventory): PlanContext;
  targetFor(inventory: Inventory, host: string): SshTarget;
  readonly executor: PlanExecutor;
  readonly settings: JobSettings;
  readonly redactor: Redactor;
  readonly logger: Logger;
}
