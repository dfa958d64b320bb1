// BullMQ's cancelJob() only works on the worker instance that runs the job. Castellan's
// cancel must reach whichever worker that is, on whichever machine: the request is written
// to the job record (so a worker that misses the message still sees it on its next check)
// and broadcast over Redis pub/sub to every worker.
import type { Redis } from 'ioredis';
import type { Keys } from './keys.js';

export class CancelBroadcast {
  private subscriber: Redis | undefined;
  private readonly listeners = new Map<string, (reason: string) => void>();

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
    const sub = this.redis.duplicate();
    this.subscriber = sub;
    sub.on('message', (_channel: string, message: string) => {
      try {
        const { jobId, reason } = JSON.parse(message) as { jobId: string; reason: string };
        this.listeners.get(jobId)?.(reason);
      } catch {
        // A malformed message is ignored: the record flag is the fallback.
      }
    });
    await sub.subscribe(this.keys.cancelChannel());
  }

  /** Register the abort hook of a job running here; returns the unregister function. */
  watch(jobId: string, onCancel: (reason: string) => void): () => void {
    this.listeners.set(jobId, onCancel);
    return () => this.listeners.delete(jobId);
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
