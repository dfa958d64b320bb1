// Append-only audit trail: who asked for what, from where, on which hosts, with which exact
// commands, who decided, and what happened. Written to a Redis stream (always) and to a
// JSON-lines file (when configured, mode 0600). Every record passes the Redactor first.
// Each stream entry is indexed in the same script that adds it (sorted sets of entry ids by
// time, one per subject, tool, host, …), so reading "what did alice do on node07 last week"
// is exact and fast at any length of the trail; who may read which entries is decided by
// auth/policy.ts auditScope.
import { randomBytes } from 'node:crypto';
import { appendFile, open } from 'node:fs/promises';
import type { Redis } from 'ioredis';
import type { AuditScope } from '../auth/policy.js';
import { queryIndexes } from './index-query.js';
import { runScript } from './scripts.js';
import { CastellanError } from '../config/errors.js';
import type { Origin } from '../auth/types.js';
import type { Redactor } from './redact.js';
import type { AuditIndexField, Keys } from './keys.js';
import type { ReplyAddress } from './records.js';

/** `pruned`: a finished job's record, events and ledger were deleted to keep retention.max_bytes. */
export type AuditKind = 'request' | 'decision' | 'execution' | 'outcome' | 'cancel' | 'refused' | 'pruned';

export interface AuditRecord {
  readonly kind: AuditKind;
  readonly jobId?: string | undefined;
  readonly subject: string;
  readonly displayName?: string | undefined;
  readonly origin: Origin | 'worker';
  readonly tool?: string | undefined;
  readonly hosts?: readonly string[] | undefined;
  /** Exact commands of the plan (request) or of the host execution. */
  readonly commands?: readonly (readonly string[])[] | undefined;
  readonly host?: string | undefined;
  readonly step?: string | undefined;
  readonly argv?: readonly string[] | undefined;
  readonly status?: string | undefined;
  readonly exitCode?: number | null | undefined;
  readonly durationMs?: number | undefined;
  readonly state?: string | undefined;
  readonly decision?: 'approve' | 'deny' | undefined;
  readonly reason?: string | undefined;
  readonly planHash?: string | undefined;
  readonly input?: unknown;
  /** Where the person acted from, when the front end knows more than the origin (Slack team/user/channel). */
  readonly via?: ReplyAddress | undefined;
  /** Whose job it is, when someone else acted on it (an approver, a canceller): the requester reads it too. */
  readonly requester?: string | undefined;
  /** Approvals the job asked for (absent when none): approvers read the entries of such jobs. */
  readonly approvalsRequired?: number | undefined;
  /**
   * An execution entry of many hosts: one step's outcome on each host the entry covers, the
   * command being the entry's `argv` (a batch of the step whose hosts ran the same argv). Each
   * host is indexed (a listing by host finds the entry), and each status (by outcome). One
   * entry of 64 hosts instead of 64 entries: Redis indexed every entry ~9 times, ~30 ms of
   * its time per 1000-host fan-out. `read` gives one entry per host, as single-host entries are.
   */
  readonly results?: readonly AuditHostRun[] | undefined;
}

/** One host's part of an execution entry (`AuditRecord.results`). */
export interface AuditHostRun {
  readonly host: string;
  readonly status: string;
  readonly exitCode?: number | null | undefined;
  readonly durationMs?: number | undefined;
  readonly reason?: string | undefined;
}

/** One entry as stored, with its write marker key (the same marker when written again). */
export interface WrittenEntry {
  readonly record: AuditRecord & { at: string };
  readonly marker: string;
}

/** What `appendMany` wrote: stream ids and the entries as stored, in order. */
export interface WrittenAudit {
  readonly ids: readonly string[];
  readonly entries: readonly WrittenEntry[];
}

export interface StoredAudit extends AuditRecord {
  /** Stream entry id (`<ms>-<seq>`): also the cursor that continues a listing after this entry. */
  readonly id: string;
  readonly at: string;
}

/** Filters of an audit listing: each narrows it; times are epoch ms, inclusive. */
export interface AuditQuery {
  readonly subject?: string | undefined;
  readonly tool?: string | undefined;
  readonly host?: string | undefined;
  readonly origin?: string | undefined;
  readonly kind?: AuditKind | undefined;
  /** Any of these kinds. */
  readonly kinds?: readonly AuditKind[] | undefined;
  /** Only entries of jobs that asked for approval. */
  readonly gated?: boolean | undefined;
  readonly decision?: 'approve' | 'deny' | undefined;
  /** A job's final state (outcome entries) or a host's status (execution entries). */
  readonly outcome?: string | undefined;
  readonly jobId?: string | undefined;
  readonly since?: number | undefined;
  readonly until?: number | undefined;
  /** Continue after this entry id (newest first: older entries follow). */
  readonly after?: string | undefined;
  readonly limit?: number | undefined;
}

