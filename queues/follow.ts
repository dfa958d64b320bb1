// One way to follow a job: its events from a position, then live ones as they are written.
// Every follower in a process (CLI waits, API long-polls, MCP calls, notifiers) shares one
// Redis subscription: writers publish the job id on one channel after appending, and the hub
// wakes only that job's followers, which read the new entries with XRANGE on the shared
// connection. Pub/sub can drop a message (reconnect), so a follower also re-reads after a
// quiet `pollMs`: a lost wake-up costs latency, never an event.
import type { Redis } from 'ioredis';
import type { JobEvents, StampedEvent } from './events.js';
import type { Keys } from './keys.js';
import { isFinal } from './states.js';
import { dedicatedConnection } from './connections.js';

export interface FollowOptions {
  /** Stream position to start after ('0': from the first event). */
  readonly after?: string | undefined;
  readonly signal?: AbortSignal | undefined;
  /** Stop after the event that makes the job final (default true). */
  readonly untilFinal?: boolean | undefined;
}

export class JobEventHub {
  private subscriber: Redis | undefined;
  private subscribing: Promise<void> | undefined;
  private readonly waiters = new Map<string, Set<() => void>>();
  /** Waiters for a job's end only (the endings' channel): not woken by its progress. */
  private readonly endWaiters = new Map<string, Set<() => void>>();

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly events: JobEvents,
    private readonly pollMs = 2000,
  ) {}

  /** Followers currently registered (for tests and metrics). */
  get followers(): number {
    let n = 0;
    for (const set of this.waiters.values()) n += set.size;
    return n;
  }

  async *follow(jobId: string, options: FollowOptions = {}): AsyncGenerator<StampedEvent> {
    await this.subscribe();
    let last = options.after ?? '0';
    const untilFinal = options.untilFinal ?? true;
    while (!options.signal?.aborted) {
      // Registered before reading, so an append between the read and the wait still wakes us.
      const woken = this.wakeUp(jobId, options.signal);
      const batch = await this.events.read(jobId, last, 500);
      for (const e of batch) {
        last = e.id;
        yield e;
        if (untilFinal && e.event.type === 'state' && isFinal(e.event.state)) {
          woken.cancel();
          return;
        }
      }
      if (batch.length === 500) {
        woken.cancel();
        continue;
      }
      await woken.promise;
    }
  }

  /**
   * The job's next wake-up (an event written for it by any process), the poll interval, or the
   * abort, whichever comes first: for a waiter that reads the record, not the events. Registered
   * when this resolves, so a write after the caller's next read still wakes it.
   */
  async nextChange(jobId: string, signal?: AbortSignal): Promise<{ promise: Promise<void>; cancel: () => void }> {
    await this.subscribe();
    return this.wakeUp(jobId, signal);
  }

  /**
   * Like nextChange, but woken only when a final state event of the job is written (its
   * writer's message on the endings' channel), the poll interval, or the abort: a waiter for
   * the end does not read Redis again for every batch of the job's progress.
   */
  async nextEnd(jobId: string, signal?: AbortSignal): Promise<{ promise: Promise<void>; cancel: () => void }> {
    await this.subscribe();
    return this.wakeUp(jobId, signal, this.endWaiters);
  }

  async close(): Promise<void> {
    const sub = this.subscriber;
    this.subscriber = undefined;
    this.subscribing = undefined;
    for (const set of [...this.waiters.values(), ...this.endWaiters.values()]) for (const wake of set) wake();
    if (sub) {
      await sub.unsubscribe().catch(() => undefined);
      sub.disconnect();
    }
  }

  private subscribe(): Promise<void> {
    this.subscribing ??= (async () => {
      const sub = dedicatedConnection(this.redis);
      this.subscriber = sub;
      const ends = this.keys.endsChannel();
      sub.on('message', (channel: string, jobId: string) => {
        for (const wake of (channel === ends ? this.endWaiters : this.waiters).get(jobId) ?? []) wake();
      });
      // The subscriber's errors surface through the followers' reads; keep it from crashing the process.
      sub.on('error', () => undefined);
      await sub.subscribe(this.keys.eventsChannel(), ends);
    })();
    return this.subscribing;
  }

  /** A promise that settles on the job's next wake-up, the poll interval, or abort. */
  private wakeUp(jobId: string, signal: AbortSignal | undefined, waiters = this.waiters): { promise: Promise<void>; cancel: () => void } {
    let wake!: () => void;
    const promise = new Promise<void>((resolve) => {
      wake = resolve;
    });
    const timer = setTimeout(done, this.pollMs);
    let set = waiters.get(jobId);
    if (!set) waiters.set(jobId, (set = new Set()));
    set.add(done);
    signal?.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      set?.delete(done);
      if (set?.size === 0 && waiters.get(jobId) === set) waiters.delete(jobId);
      signal?.removeEventListener('abort', done);
      wake();
    }
    return { promise, cancel: done };
  }
}
