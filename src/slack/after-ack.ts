// Work done after Slack has its ack (parsing, linking, planning, enqueueing, replies) runs
// through a small queue with bounded concurrency. Fifty commands arriving together then ack
// at once and are worked off a few at a time, instead of fifty plans for a thousand hosts
// competing with the acks still waiting for the event loop.
import { errorMessage } from '../../config/errors.js';
import type { Logger } from '../log.js';

export class AfterAck {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly concurrency: number,
    private readonly logger: Logger,
  ) {}

  /** Queue `work`; resolves when it finished (errors are logged, never thrown). */
  async run(work: () => Promise<void>): Promise<void> {
    if (this.active >= this.concurrency) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active += 1;
    try {
      // Let pending I/O (other requests waiting for their ack) go first.
      await new Promise<void>((resolve) => setImmediate(resolve));
      await work();
    } catch (error) {
      this.logger.warn({ err: errorMessage(error) }, 'Slack work after the ack failed');
    } finally {
      this.active -= 1;
      this.waiting.shift()?.();
    }
  }

  /** Work queued or running (shutdown waits for it). */
  get pending(): number {
    return this.active + this.waiting.length;
  }
}
