// What the job layer needs to know about Redis connections: whether an error means "Redis
// cannot be reached right now" (as opposed to a bug or a refused command), and how to open a
// dedicated connection for subscribers and blocking reads. Connections themselves are made in
// src/redis.ts; this layer only sees ioredis instances.
import type { Redis } from 'ioredis';
import { CastellanError, errorMessage } from '../config/errors.js';

// ioredis and Node phrase "not reachable" in a handful of ways; a command Redis refused
// (WRONGTYPE, NOSCRIPT, OOM…) is not among them and must not be reported as an outage.
const UNAVAILABLE = [
  /Stream isn't writeable/,
  /Connection is closed/,
  /Command timed out/,
  /Reached the max retries per request/,
  /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN/,
  /All sentinels are unreachable/,
  /^LOADING /,
  /^READONLY /,
  /^MASTERDOWN /,
  /^CLUSTERDOWN /,
  /^TRYAGAIN /,
  /connect ETIMEDOUT/,
];

/** True when `err` says Redis could not be reached (down, restarting, failing over, timed out). */
export function isRedisUnavailable(err: unknown): boolean {
  if (err instanceof CastellanError) return err.code === 'unavailable';
  if (!(err instanceof Error)) return false;
  if (err.name === 'MaxRetriesPerRequestError') return true;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && /^(ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH)$/.test(code)) return true;
  return UNAVAILABLE.some((re) => re.test(err.message));
}

/** Seconds a caller should wait before retrying after `unavailable` (HTTP Retry-After). */
export const RETRY_AFTER_S = 5;

/**
 * The error callers get when Redis is unreachable. `outcome` says what did (not) happen, e.g.
 * "nothing was run": a person reading it must know whether to retry.
 */
export function redisUnavailable(err: unknown, outcome: string): CastellanError {
  const detail = err instanceof CastellanError ? err.message : errorMessage(err);
  return new CastellanError('unavailable', `unavailable: the job store (Redis) is not reachable (${detail}); ${outcome}. Retry in a few seconds.`);
}

/**
 * A connection of its own for a subscriber or a blocking read. Unlike the front-end
 * connection it keeps commands through an outage and has no command timeout (a blocking
 * XREAD must not time out client-side): it waits Redis out and carries on.
 */
export function dedicatedConnection(redis: Redis): Redis {
  const connection = redis.duplicate({ enableOfflineQueue: true, commandTimeout: undefined, maxRetriesPerRequest: null, lazyConnect: false });
  // Outages are reported once per state change by the main connection (src/redis.ts); the
  // duplicate's own errors would otherwise print "[ioredis] Unhandled error event" traces.
  connection.on('error', () => undefined);
  return connection;
}

/**
 * The connection queues/durable.ts confirms writes on. It must never run a command on another
 * socket than the one it was sent on (WAIT proves something only about its own connection's
 * writes): no offline queue, no resend after a reconnect, in-flight commands fail when the
 * socket closes. Its command timeout outlasts the longest WAIT. Being its own connection, a
 * WAIT that blocks for redis.confirm_timeout holds up no other command of the process.
 */
export function durableConnection(redis: Redis, waitMs: number, closedOnPurpose: () => boolean = () => false): Redis {
  const connection = redis.duplicate({
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    commandTimeout: waitMs + 5000,
    lazyConnect: false,
  });
  connection.on('error', () => undefined);
  keepReconnecting(connection, closedOnPurpose);
  return connection;
}

/**
 * Start a connection again when it ends without being closed on purpose. ioredis 5 with
 * Sentinel's failoverDetector: a `+switch-master` that arrives while the connection is already
 * reconnecting (its primary just died) aborts that reconnect for good — the sentinel connector
 * throws "Connection is closed." and the client goes to `end` instead of retrying. Seen in the
 * Sentinel tests after a kill or a forced failover: the server's front connection "gave up",
 * and a worker whose heartbeat connection ended was judged gone while it ran a job.
 *
 * Connections made from this one with `duplicate()` get the same care: BullMQ makes its own
 * from the connection it is given (each Worker's command connection and its blocking one,
 * FlowProducers, QueueEvents), and so do dedicatedConnection and durableConnection. BullMQ
 * brings its blocking connection back by itself, but not a Worker's command connection: ended,
 * that worker never again takes a job, renews a lock, completes a job or looks for stalled ones.
 * A duplicate counts as closed on purpose once its own `disconnect()` or `quit()` was called
 * (how BullMQ and Castellan close them).
 */
export function keepReconnecting(redis: Redis, closedOnPurpose: () => boolean, delayMs = 500): void {
  const reasons = purposes.get(redis);
  if (reasons) {
    // Already kept (a duplicate of a kept connection): one more way to be closed on purpose.
    reasons.push(closedOnPurpose);
    return;
  }
  const mine = [closedOnPurpose];
  purposes.set(redis, mine);
  const deliberate = (): boolean => mine.some((closed) => closed());
  redis.on('end', () => {
    if (deliberate()) return;
    setTimeout(() => {
      if (deliberate() || redis.status !== 'end') return;
      redis.connect().catch(() => undefined);
    }, delayMs).unref();
  });
  const duplicate = redis.duplicate.bind(redis);
  redis.duplicate = (override) => {
    const copy = duplicate(override);
    let closed = false;
    const disconnect = copy.disconnect.bind(copy);
    copy.disconnect = (reconnect?: boolean): void => {
      if (!reconnect) closed = true;
      disconnect(reconnect);
    };
    const quit = copy.quit.bind(copy);
    copy.quit = (...args: Parameters<typeof copy.quit>) => {
      closed = true;
      return quit(...args);
    };
    // Opened again after a deliberate close (BullMQ resets a stuck blocking connection that
    // way): from then on an end is again one to recover from.
    copy.on('ready', () => {
      closed = false;
    });
    keepReconnecting(copy, () => closed, delayMs);
    return copy;
  };
}

/** The closed-on-purpose checks of each kept connection. */
const purposes = new WeakMap<Redis, Array<() => boolean>>();
