// BullMQ's cancelJob() only works on the worker instance that runs the job. Castellan's
// cancel must reach whichever worker that is, on whichever machine: the request is written
// to the job record (so a worker that misses the message still sees it on its next check)
// and broadcast over Redis pub/sub to every worker.
import type { Redis } from 'ioredis';
import type { Keys } from './keys.js';
import { dedicatedConnection } from './connections.js';

export class CancelBroadcast {
  private subscriber: Redis | undefined;
  /** Per job, every hook running here: the shards of a split job may share a worker. */
  private readonly listeners = new Map<string, Set<(reason: string) => void>>();

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  async announce(jobId: string, reason: string): Promise<void> {
    await this.redis.publish(this.keys.cancelChannel(), JSON.stringify({ jobId, reason }));
  }

  /** Start listening (workers only). */
  async listen(): Promise<void> {
    if (this.subscriber) return;
    const sub = dedicatedConnection(this.redis);
    this.subscriber = sub;
    sub.on('message', (_channel: string, message: string) => {
      try {
        const { jobId, reason } = JSON.parse(message) as { jobId: string; reason: string };
        for (const listener of this.listeners.get(jobId) ?? []) listener(reason);
      } catch {
        // A malformed message is ignored: the record flag is the fallback.
      }
    });
    await sub.subscribe(this.keys.cancelChannel());
  }

  /** Register the abort hook of a job running here; returns the unregister function. */
  watch(jobId: string, onCancel: (reason: string) => void): () => void {
    let set = this.listeners.get(jobId);
    if (!set) this.listeners.set(jobId, (set = new Set()));
    set.add(onCancel);
    return () => {
      set.delete(onCancel);
      if (set.size === 0 && this.listeners.get(jobId) === set) this.listeners.delete(jobId);
    };
  }

  async close(): Promise<void> {
    const sub = this.subscriber;
    this.subscriber = undefined;
    if (sub) {
      await sub.unsubscribe().catch(() => undefined);
      sub.disconnect();
    }
  }
}
