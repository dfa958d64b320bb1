// Every Redis key Castellan writes, in one place, under one prefix. Braces are not used:
// Castellan's own keys do not need cluster hash slots (BullMQ's queue keys use its prefix).

export interface Keys {
  readonly prefix: string;
  job(id: string): string;
  jobIndex(): string;
  /** Secondary job index: ids scored by creation time, one sorted set per value of `field`. */
  jobsBy(field: JobIndexField, value: string): string;
  /** Hash: job id → the secondary index keys it was added to (so any job can leave them all). */
  jobsWhere(): string;
  /** Sorted set: finished job ids scored by the time their records expire. */
  jobsExpiry(): string;
  /** Hash: finished job id → bytes its record, events and ledger hold in Redis (queues/retention.ts). */
  retainedBytes(): string;
  /** Sorted set: accounted finished job ids scored by when they finished (oldest pruned first). */
  retainedOrder(): string;
  /** Integer: the sum of `retainedBytes`. */
  retainedTotal(): string;
  /** Scratch key for one listing query's intersection (deleted by the same script). */
  jobsScratch(n: number): string;
  /** Audit index: stream entry ids scored by time, one sorted set per value of `field`. */
  auditBy(field: AuditIndexField, value: string): string;
  /** Audit index of every entry (same scores). */
  auditIndex(): string;
  /** Scratch key for one audit query's union/intersection (deleted by the same script). */
  auditScratch(n: number): string;
  events(id: string): string;
  ledger(id: string): string;
  hostLock(host: string): string;
  idempotency(subject: string, key: string): string;
  audit(): string;
  /** One audit entry's write marker (its stream id, kept briefly): a resent append adds nothing. */
  auditWrite(uid: string): string;
  cancelChannel(): string;
  /** Pub/sub channel: the id of a job whose event stream just grew (wakes followers). */
  eventsChannel(): string;
  /** Pub/sub channel: the id of a job whose final state event was just written (wakes its waiters). */
  endsChannel(): string;
  /** Stream of every job's state changes and votes (notifiers follow it). */
  feed(): string;
  workerHeartbeat(workerId: string): string;
  /** Sorted set (score: ms): jobs recorded whose submitter has not confirmed them yet (queues/submission.ts). */
  submitting(): string;
  /**
   * A key name that is never written, passed where a script's optional key is absent. Every
   * key a command names must be under the prefix, even an unused one: the least-privilege ACL
   * (docs/deployment.md, ~castellan:*) refuses any other name, '' included.
   */
  unused(): string;
  /** Written by each durability round just before its WAIT (queues/durable.ts). */
  durableTouch(): string;
  /** Pub/sub channel: MCP `notifications/cancelled` relayed between server processes. */
  mcpCancelChannel(): string;
}

export type JobIndexField = 'state' | 'tool' | 'requester' | 'host' | 'origin';
/**
 * `subject`: who acted; `requester`: whose job it was, when someone else acted (an approver, a
 * canceller); `gated`: entries of jobs that asked for approval (approvers read those);
 * `outcome`: a job's final state or a host's status.
 */
export type AuditIndexField = 'job' | 'subject' | 'requester' | 'gated' | 'tool' | 'host' | 'origin' | 'kind' | 'decision' | 'outcome';

export function keys(prefix: string): Keys {
  return {
    prefix,
    job: (id) => `${prefix}:job:${id}`,
    jobIndex: () => `${prefix}:jobs`,
    jobsBy: (field, value) => `${prefix}:jobs:${field}:${value}`,
    jobsWhere: () => `${prefix}:jobs:where`,
    jobsExpiry: () => `${prefix}:jobs:expiry`,
    retainedBytes: () => `${prefix}:retained:bytes`,
    retainedOrder: () => `${prefix}:retained:order`,
    retainedTotal: () => `${prefix}:retained:total`,
    jobsScratch: (n) => `${prefix}:jobs:scratch:${process.pid}:${n}:${Math.random().toString(36).slice(2)}`,
    auditBy: (field, value) => `${prefix}:audit:${field}:${value}`,
    auditIndex: () => `${prefix}:audit:all`,
    auditScratch: (n) => `${prefix}:audit-scratch:${process.pid}:${n}:${Math.random().toString(36).slice(2)}`,
    events: (id) => `${prefix}:events:${id}`,
    ledger: (id) => `${prefix}:ledger:${id}`,
    hostLock: (host) => `${prefix}:hostlock:${host}`,
    idempotency: (subject, key) => `${prefix}:idem:${subject}:${key}`,
    audit: () => `${prefix}:audit`,
    auditWrite: (uid) => `${prefix}:audit-write:${uid}`,
    cancelChannel: () => `${prefix}:cancel`,
    eventsChannel: () => `${prefix}:events-notify`,
    endsChannel: () => `${prefix}:events-ended`,
    feed: () => `${prefix}:feed`,
    workerHeartbeat: (workerId) => `${prefix}:worker:${workerId}`,
    submitting: () => `${prefix}:submitting`,
    unused: () => `${prefix}:unused`,
    durableTouch: () => `${prefix}:durable`,
    mcpCancelChannel: () => `${prefix}:mcp-cancel`,
  };
}
