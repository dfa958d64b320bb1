// A FIFO counting semaphore for SSH channels. OpenSSH refuses a channel beyond MaxSessions
// (default 10) with "open failed"; callers past the limit wait their turn here instead.

export class SlotsClosedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SlotsClosedError';
  }
}

interface Waiter {
  grant: (release: () => void) => void;
  fail: (error: Error) => void;
}

export class ChannelSlots {
  private used = 0;
  private readonly waiters: Waiter[] = [];
  private closedWith: Error | null = null;

  constructor(readonly size: number, private readonly onChange: () => void = () => undefined) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`channel slots must be a positive integer, not ${size}`);
  }

  get inUse(): number {
    return this.used;
  }

  get queued(): number {
    return this.waiters.length;
  }

  /** Wait for a slot; the returned function gives it back (idempotent). */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    if (signal?.aborted) return Promise.reject(new Error('cancelled while waiting for a channel'));
    if (this.used < this.size) {
      this.used++;
      this.onChange();
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const index = this.waiters.indexOf(waiter);
        if (index >= 0) this.waiters.splice(index, 1);
        reject(new Error('cancelled while waiting for a channel'));
      };
      const waiter: Waiter = {
        grant: (release) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(release);
        },
        fail: (error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** Refuse new and queued acquisitions (the connection is gone); held slots are released normally. */
  close(error: Error): void {
    this.closedWith = error;
    for (const waiter of this.waiters.splice(0)) waiter.fail(error);
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      // The slot passes straight to the next waiter, so `used` stays the same.
      if (next) next.grant(this.releaser());
      else this.used--;
      this.onChange();
    };
  }
}
