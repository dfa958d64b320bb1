// Every Redis key Castellan writes, in one place, under one prefix. Braces are not used:
// Castellan's own keys do not need cluster hash slots (BullMQ's queue keys use its prefix).

export interface Keys {
  readonly prefix: string;
  job(id: string): string;
  jobIndex(): string;
  events(id: string): string;
  ledger(id: string): string;
  hostLock(host: string): string;
  idempotency(subject: string, key: string): string;
  audit(): string;
  cancelChannel(): string;
  /** Pub/sub channel: the id of a job whose event stream just grew (wakes followers). */
  eventsChannel(): string;
  /** Stream of every job's state changes and votes (notifiers follow it). */
  feed(): string;
  workerHeartbeat(workerId: string): string;
}

export function keys(prefix: string): Keys {
  return {
    prefix,
    job: (id) => `${prefix}:job:${id}`,
    jobIndex: () => `${prefix}:jobs`,
    events: (id) => `${prefix}:events:${id}`,
    ledger: (id) => `${prefix}:ledger:${id}`,
    hostLock: (host) => `${prefix}:hostlock:${host}`,
    idempotency: (subject, key) => `${prefix}:idem:${subject}:${key}`,
    audit: () => `${prefix}:audit`,
    cancelChannel: () => `${prefix}:cancel`,
    eventsChannel: () => `${prefix}:events-notify`,
    feed: () => `${prefix}:feed`,
    workerHeartbeat: (workerId) => `${prefix}:worker:${workerId}`,
  };
}
