// Progress of a job: one Redis stream per job. The worker appends; front ends follow it
// through the process's one event hub (queues/follow.ts). A stream, unlike pub/sub, lets a
// reader that connects late (or reconnects) catch up from any point.
import type { Redis } from 'ioredis';
import { CastellanError } from '../config/errors.js';
import { visibleInline } from '../config/visible.js';
import type { HostStatus } from '../tools/host-result.js';
import type { Redactor } from './redact.js';
import { appendToFeed, isFeedEvent } from './feed.js';
import type { Keys } from './keys.js';
import type { JobState } from './states.js';

export type JobEvent =
  | { readonly type: 'state'; readonly state: JobState; readonly reason?: string | undefined }
  | { readonly type: 'batch'; readonly index: number; readonly total: number; readonly hosts: readonly string[] }
  /** `rollbackFor`: an on-failure step putting that subject back (the job view shows "rolling back <subject>"). */
  | { readonly type: 'step'; readonly step: string; readonly description: string; readonly hosts: readonly string[]; readonly rollbackFor?: string | undefined }
  | { readonly type: 'host_started'; readonly step: string; readonly host: string }
  | {
      readonly type: 'host_finished';
      readonly step: string;
      readonly host: string;
      readonly status: HostStatus;
      readonly exitCode: number | null;
      readonly durationMs: number;
      readonly error?: string | undefined;
    }
  | { readonly type: 'output'; readonly step: string; readonly host: string; readonly stream: 'stdout' | 'stderr'; readonly text: string }
  | { readonly type: 'lock_wait'; readonly host: string; readonly holder: string }
  /** A gate's poll saw something new about its subject (see tools/steps/gate.ts). */
  | { readonly type: 'gate'; readonly step: string; readonly subject: string; readonly text: string }
  | { readonly type: 'vote'; readonly subject: string; readonly decision: 'approve' | 'deny'; readonly count: number; readonly required: number };

export interface StampedEvent {
  readonly id: string;
  readonly at: number;
  readonly event: JobEvent;
}

const STREAM_MAXLEN = 5000;

const EVENT_ID = /^(0|(\d{1,20})-(\d{1,20}))$/;

/**
 * A caller's "events after" position, checked before it reaches Redis: `0` or `<ms>-<seq>`,
 * each part a safe integer. Redis rejects ids past 2^64-1 with an error that would otherwise
 * surface as a 500; the caller gets a 400 naming the parameter instead.
 */
export function checkEventId(id: string): string {
  const match = EVENT_ID.exec(id);
  const ok = match !== null && (match[1] === '0' || (Number(match[2]) <= Number.MAX_SAFE_INTEGER && Number(match[3]) <= Number.MAX_SAFE_INTEGER));
  if (!ok) {
    throw new CastellanError('invalid_input', `after: '${visibleInline(id.slice(0, 40))}' is not an event id; expected 0 or <ms>-<seq> like 1712345678901-0, each part at most ${Number.MAX_SAFE_INTEGER}`, 'after');
  }
  return id;
}

export class JobEvents {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    readonly redactor: Redactor,
  ) {}

  async publish(jobId: string, event: JobEvent): Promise<void> {
    await this.publishMany(jobId, [event]);
  }

  /**
   * Several events in one round trip (a pipeline): one job-stream entry each, in order; state
   * changes and votes also go to the all-jobs feed; then one wake-up for this process's and
   * other processes' followers (queues/follow.ts).
   */
  async publishMany(jobId: string, events: readonly JobEvent[]): Promise<void> {
    if (events.length === 0) return;
    const key = this.keys.events(jobId);
    const pipeline = this.redis.multi();
    // Scrubbed like every other writer: an error text or a host name can carry a secret too.
    for (const event of events) {
      const clean = this.redactor.scrubDeep(event);
      pipeline.xadd(key, 'MAXLEN', '~', STREAM_MAXLEN, '*', 'e', JSON.stringify(clean));
      if (isFeedEvent(clean)) appendToFeed(pipeline, this.keys, jobId, clean);
    }
    pipeline.publish(this.keys.eventsChannel(), jobId);
    const replies = (await pipeline.exec()) ?? [];
    const failed = replies.find(([error]) => error);
    if (failed?.[0]) throw failed[0];
  }

  async read(jobId: string, afterId = '0', count = 1000): Promise<StampedEvent[]> {
    const entries = await this.redis.xrange(this.keys.events(jobId), afterId === '0' ? '-' : `(${afterId}`, '+', 'COUNT', count);
    return entries.map(([id, fields]) => stamp(id, fields));
  }
}

