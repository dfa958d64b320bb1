// How a running job (or one site's shard of it) stops. The first stop — a cancel, the job's
// deadline, a shutdown, a lost lock, another shard halting — aborts the job's signal: nothing
// new starts and what runs is stopped. A subject stopped in the middle of a change (a drain
// done, its upgrade cut off) would be left half-changed, so after a cancel or a deadline the
// on-failure steps its finished steps armed still run, each bounded by its own timeout, under
// a second signal. A further cancel aborts that one (the operator's "stop everything now"),
// and so does a shutdown or a lost lock. The deadline passing again does not: rollbacks are
// bounded by their own timeouts. After a shutdown, a lost lock or a halt no rollback runs:
// another worker may own the job, or resume it from the ledger.
import { setMaxListeners } from 'node:events';
import type { HostStatus } from '../tools/host-result.js';
import type { ShardStop } from './shards.js';

export type StopReason = ShardStop;

const ROLLS_BACK: ReadonlySet<StopReason> = new Set(['cancel', 'timeout']);

export class JobStop {
  readonly #job = new AbortController();
  readonly #rollback = new AbortController();
  #reason: StopReason | undefined;
  #detail = '';

  /** `onFirst`: told once, when the job first stops (a shard tells the other shards). */
  constructor(private readonly onFirst?: (reason: StopReason, detail: string) => void) {
    // Every host in flight listens on these signals (a 64-host window exceeds the default 10).
    setMaxListeners(0, this.#job.signal, this.#rollback.signal);
  }

  /** Aborted at the first stop. */
  get signal(): AbortSignal {
    return this.#job.signal;
  }

  get reason(): StopReason | undefined {
    return this.#reason;
  }

  get detail(): string {
    return this.#detail;
  }

  stop(reason: StopReason, detail?: string): void {
    const text = detail ?? reason;
    if (this.#reason === undefined) {
      this.#reason = reason;
      this.#detail = text;
      this.#job.abort(new Error(text));
      this.onFirst?.(reason, text);
      return;
    }
    if (reason !== 'timeout') this.#rollback.abort(new Error(`on-failure steps stopped: ${text}`));
  }

  /**
   * The signal on-failure steps run under once the job stopped; undefined when this stop
   * runs none (shutdown, lost lock, halt) or the job has not stopped.
   */
  rollbackSignal(): AbortSignal | undefined {
    return this.#reason !== undefined && ROLLS_BACK.has(this.#reason) ? this.#rollback.signal : undefined;
  }
}

/** The status hosts stopped by the job's abort get: cancelled, timed_out at the deadline, skipped when another shard halted. */
export function abortStatusOf(stop: StopReason | undefined): HostStatus {
  if (stop === 'timeout') return 'timed_out';
  // Another shard stopped the job, or a claim was not confirmed: later hosts were simply not started.
  if (stop === 'halt' || stop === 'unconfirmed') return 'skipped';
  return 'cancelled';
}