export interface AuditPage {
  /** Newest first. */
  readonly entries: StoredAudit[];
  /** Entries matching in all (visible to the caller). */
  readonly total: number;
  /** Cursor of the next page (the last entry's id), absent on the last page. */
  readonly next?: string | undefined;
}

export const AUDIT_KINDS: readonly AuditKind[] = ['request', 'decision', 'execution', 'outcome', 'cancel', 'refused', 'pruned'];
export const AUDIT_ID_PATTERN = /^\d{1,15}-\d{1,19}$/;

const DEFAULT_MAX_ENTRIES = 1_000_000;
/** How often a process looks whether the trail was trimmed and its indexes need the same. */
const SWEEP_EVERY_MS = 10 * 60_000;

/**
 * Score of a stream entry id: its milliseconds × 1024 + its sequence (capped), so entries of the
 * same millisecond keep their order (exact in a double until the year 2248).
 */
export function auditScore(id: string): number {
  const [ms, seq] = id.split('-');
  return Number(ms) * 1024 + Math.min(Number(seq ?? 0), 1023);
}

/** What an entry about a job carries so that its requester and (gated jobs) approvers may read it. */
export function jobAuditFacts(job: { readonly requester: { readonly subject: string }; readonly approvalsRequired: number }): Pick<AuditRecord, 'requester' | 'approvalsRequired'> {
  return { requester: job.requester.subject, ...(job.approvalsRequired > 0 ? { approvalsRequired: job.approvalsRequired } : {}) };
}

/**
 * The indexes an entry belongs to, as (field, value) pairs; `all` is the index of every entry.
 * A pair may come twice (a host named as `host` and in `hosts`).
 */
function forEachAuditIndex(r: AuditRecord, visit: (field: AuditIndexField | 'all', value: string) => void): void {
  visit('all', '');
  visit('subject', r.subject);
  visit('origin', r.origin);
  visit('kind', r.kind);
  if (r.tool !== undefined) visit('tool', r.tool);
  if (r.jobId !== undefined) visit('job', r.jobId);
  if (r.host !== undefined) visit('host', r.host);
  for (const host of r.hosts ?? []) visit('host', host);
  for (const run of r.results ?? []) visit('host', run.host);
  if (r.decision !== undefined) visit('decision', r.decision);
  const outcome = r.kind === 'outcome' ? r.state : r.kind === 'execution' ? r.status : undefined;
  if (outcome !== undefined) visit('outcome', outcome);
  for (const run of r.results ?? []) visit('outcome', run.status);
  if (r.requester !== undefined && r.requester !== r.subject) visit('requester', r.requester);
  if ((r.approvalsRequired ?? 0) > 0) visit('gated', 'yes');
}

/** The index keys an entry belongs to. */
export function auditIndexKeys(keys: Keys, r: AuditRecord): string[] {
  const out = new Set<string>();
  forEachAuditIndex(r, (field, value) => out.add(field === 'all' ? keys.auditIndex() : keys.auditBy(field, value)));
  return [...out];
}