export function stamp(id: string, fields: string[]): StampedEvent {
  const json = fields[fields.indexOf('e') + 1] ?? '{}';
  return { id, at: Number(id.split('-')[0]), event: JSON.parse(json) as JobEvent };
}

/**
 * Coalesces output chunks per host and flushes them at most every `intervalMs`, so a chatty
 * command on 1000 hosts does not write 100,000 stream entries. Other events pass at once
 * (after flushing pending output, to keep order per host).
 */
export class ThrottledPublisher {
  private pending = new Map<string, { step: string; host: string; stream: 'stdout' | 'stderr'; text: string }>();
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  /** Events waiting for the next write; at 1000 hosts, one XADD round trip each would trail the fan-out. */
  private queued: JobEvent[] = [];

  /** Output characters accepted so far; past `maxOutputChars` the preview stops (once, with a marker). */
  private outputSent = 0;
  private outputStopped = false;

  constructor(
    private readonly events: JobEvents,
    private readonly jobId: string,
    private readonly intervalMs = 250,
    private readonly maxChunkChars = 4096,
    /** Live output kept in the job's event stream (limits.output_per_job). */
    private readonly maxOutputChars = Number.POSITIVE_INFINITY,
  ) {}

  emit(event: JobEvent): void {
    if (event.type === 'output') {
      if (this.outputStopped) return;
      const room = this.maxOutputChars - this.outputSent;
      const spent = event.text.length >= room;
      const piece = spent ? event.text.slice(0, Math.max(0, room)) : event.text;
      this.outputSent += piece.length;
      const key = `${event.step}\u0000${event.host}\u0000${event.stream}`;
      const current = this.pending.get(key);
      const text = (current?.text ?? '') + piece;
      // Progress is a preview: the full (capped) output lives in the result.
      this.pending.set(key, { ...event, text: text.length > this.maxChunkChars ? text.slice(0, this.maxChunkChars) : text });
      if (spent) {
        // The preview's budget (limits.output_per_job) is spent: publish what fits, say so once.
        // Held-back tails are dropped, not released: a secret cut in half must not show its first half.
        this.outputStopped = true;
        this.flush(false);
        this.pending.clear();
        this.enqueue({ ...event, text: `\n[… live output preview stopped: limits.output_per_job of ${this.maxOutputChars} bytes reached; the result keeps what fits]\n` });
        return;
      }
      this.timer ??= setTimeout(() => this.flush(false), this.intervalMs);
      return;
    }
    // Output of a host is complete once it finished: release its held-back tail.
    if (event.type === 'host_finished') this.flush(true, event.host);
    this.flush(false);
    this.enqueue(event);
  }

  /**
   * Write pending output. Until the host's output is complete (`final`), a tail that could be
   * the beginning of a secret is held back: a secret split across two chunks must be whole when
   * the redactor sees it. Output with no such tail goes out at once.
   */
  flush(final = true, onlyHost?: string): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const [key, chunk] of [...this.pending]) {
      if (onlyHost !== undefined && chunk.host !== onlyHost) continue;
      const clean = this.events.redactor.scrub(chunk.text);
      const cut = final ? clean.length : clean.length - this.events.redactor.pendingTail(clean);
      if (cut > 0) this.enqueue({ type: 'output', ...chunk, text: clean.slice(0, cut) });
      if (cut < clean.length) this.pending.set(key, { ...chunk, text: clean.slice(cut) });
      else this.pending.delete(key);
    }
    if (this.pending.size > 0) this.timer = setTimeout(() => this.flush(false), this.intervalMs);
  }

  /** Wait until everything emitted so far is written. */
  async drain(): Promise<void> {
    this.flush(true);
    await this.chain;
  }

  /**
   * Events queued while a write is in flight go out together in the next one (one pipeline),
   * so the stream keeps their order and a burst costs one round trip instead of one per event.
   */
  private enqueue(event: JobEvent): void {
    this.queued.push(event);
    if (this.queued.length > 1) return; // a write is already scheduled and will take this one too
    this.chain = this.chain
      .then(() => {
        const batch = this.queued;
        this.queued = [];
        return this.events.publishMany(this.jobId, batch);
      })
      .catch(() => undefined);
  }
}
