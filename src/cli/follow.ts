// A waiting CLI rides an outage of Redis (local mode) or of the server (remote mode). The job
// itself lives in Redis and runs on a worker, so losing contact says nothing about the job:
// the CLI says once that contact was lost and that the job goes on, keeps trying, says when it
// is back, and prints every event exactly once (it resumes after the last event it printed).
// If contact does not come back within `rideMs`, it says how to look the job up later instead
// of leaving the user to guess (and run the job a second time).
import { CastellanError, errorMessage } from '../../config/errors.js';
import { isRedisUnavailable } from '../../queues/connections.js';
import type { StampedEvent } from '../../queues/events.js';
import { sleep } from '../../queues/sleep.js';
import type { JobView } from '../present/job-view.js';
import type { JobClient } from './local.js';

export interface RideOptions {
  readonly timeoutMs: number;
  readonly onEvent: (e: StampedEvent) => void;
  /** One line for the person at the terminal (stderr). */
  readonly say: (line: string) => void;
  readonly signal?: AbortSignal | undefined;
  /** Give up after this long without contact (default 5 min). */
  readonly rideMs?: number | undefined;
  /** Pause between attempts while contact is lost (default 1 s). */
  readonly retryMs?: number | undefined;
}

/** Stream ids are "ms-seq": compare them as numbers, part by part. */
export function streamIdAfter(a: string, b: string): boolean {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am > bm || (am === bm && as > bs);
}

export async function followThroughOutages(client: JobClient, jobId: string, options: RideOptions): Promise<JobView> {
  const deadline = Date.now() + options.timeoutMs;
  const rideMs = options.rideMs ?? 5 * 60_000;
  let last = '0';
  let lostSince: number | undefined;
  const onEvent = (e: StampedEvent): void => {
    if (last !== '0' && !streamIdAfter(e.id, last)) return;
    last = e.id;
    options.onEvent(e);
  };
  for (;;) {
    try {
      if (lostSince !== undefined) {
        // Contact again? Reading the job proves it before following resumes.
        await client.get(jobId);
        options.say(`» back in contact after ${Math.round((Date.now() - lostSince) / 1000)} s; following job ${jobId} again`);
        lostSince = undefined;
      }
      return await client.wait(jobId, Math.max(0, deadline - Date.now()), onEvent, options.signal, last);
    } catch (err) {
      if (options.signal?.aborted || !isRedisUnavailable(err)) throw err;
      const now = Date.now();
      if (lostSince === undefined) {
        lostSince = now;
        options.say(`» lost contact with the job store (${shortReason(err)}); job ${jobId} goes on on its worker. Reconnecting…`);
      } else if (now - lostSince >= rideMs || now >= deadline) {
        throw new CastellanError(
          'unavailable',
          `no contact for ${Math.round((now - lostSince) / 1000)} s; job ${jobId} goes on without this terminal. Look it up with 'castellan job ${jobId}' before running anything again`,
        );
      }
      await sleep(options.retryMs ?? 1000, options.signal);
    }
  }
}

function shortReason(err: unknown): string {
  const message = errorMessage(err);
  return message.length > 120 ? `${message.slice(0, 117)}…` : message;
}