// KEYS[1] the stream. ARGV: 1 max length, 2 number of entries, 3 how long a write marker is
// kept (s), 4 the number of distinct index keys of the batch, then those keys, then per entry:
// its JSON, its write marker key ('' for none), and its index keys as positions in that list
// (1-based, space-separated). A step's entries share all their index keys but the host's: sent
// once per batch instead of ~8 arguments per entry (ioredis built ~11,000 arguments per
// 1000-host step).
// The entry and its index entries are written together, so no listing ever misses an entry the
// stream holds. The marker makes the append idempotent: the worker connection resends a command
// whose reply was lost when the connection dropped (a Sentinel failover), and the old primary may
// have run it and replicated it already; the resend then returns the id written the first time.
// Scores are formatted by hand: Lua would print 14 significant digits.
const APPEND = `
local keyCount = tonumber(ARGV[4])
local pos = 5 + keyCount
local ids = {}
local byIndex = {}
local order = {}
-- One entry (a request, an outcome: up to one index key per host) names each of its keys once:
-- each ZADD goes out at once, without the per-key tables that group a batch's shared keys
-- (half of the script's time for a 1000-host request).
local single = tonumber(ARGV[2]) == 1
for r = 1, tonumber(ARGV[2]) do
  local marker = ARGV[pos + 1]
  local id = marker ~= '' and redis.call('GET', marker)
  if not id then
    id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'r', ARGV[pos])
    if marker ~= '' then redis.call('SET', marker, id, 'EX', ARGV[3]) end
    local dash = string.find(id, '-', 1, true)
    local seq = tonumber(string.sub(id, dash + 1))
    if seq > 1023 then seq = 1023 end
    local score = string.format('%.0f', tonumber(string.sub(id, 1, dash - 1)) * 1024 + seq)
    for ref in string.gmatch(ARGV[pos + 2], '%d+') do
      local key = ARGV[4 + tonumber(ref)]
      if single then
        redis.call('ZADD', key, score, id)
      else
        local members = byIndex[key]
        if not members then
          members = {}
          byIndex[key] = members
          table.insert(order, key)
        end
        table.insert(members, score)
        table.insert(members, id)
      end
    end
  end
  pos = pos + 3
  table.insert(ids, id)
end
-- One ZADD per index for all of the batch's entries (most of a step's records share all their
-- indexes but the host's), in slices that stay within Lua's unpack limit.
for _, key in ipairs(order) do
  local members = byIndex[key]
  for i = 1, #members, 1000 do
    redis.call('ZADD', key, unpack(members, i, math.min(i + 999, #members)))
  end
end
return ids
`;

/** How long an entry's write marker is kept: longer than any resend after a reconnect. */
const WRITE_MARKER_S = 600;

