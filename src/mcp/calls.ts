// Tool calls in flight in this process, so `notifications/cancelled` can reach them. Over
// stateless Streamable HTTP every POST gets its own server instance, so the cancellation
// arrives at a different instance than the call it names; this registry is what joins them.
// Calls are keyed by the caller's subject as well as the JSON-RPC id: a caller can only
// cancel their own calls, whatever id they send. With several `castellan serve` processes
// behind one address, the cancellation may reach another process than the call: it is also
// published on Redis (`relayCancellations`), and every process cancels its own matching calls.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { dedicatedConnection } from '../../queues/connections.js';

export type RequestId = string | number;

interface Entry {
  readonly cancel: (reason: string) => void;
}

type Relay = (subject: string, requestId: RequestId, reason: string) => void;

export class InFlightCalls {
  private readonly calls = new Map<string, Set<Entry>>();
  private relay: Relay | undefined;

  /** Where cancellations go besides this process (set by `relayCancellations`). */
  setRelay(relay: Relay | undefined): void {
    this.relay = relay;
  }

  /** A client's `notifications/cancelled`: cancel here, and in every other server process. */
  cancelEverywhere(subject: string, requestId: RequestId, reason: string): void {
    this.cancel(subject, requestId, reason);
    this.relay?.(subject, requestId, reason);
  }

  private static key(subject: string, requestId: RequestId): string {
    return `${subject}\u0000${typeof requestId}:${String(requestId)}`;
  }

  /** Track a call; returns the function that stops tracking it. */
  register(subject: string, requestId: RequestId, cancel: (reason: string) => void): () => void {
    const key = InFlightCalls.key(subject, requestId);
    const entry: Entry = { cancel };
    const set = this.calls.get(key) ?? new Set<Entry>();
    set.add(entry);
    this.calls.set(key, set);
    return () => {
      set.delete(entry);
      if (set.size === 0 && this.calls.get(key) === set) this.calls.delete(key);
    };
  }

  /** Cancel the caller's call(s) with this id; returns how many were told. */
  cancel(subject: string, requestId: RequestId, reason: string): number {
    const set = this.calls.get(InFlightCalls.key(subject, requestId));
    if (!set) return 0;
    for (const entry of [...set]) entry.cancel(reason);
    return set.size;
  }

  get size(): number {
    let n = 0;
    for (const set of this.calls.values()) n += set.size;
    return n;
  }
}

interface RelayedCancel {
  readonly origin: string;
  readonly subject: string;
  readonly requestId: RequestId;
  readonly reason: string;
}

/**
 * Publish this process's MCP cancellations on `channel` and apply everyone else's. Returns the
 * function that stops relaying. A lost message (Redis away at that moment) is logged; the
 * client can still cancel the job itself with job_cancel.
 */
export async function relayCancellations(calls: InFlightCalls, redis: Redis, channel: string, logger: Logger): Promise<() => Promise<void>> {
  const origin = randomBytes(8).toString('hex');
  const subscriber = dedicatedConnection(redis);
  subscriber.on('message', (_channel: string, message: string) => {
    let relayed: RelayedCancel;
    try {
      relayed = JSON.parse(message) as RelayedCancel;
    } catch {
      return;
    }
    if (relayed.origin === origin || typeof relayed.subject !== 'string') return;
    if (typeof relayed.requestId !== 'string' && typeof relayed.requestId !== 'number') return;
    calls.cancel(relayed.subject, relayed.requestId, typeof relayed.reason === 'string' ? relayed.reason : '');
  });
  await subscriber.subscribe(channel);
  calls.setRelay((subject, requestId, reason) => {
    const message: RelayedCancel = { origin, subject, requestId, reason };
    redis.publish(channel, JSON.stringify(message)).catch((err: unknown) => {
      logger.warn({ err: String(err), requestId }, 'could not relay an MCP cancellation to the other server processes');
    });
  });
  return async () => {
    calls.setRelay(undefined);
    await subscriber.unsubscribe().catch(() => undefined);
    subscriber.disconnect();
  };
}
