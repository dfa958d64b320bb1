// Progress of a job: one Redis stream per job. The worker appends; front ends follow it
// through the process's one event hub (queues/follow.ts). A stream, unlike pub/sub, lets a
// reader that connects late (or reconnects) catch up from any point.
import type { Redis } from 'ioredis';
import { CastellanError } from '../config/errors.js';
import { visibleInline } from '../config/visible.js';
import type { HostStatus } from '../tools/host-result.js';
import type { Redactor } from './redact.js';
import { FEED_MAXLEN, isFeedEvent } from './feed.js';
import type { Keys } from './keys.js';
import { guardRefuses, type RunGuard } from './run-guard.js';
import { runScript } from './scripts.js';
import { isFinal, type JobState } from './states.js';

export type JobEvent =
  | { readonly type: 'state'; readonly state: JobState; readonly reason?: string | undefined }
  | { readonly type: 'batch'; readonly index: number; readonly total: number; readonly hosts: readonly string[] }
  /** `rollbackFor`: an on-failure step putting that subject back (the job view shows "rolling back <subject>"). */
  | { readonly type: 'step'; readonly step: string; readonly description: string; readonly hosts: readonly string[]; readonly rollbackFor?: string | undefined }
  /** Not written for a host that finished within the publisher's interval (see ThrottledPublisher). */
  | { readonly type: 'host_started'; readonly step: string; readonly host: string }
  | {
      readonly type: 'host_finished';
      readonly step: string;
      readonly host: string;
      readonly status: HostStatus;
      readonly exitCode: number | null;
      readonly durationMs: number;
      readonly error?: string | undefined;
      /** The job's stop caught this host (a cancel, the deadline): not a failure of the host itself. */
      readonly stopped?: true | undefined;
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

// KEYS[1] the job's stream, KEYS[2] the all-jobs feed, KEYS[3] a hash guarding the write
// (keys.unused() for none). ARGV: 1 the stream's max length, 2 the feed's, 3 the wake-up
// channel, 4 the job id, 5 and 6 the guard's field and the value it must hold, 7 keys.unused(),
// 8 the endings' channel when the batch holds a final state ('' otherwise: waiters for the end
// are woken by it alone, not by every batch of progress), then per event: 'f' (also to the
// feed) or 'j', and its JSON. The stream and the feed move together (one
// script), as they did in a MULTI; the feed entry's fields are those of appendToFeed
// (queues/feed.ts). Returns 0, writing nothing, when the guard's field holds another value.
const APPEND_EVENTS = `
if ${guardRefuses('KEYS[3]', 'ARGV[5]', 'ARGV[6]')} then return 0 end
for i = 9, #ARGV, 2 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[i + 1])
  if ARGV[i] == 'f' then redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'j', ARGV[4], 'e', ARGV[i + 1]) end
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
if ARGV[8] ~= '' then redis.call('PUBLISH', ARGV[8], ARGV[4]) end
return 1
`;

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
   * Several events in one round trip and one script call: one job-stream entry each, in order;
   * state changes and votes also go to the all-jobs feed; then one wake-up for this process's
   * and other processes' followers (queues/follow.ts). One call for the batch, not a command per
   * event: at 1000 hosts a MULTI of 2000 XADDs cost the worker ~70 ms of CPU per fan-out.
   */
  async publishMany(jobId: string, events: readonly JobEvent[]): Promise<void> {
    await this.append(jobId, events);
  }

  /**
   * Publish only while `guard.key`'s field `guard.field` holds `guard.value`, checked in the
   * same script: an announcement sent right behind the write it announces, on the same
   * connection (so Redis runs it after that write), without waiting for that write's answer,
   * and written only if that write took effect. True when written.
   */
  async publishIf(jobId: string, events: readonly JobEvent[], guard: RunGuard): Promise<boolean> {
    return this.append(jobId, events, guard);
  }

  private async append(jobId: string, events: readonly JobEvent[], guard?: RunGuard): Promise<boolean> {
    if (events.length === 0) return true;
    const unused = this.keys.unused();
    const ends = events.some((e) => e.type === 'state' && isFinal(e.state)) ? this.keys.endsChannel() : '';
    const args: string[] = [String(STREAM_MAXLEN), String(FEED_MAXLEN), this.keys.eventsChannel(), jobId, guard?.field ?? '', guard?.value ?? '', unused, ends];
    for (const event of events) {
      // Scrubbed like every other writer: an error text or a host name can carry a secret too.
      const clean = this.redactor.scrubDeep(event);
      args.push(isFeedEvent(clean) ? 'f' : 'j', JSON.stringify(clean));
    }
    return (await runScript(this.redis, 'castellanEventsAppend', APPEND_EVENTS, [this.keys.events(jobId), this.keys.feed(), guard?.key ?? unused], args)) === 1;
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

/** How long per-host progress may wait to be written with more of it (see ThrottledPublisher). */
const PROGRESS_LINGER_MS = 50;

/**
 * Coalesces output chunks per host and flushes them at most every `intervalMs`, so a chatty
 * command on 1000 hosts does not write 100,000 stream entries. A host's `host_started` waits
 * with its output: a host that finishes within `intervalMs` is written as its `host_finished`
 * only (at 1000 fast hosts, half the entries every follower reads). Other events pass at once,
 * after what is pending (a host's finish after that host's own), so the order per host holds.
 */
export class ThrottledPublisher {
  private pending = new Map<string, { step: string; host: string; stream: 'stdout' | 'stderr'; text: string }>();
  /** `host_started` not yet written, by step and host. */
  private starts = new Map<string, Extract<JobEvent, { type: 'host_started' }>>();
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  /** Events waiting for the next write; at 1000 hosts, one XADD round trip each would trail the fan-out. */
  private queued: JobEvent[] = [];
  /** A write is chained that will take everything queued. */
  private scheduled = false;
  /** Per-host progress waiting (briefly) for company before it is written. */
  private linger: NodeJS.Timeout | undefined;

  /** Output characters accepted so far; past `maxOutputChars` the preview stops (once, with a marker). */
  private outputSent = 0;
  private outputStopped = false;
  /** Once set (guardWith), events are written only while this delivery holds the job. */
  private guard: RunGuard | undefined;

  constructor(
    private readonly events: JobEvents,
    private readonly jobId: string,
    private readonly intervalMs = 250,
    private readonly maxChunkChars = 4096,
    /** Live output kept in the job's event stream (limits.output_per_job). */
    private readonly maxOutputChars = Number.POSITIVE_INFINITY,
  ) {}

  /**
   * From now on, write only while `guard` holds (queues/run-guard.ts): a delivery replaced by
   * another (a zombie) adds no progress to the job the other one runs. Set once the delivery's
   * run token is written; what was emitted before goes out under it too.
   */
  guardWith(guard: RunGuard): void {
    this.guard = guard;
  }

  private write(batch: JobEvent[]): Promise<unknown> {
    return this.guard ? this.events.publishIf(this.jobId, batch, this.guard) : this.events.publishMany(this.jobId, batch);
  }

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
    if (event.type === 'host_started') {
      this.starts.set(`${event.step}\u0000${event.host}`, event);
      this.timer ??= setTimeout(() => this.flush(false), this.intervalMs);
      return;
    }
    if (event.type === 'host_finished') {
      // Its start was never written: the finish says it all. Its output is complete: release
      // the held-back tail. Other hosts' pending start and output keep waiting for the timer.
      this.starts.delete(`${event.step}\u0000${event.host}`);
      this.flush(true, event.host);
      this.enqueue(event);
      return;
    }
    this.flush(false);
    this.enqueue(event);
  }

  /**
   * Write pending starts and output (only `onlyHost`'s when given). Until the host's output is
   * complete (`final`), a tail that could be the beginning of a secret is held back: a secret
   * split across two chunks must be whole when the redactor sees it. Output with no such tail
   * goes out at once.
   */
  flush(final = true, onlyHost?: string): void {
    if (onlyHost === undefined) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      for (const start of this.starts.values()) this.enqueue(start);
      this.starts.clear();
    }
    for (const [key, chunk] of [...this.pending]) {
      if (onlyHost !== undefined && chunk.host !== onlyHost) continue;
      const clean = this.events.redactor.scrub(chunk.text);
      const cut = final ? clean.length : clean.length - this.events.redactor.pendingTail(clean);
      if (cut > 0) this.enqueue({ type: 'output', ...chunk, text: clean.slice(0, cut) });
      if (cut < clean.length) this.pending.set(key, { ...chunk, text: clean.slice(cut) });
      else this.pending.delete(key);
    }
    // One host's flush leaves the timer of the others as it was (rearming it on every finish
    // would hold their starts back for as long as hosts keep finishing).
    if (onlyHost === undefined && this.pending.size > 0) this.timer = setTimeout(() => this.flush(false), this.intervalMs);
  }

  /**
   * Write what lingers now, without waiting: a step's fan-out has ended, so no more per-host
   * progress of it is coming to share the write. Sent beside the step's last ledger and audit
   * write instead of after it, the job's ending does not wait for one more round trip.
   */
  send(): void {
    this.sendNow();
  }

  /**
   * Wait until everything emitted so far is written. What is still queued is sent at once,
   * beside a write still in flight rather than after its answer: the publisher's writes share
   * one connection, which keeps them in order. A writer that calls this and, before awaiting
   * it, sends on the same connection (the job's ending) is written after every event.
   */
  async drain(): Promise<void> {
    this.flush(true);
    this.sendNow();
    await this.chain;
  }

  /** Send everything queued now (see drain); the chain then settles after this write too. */
  private sendNow(): void {
    if (this.linger) clearTimeout(this.linger);
    this.linger = undefined;
    if (this.queued.length === 0) return;
    const batch = this.queued;
    this.queued = [];
    const write = this.write(batch).catch(() => undefined);
    this.chain = Promise.all([this.chain, write]).then(() => undefined);
  }

  /**
   * Events queued while a write is in flight go out together in the next one (one script call),
   * so the stream keeps their order and a burst costs one round trip instead of one per event.
   * Per-host progress (starts, finishes, output) lingers up to PROGRESS_LINGER_MS first, so a
   * fan-out writes a few dozen batches instead of one per host (each write is a syscall and a
   * wake-up of every follower); any other event takes what lingers with it at once.
   */
  private enqueue(event: JobEvent): void {
    this.queued.push(event);
    if (this.scheduled) return; // a write is already chained and will take this one too
    if (event.type === 'host_started' || event.type === 'host_finished' || event.type === 'output') {
      this.linger ??= setTimeout(() => this.schedule(), PROGRESS_LINGER_MS);
      return;
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.linger) clearTimeout(this.linger);
    this.linger = undefined;
    if (this.scheduled || this.queued.length === 0) return;
    this.scheduled = true;
    this.chain = this.chain
      .then(() => {
        this.scheduled = false;
        const batch = this.queued;
        this.queued = [];
        return this.write(batch);
      })
      .then(() => undefined)
      .catch(() => undefined);
  }
}