export class AuditLog {
  private fileReady: Promise<void> | undefined;
  private readonly file: string | undefined;
  private readonly maxEntries: number;
  /** Write markers (idempotent appends): on with replicas, where failovers resend commands. */
  private readonly markWrites: boolean;
  private indexing: Promise<void> | undefined;
  private lastSweepCheck = 0;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly redactor: Redactor,
    options: { readonly file?: string | undefined; readonly maxEntries?: number | undefined; readonly markWrites?: boolean | undefined } = {},
  ) {
    this.file = options.file;
    this.markWrites = options.markWrites ?? false;
    this.maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
  }

  async append(record: AuditRecord): Promise<void> {
    await this.appendMany([record]);
  }

  /**
   * Entries written in one round trip (and one file append), each with its index entries.
   * Returns what was written and where: the stream ids, and the entries as stored (for
   * `rewrite`, when a failover lost them).
   */
  async appendMany(records: readonly AuditRecord[], options: { readonly markers?: readonly string[] } = {}): Promise<WrittenAudit> {
    if (records.length === 0) return { ids: [], entries: [] };
    const at = new Date().toISOString();
    const clean = records.map((record) => this.redactor.scrubDeep({ at, ...record }) as AuditRecord & { at: string });
    const uid = randomBytes(8).toString('hex');
    // A caller's own marker (two processes that may both write the same fact: decisions.ts)
    // is kept with or without replicas; otherwise a random one, only where failovers resend.
    const markerOf = (i: number): string => {
      const own = options.markers?.[i];
      if (own !== undefined) return this.keys.auditWrite(own);
      return this.markWrites ? this.keys.auditWrite(`${uid}.${i}`) : '';
    };
    const marked = clean.map((record, i) => ({ record, marker: markerOf(i) }));
    const ids = await this.writeOn(this.redis, marked);
    if (this.file) {
      this.fileReady ??= ensureFile(this.file);
      await this.fileReady;
      await appendFile(this.file, clean.map((record) => JSON.stringify(record) + '\n').join(''), { mode: 0o600 });
    }
    this.maybeSweep();
    return { ids, entries: marked };
  }

  /**
   * Write entries again on `redis` (the server a durable check just found without them: a
   * failover lost them with the old primary). The audit file already has them: Redis only.
   */
  async rewrite(redis: Redis, entries: readonly WrittenEntry[]): Promise<string[]> {
    return this.writeOn(redis, entries);
  }

  private async writeOn(redis: Redis, entries: readonly WrittenEntry[]): Promise<string[]> {
    // Each distinct index key once; an entry names its keys by position (see APPEND). Looked up
    // by field and value (the same few strings for a whole step), not by the built key.
    const positions = new Map<string, Map<string, number>>();
    const indexKeys: string[] = [];
    /** Per position, the last entry that named it: a pair seen twice in one entry is sent once. */
    const lastEntry: number[] = [];
    const perEntry: string[] = [];
    entries.forEach(({ record, marker }, entry) => {
      let refs = '';
      forEachAuditIndex(record, (field, value) => {
        let byValue = positions.get(field);
        if (byValue === undefined) positions.set(field, (byValue = new Map<string, number>()));
        let at = byValue.get(value);
        if (at === undefined) {
          indexKeys.push(field === 'all' ? this.keys.auditIndex() : this.keys.auditBy(field, value));
          byValue.set(value, (at = indexKeys.length));
        }
        if (lastEntry[at] === entry) return;
        lastEntry[at] = entry;
        refs = refs === '' ? String(at) : `${refs} ${at}`;
      });
      perEntry.push(JSON.stringify(record), marker, refs);
    });
    const args: (string | number)[] = [this.maxEntries, entries.length, WRITE_MARKER_S, indexKeys.length, ...indexKeys, ...perEntry];
    return (await runScript(redis, 'castellanAuditAppend', APPEND, [this.keys.audit()], args)) as string[];
  }

  /**
   * One page of entries matching `query` that `scope` lets the caller read, newest first, with
   * the total and the cursor of the next page. Everything comes from the indexes: the cost
   * follows the page and the smallest filter, not the length of the trail.
   */
  async page(query: AuditQuery, scope: AuditScope): Promise<AuditPage> {
    await this.indexed();
    const k = this.keys;
    const groups: string[][] = [];
    if (!scope.all) {
      const mine = [k.auditBy('subject', scope.subject), k.auditBy('requester', scope.subject)];
      if (scope.gated) mine.push(k.auditBy('gated', 'yes'));
      groups.push(mine);
    }
    const filters: [AuditIndexField, string | undefined][] = [
      ['subject', query.subject],
      ['tool', query.tool],
      ['host', query.host],
      ['origin', query.origin],
      ['kind', query.kind],
      ['decision', query.decision],
      ['outcome', query.outcome],
      ['job', query.jobId],
    ];
    for (const [field, value] of filters) if (value !== undefined) groups.push([k.auditBy(field, value)]);
    if (query.kinds !== undefined && query.kinds.length > 0) groups.push(query.kinds.map((kind) => k.auditBy('kind', kind)));
    if (query.gated === true) groups.push([k.auditBy('gated', 'yes')]);
    if (groups.length === 0) groups.push([k.auditIndex()]);
    const limit = Number.isInteger(query.limit) ? Math.min(Math.max(query.limit ?? 50, 1), 1000) : 50;
    if (query.after !== undefined && !AUDIT_ID_PATTERN.test(query.after)) throw new CastellanError('invalid_input', `'${query.after.slice(0, 40)}' is not an audit cursor (it is the id of the last entry shown, like 1764403200000-0)`, 'cursor');
    // Entries the stream trimmed away are below its oldest entry: never counted or listed.
    const oldest = await this.redis.xrange(k.audit(), '-', '+', 'COUNT', 1);
    if (oldest[0] === undefined) return { entries: [], total: 0 };
    const min = Math.max(auditScore(oldest[0][0]), query.since !== undefined ? query.since * 1024 : 0);
    const max = query.until !== undefined ? query.until * 1024 + 1023 : undefined;
    // One more than the page: whether there is a next page is known without another query.
    const found = await queryIndexes(this.redis, {
      groups,
      scratch: (n) => k.auditScratch(n),
      min,
      max,
      limit: limit + 1,
      after: query.after !== undefined ? { score: auditScore(query.after), member: query.after } : undefined,
    });
    const shown = found.members.slice(0, limit).map((m) => m.member);
    const entries = (await this.entries(shown)).map((e) => narrowed(e, query));
    return { entries, total: found.total, ...(found.members.length > limit ? { next: shown.at(-1) } : {}) };
  }

  /** The stored entries of `ids`, in order; ids trimmed from the stream meanwhile are left out. */
  private async entries(ids: readonly string[]): Promise<StoredAudit[]> {
    if (ids.length === 0) return [];
    const replies = (await this.redis.pipeline(ids.map((id) => ['xrange', this.keys.audit(), id, id])).exec()) ?? [];
    const out: StoredAudit[] = [];
    replies.forEach(([error, reply], i) => {
      if (error) throw error;
      const entry = (reply as [string, string[]][])[0];
      if (entry !== undefined) out.push(decodeEntry(ids[i] ?? entry[0], entry[1]));
    });
    return out;
  }

  /** Everything of one job (or the newest `count` entries), oldest first: for tests and the job's own trail. */
  async read(options: { jobId?: string; count?: number } = {}): Promise<StoredAudit[]> {
    if (options.jobId !== undefined) {
      const out: StoredAudit[] = [];
      let after: string | undefined;
      do {
        const page = await this.page({ jobId: options.jobId, limit: 1000, after }, { all: true });
        out.push(...page.entries);
        after = page.next;
      } while (after !== undefined && out.length < (options.count ?? Number.POSITIVE_INFINITY));
      return out.reverse().flatMap(perHost);
    }
    const entries = await this.redis.xrevrange(this.keys.audit(), '+', '-', 'COUNT', options.count ?? 10_000);
    return entries.reverse().flatMap(([id, fields]) => perHost(decodeEntry(id, fields)));
  }

  private maybeSweep(): void {
    const now = Date.now();
    if (now - this.lastSweepCheck < SWEEP_EVERY_MS) return;
    this.lastSweepCheck = now;
    // Best effort: a failed sweep only leaves index entries that listings already ignore.
    this.sweep().catch(() => undefined);
  }

  /**
   * Take entries the stream trimmed away out of every index (listings already ignore them:
   * this only gives the memory back). Does nothing unless the oldest entry moved since the
   * last sweep. Returns how many index keys were trimmed.
   */
  async sweep(): Promise<number> {
    const k = this.keys;
    const oldest = await this.redis.xrange(k.audit(), '-', '+', 'COUNT', 1);
    if (oldest[0] === undefined) return 0;
    const floor = auditScore(oldest[0][0]);
    const marker = `${k.audit()}-swept`;
    if (Number(await this.redis.get(marker)) >= floor) return 0;
    let cursor = '0';
    let trimmed = 0;
    do {
      const [next, found] = await this.redis.scan(cursor, 'MATCH', `${k.audit()}:*`, 'COUNT', 1000, 'TYPE', 'zset');
      cursor = next;
      if (found.length === 0) continue;
      const pipeline = this.redis.pipeline();
      for (const key of found) pipeline.zremrangebyscore(key, '-inf', `(${floor}`);
      const replies = (await pipeline.exec()) ?? [];
      trimmed += replies.filter(([, n]) => Number(n) > 0).length;
    } while (cursor !== '0');
    await this.redis.set(marker, String(floor));
    return trimmed;
  }

  /** Entries written before the indexes existed get them once, the first time a process lists. */
  private indexed(): Promise<void> {
    this.indexing ??= this.reindex().then(
      () => undefined,
      (err: unknown) => {
        this.indexing = undefined;
        throw err;
      },
    );
    return this.indexing;
  }

  /**
   * Index the stream entries older than the oldest indexed one (all of them when nothing is
   * indexed yet). Returns how many were added.
   */
  async reindex(): Promise<number> {
    const k = this.keys;
    const first = await this.redis.zrange(k.auditIndex(), 0, 0);
    const end = first[0] !== undefined ? `(${first[0]}` : '+';
    let start = '-';
    let added = 0;
    for (;;) {
      const chunk = await this.redis.xrange(k.audit(), start, end, 'COUNT', 2000);
      if (chunk.length === 0) return added;
      const multi = this.redis.multi();
      for (const [id, fields] of chunk) {
        const score = auditScore(id);
        for (const key of auditIndexKeys(k, decodeEntry(id, fields))) multi.zadd(key, score, id);
      }
      await multi.exec();
      added += chunk.length;
      start = `(${chunk.at(-1)?.[0] ?? ''}`;
    }
  }
}

/**
 * An entry of many hosts as one entry per host (the entry's id on each): what a single-host
 * execution entry says, for readers that go host by host (a job's own trail, tests).
 */
export function perHost(e: StoredAudit): StoredAudit[] {
  if (e.results === undefined) return [e];
  const { results, ...rest } = e;
  return results.map((run) => ({ ...rest, ...run }));
}

/**
 * A listing filtered by host or outcome shows, of an entry of many hosts, the hosts it was
 * found for: "node07 failed", not the 127 other hosts of its batch.
 */
function narrowed(e: StoredAudit, query: AuditQuery): StoredAudit {
  if (e.results === undefined || (query.host === undefined && query.outcome === undefined)) return e;
  return { ...e, results: e.results.filter((run) => (query.host === undefined || run.host === query.host) && (query.outcome === undefined || run.status === query.outcome)) };
}

function decodeEntry(id: string, fields: readonly string[]): StoredAudit {
  const rec = JSON.parse(fields[fields.indexOf('r') + 1] ?? '{}') as StoredAudit;
  return { ...rec, id };
}

async function ensureFile(path: string): Promise<void> {
  const handle = await open(path, 'a', 0o600);
  await handle.chmod(0o600);
  await handle.close();
}
