// The job record: Castellan's source of truth for a request's life, independent of BullMQ
// retention. One Redis hash per job; state changes go through Lua scripts so that two
// processes (an approver clicking while the expiry fires, a cancel racing the worker) can
// never both win.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Requester } from '../auth/types.js';
import type { Plan, Risk } from '../tools/types.js';
import type { GateObservation } from '../tools/steps/index.js';
import type { HostResult, HostStatus } from '../tools/host-result.js';
import type { OutputGroup } from './fold.js';
import type { Keys } from './keys.js';
import { forgetJobs } from './retention.js';
import { runScript } from './scripts.js';
import { queryIndexes } from './index-query.js';
import type { PlanBinding } from './plan-binding.js';
import { ALLOWED_FROM, FINAL_STATES, type JobState } from './states.js';

/** Where progress and results go back to, per origin. Opaque to the queue layer. */
export type ReplyAddress =
  | { readonly kind: 'cli' }
  | { readonly kind: 'mcp'; readonly sessionId?: string | undefined }
  | { readonly kind: 'slack'; readonly channel: string; readonly threadTs?: string | undefined; readonly user?: string | undefined; readonly team?: string | undefined }
  | { readonly kind: 'dashboard' }
  /** A preview job (see ToolDefinition.preview): it reports to the job it previews, on that job's cards. */
  | { readonly kind: 'preview'; readonly of: string };

export interface Vote {
  readonly subject: string;
  readonly displayName: string;
  readonly origin: Requester['origin'];
  /** Roles the voter held when voting (re-checked by the worker before it runs the job). */
  readonly roles?: readonly Requester['roles'][number][] | undefined;
  readonly decision: 'approve' | 'deny';
  readonly reason?: string | undefined;
  readonly planHash: string;
  readonly at: string;
}

/**
 * Final status of one subject across the plan's steps: a host, or the node a step was about
 * (`k8s_drain` reports node w1, not the control plane kubectl ran on).
 */
export interface HostOutcome {
  readonly host: string;
  readonly status: HostStatus;
  /** Step where the host ended (failed, or the last one). */
  readonly step: string;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly truncated: boolean;
  readonly durationMs: number;
  readonly error?: string | undefined;
}

export interface StepReport {
  readonly id: string;
  readonly description: string;
  readonly batch: number;
  readonly results: readonly HostResult[];
  /** The node the step is about when it ran elsewhere (see PlanStep.subject). */
  readonly subject?: string | undefined;
  /** An on-failure step: the subject whose failure ran it, and the step that armed it. */
  readonly onFailure?: { readonly subject: string; readonly armedBy: string } | undefined;
  /** Gates: the last observation per subject. */
  readonly observations?: readonly GateObservation[] | undefined;
}

export interface JobResult {
  readonly hosts: readonly HostOutcome[];
  readonly steps: readonly StepReport[];
  readonly folded: readonly OutputGroup[];
  /** Structured data from the tool's summarize()/answer(). */
  readonly data?: unknown;
  /** Interrupted jobs: hosts whose outcome is unknown (started, never reported). */
  readonly unknownHosts?: readonly string[];
}

/**
 * What a job's BullMQ entry carries: the record's id, nothing else. The record (state, plan,
 * binding, votes) is the one truth the worker reads; a copy of the plan in the queue entry was
 * ~0.2 MB of JSON more to write, keep (completed entries are retained) and parse per 1000-host
 * job. Entries queued by older versions carry the whole JobDoc, which includes the id.
 */
export interface QueuedJob {
  readonly id: string;
}

/** The immutable part, fixed at submit time. */
export interface JobDoc {
  readonly id: string;
  readonly tool: string;
  readonly risk: Risk;
  /** Validated input, secrets scrubbed. */
  readonly input: unknown;
  readonly plan: Plan;
  /** Where and with what the plan runs (addresses, users, keys, pinned host keys, upload digests). */
  readonly binding?: PlanBinding | undefined;
  /** sha256 over plan and binding: what approvals are given for. */
  readonly planHash: string;
  readonly requester: Requester;
  readonly replyTo: ReplyAddress;
  readonly idempotencyKey?: string | undefined;
  readonly createdAt: string;
  readonly approvalsRequired: number;
  /** Approval deadline (epoch ms) when approvals are required. */
  readonly expiresAt?: number | undefined;
  readonly timeoutMs: number;
  /**
   * Destructive jobs whose hosts were outside their maintenance window when submitted: the job
   * will wait for the next opening (shown on the approval card and in the job view).
   */
  readonly maintenance?: { readonly windows: readonly string[]; readonly opensAt?: string | undefined; readonly detail: string } | undefined;
  /** This job is the preview (a run that changes nothing) of that job. */
  readonly previewOf?: string | undefined;
}

/** The preview of a job waiting for approval: its own job, and once it ended, what it showed. */
export interface JobPreview {
  readonly jobId: string;
  readonly state: JobState;
  readonly reason?: string | undefined;
  /** Its output, folded like any job's. */
  readonly folded?: readonly OutputGroup[] | undefined;
}

export interface JobRecord extends JobDoc {
  readonly state: JobState;
  readonly votes: readonly Vote[];
  readonly updatedAt: string;
  readonly queuedAt?: string | undefined;
  readonly startedAt?: string | undefined;
  readonly finishedAt?: string | undefined;
  readonly attempt: number;
  readonly worker?: string | undefined;
  readonly cancel?: { readonly by: string; readonly at: string; readonly reason?: string | undefined } | undefined;
  readonly reason?: string | undefined;
  readonly result?: JobResult | undefined;
  readonly preview?: JobPreview | undefined;
  /**
   * Set only on records cut for a viewer by JobService (queues/visibility.ts): what was left
   * out and why. Never stored.
   */
  readonly hidden?: HiddenParts | undefined;
}

/** What a record cut for a viewer left out (see queues/visibility.ts). */
export interface HiddenParts {
  /** Input, plan commands and scripts, vote reasons were removed. */
  readonly details: boolean;
  /** Host output, folded output and the structured result were removed. */
  readonly output: boolean;
  /** Why, for the viewer (names the policy setting). */
  readonly reason: string;
}

export function newJobId(): string {
  // Time-ordered, typeable, never all digits, never contains ':' (BullMQ custom id rules).
  return `j${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
}

export const JOB_ID_PATTERN = /^j[a-z0-9]{8,24}$/;

// The state indexes move in the same script as the state: a listing by state is never behind.
// KEYS[2] is the all-jobs index (its score is the creation time); ARGV[4] the state index key
// prefix and ARGV[5] the job id (Castellan's keys are not cluster-slotted, see keys.ts).
const MOVE_STATE = `
local function move_state(from, to)
  local score = redis.call('ZSCORE', KEYS[2], ARGV[5])
  if not score then return end
  redis.call('ZREM', ARGV[4] .. from, ARGV[5])
  redis.call('ZADD', ARGV[4] .. to, score, ARGV[5])
end
`;

// ARGV: 1 allowed predecessors, 2 new state, 3 unused, 4 and 5 as in MOVE_STATE, 6 run token
// ('' for none), then the fields to write as name, value pairs. The fields travel as plain
// arguments, not one JSON object: a job's ending carries its result (~0.4 MB at 1000 hosts),
// which cjson.decode parsed inside Redis, blocking it, after the worker had escaped it once more.
const TRANSITION = `${MOVE_STATE}
local s = redis.call('HGET', KEYS[1], 'state')
if not s then return {'missing', ''} end
if ARGV[6] ~= '' and redis.call('HGET', KEYS[1], 'run') ~= ARGV[6] then return {'refused', s} end
for allowed in string.gmatch(ARGV[1], '[^,]+') do
  if allowed == s then
    redis.call('HSET', KEYS[1], 'state', ARGV[2], unpack(ARGV, 7))
    move_state(s, ARGV[2])
    return {'ok', s}
  end
end
return {'refused', s}
`;

// ARGV: 1 vote (JSON), 2 approvals required, 3 now (ms), 4 now (ISO), 5 deny reason,
// 6 states `denied` may come from, 7 states `queued` may come from (the transition table,
// so the script never writes a state the table does not allow), 8 state index prefix, 9 id.
const VOTE = `
local function move_state(from, to)
  local score = redis.call('ZSCORE', KEYS[2], ARGV[9])
  if not score then return end
  redis.call('ZREM', ARGV[8] .. from, ARGV[9])
  redis.call('ZADD', ARGV[8] .. to, score, ARGV[9])
end
local s = redis.call('HGET', KEYS[1], 'state')
if not s then return {'missing', '0'} end
if s ~= 'awaiting_approval' then return {'state', s} end
local expires = tonumber(redis.call('HGET', KEYS[1], 'expiresAt') or '0')
if expires > 0 and tonumber(ARGV[3]) >= expires then return {'expired', s} end
local function allowed(list)
  for st in string.gmatch(list, '[^,]+') do if st == s then return true end end
  return false
end
local raw = redis.call('HGET', KEYS[1], 'votes')
local votes = {}
if raw and raw ~= '' and raw ~= '[]' then votes = cjson.decode(raw) end
local vote = cjson.decode(ARGV[1])
for _, v in ipairs(votes) do
  if v['subject'] == vote['subject'] then return {'duplicate', s} end
end
if vote['decision'] == 'deny' and not allowed(ARGV[6]) then return {'state', s} end
table.insert(votes, vote)
redis.call('HSET', KEYS[1], 'votes', cjson.encode(votes), 'updatedAt', ARGV[4])
if vote['decision'] == 'deny' then
  redis.call('HSET', KEYS[1], 'state', 'denied', 'reason', ARGV[5], 'finishedAt', ARGV[4])
  move_state(s, 'denied')
  return {'denied', tostring(#votes)}
end
local approvals = 0
for _, v in ipairs(votes) do if v['decision'] == 'approve' then approvals = approvals + 1 end end
if approvals >= tonumber(ARGV[2]) and allowed(ARGV[7]) then
  redis.call('HSET', KEYS[1], 'state', 'queued', 'queuedAt', ARGV[4])
  move_state(s, 'queued')
  return {'approved', tostring(approvals)}
end
return {'recorded', tostring(approvals)}
`;

// KEYS[1] the record, KEYS[2] the job's event stream. ARGV[1] the final states, then (optional)
// the fields to read. Once the job is final: '1' or '0' (whether its final event is among the
// stream's last entries yet), then the whole record as name, value pairs (or: the doc's length
// in bytes, then those fields' values in order); else its state alone (nil when there is no
// record). A waiter woken by the job's end reads the record in the same round trip as the end.
// The final event is written after the state (and after the host locks are released:
// endings.ts), so "announced" means the ending is out: a caller told the job ended finds its
// hosts free and its log complete.
const IF_FINAL = `
local s = redis.call('HGET', KEYS[1], 'state')
if not s then return false end
for st in string.gmatch(ARGV[1], '[^,]+') do
  if st == s then
    local announced = '0'
    local needle = '"type":"state","state":"' .. s .. '"'
    for _, entry in ipairs(redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 16)) do
      local f = entry[2]
      for i = 1, #f - 1, 2 do
        if f[i] == 'e' and string.find(f[i + 1], needle, 1, true) then announced = '1' end
      end
      if announced == '1' then break end
    end
    local all
    if #ARGV > 1 then
      all = redis.call('HMGET', KEYS[1], unpack(ARGV, 2))
      table.insert(all, 1, redis.call('HSTRLEN', KEYS[1], 'doc'))
    else
      all = redis.call('HGETALL', KEYS[1])
    end
    table.insert(all, 1, announced)
    return all
  end
end
return s
`;

export type TransitionOutcome = { readonly ok: true; readonly from: JobState } | { readonly ok: false; readonly current: JobState | null };
export type VoteOutcome =
  | { readonly kind: 'approved' | 'recorded' | 'denied'; readonly count: number }
  | { readonly kind: 'missing' | 'duplicate' | 'expired' }
  | { readonly kind: 'state'; readonly state: JobState };

type Fields = Record<string, string | number | undefined>;

function stringFields(fields: Fields): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) out[k] = String(v);
  return out;
}

/** The hash fields of a new record. */
export function recordFields(doc: JobDoc, initial: JobState, extra: Fields = {}): Record<string, string> {
  return stringFields({
    doc: JSON.stringify(doc),
    state: initial,
    votes: '[]',
    updatedAt: new Date().toISOString(),
    attempt: 0,
    expiresAt: doc.expiresAt ?? 0,
    ...extra,
  });
}

export class JobStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  /**
   * Write a record as it is (fixtures, benchmarks). Submissions go through
   * queues/submission.ts `createRecord`, which adds the idempotency claim and the marker.
   */
  async create(doc: JobDoc, initial: JobState, extra: Fields = {}): Promise<void> {
    const key = this.keys.job(doc.id);
    const score = Date.parse(doc.createdAt);
    const multi = this.redis.multi();
    // The secondary indexes are written in the same MULTI as the record: never one without the other.
    const where = indexKeysOf(this.keys, doc);
    for (const index of where) multi.zadd(index, score, doc.id);
    multi.hset(this.keys.jobsWhere(), doc.id, JSON.stringify(where));
    multi.zadd(this.keys.jobsBy('state', initial), score, doc.id);
    await multi
      .hset(key, recordFields(doc, initial, extra))
      .zadd(this.keys.jobIndex(), Date.parse(doc.createdAt), doc.id)
      .exec();
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const key = this.keys.job(id);
    const known = knownDoc(key);
    if (known) {
      const reply = (await runScript(this.redis, 'castellanRecordLive', READ_LIVE, [key], LIVE_FIELDS)) as [number, ...(string | null)[]] | null;
      if (reply === null) return undefined;
      if (reply[0] === known.bytes) return recordOf(known.doc, reply.slice(1) as (string | null)[]);
      // Another doc under this key (a record written anew): read whole.
    }
    const raw = await this.redis.hgetall(key);
    if (!raw.doc || !raw.state) return undefined;
    return this.decodeWhole(key, raw);
  }

  /** The record a submitter's fields make (what it wrote, not read back), its doc now known here. */
  fromFields(fields: Record<string, string>): JobRecord {
    return this.decodeWhole(this.keys.job(decodeDoc(fields.doc ?? '{}').id), fields);
  }

  private decodeWhole(key: string, raw: Record<string, string>): JobRecord {
    const record = decode(raw);
    rememberDoc(key, record, raw.doc ?? '');
    return record;
  }

  /**
   * The record once the job is final, with whether its final event is written yet (see
   * IF_FINAL), else its state (undefined: no record).
   */
  async ifFinal(id: string): Promise<{ readonly record: JobRecord; readonly announced: boolean } | { readonly state: JobState } | undefined> {
    const key = this.keys.job(id);
    const known = knownDoc(key);
    const finals = [...FINAL_STATES].join(',');
    if (known) {
      // The doc known: its live fields only, and the doc's length to check it is the same.
      const reply = (await runScript(this.redis, 'castellanRecordIfFinal', IF_FINAL, [key, this.keys.events(id)], [finals, ...LIVE_FIELDS])) as [string, number, ...(string | null)[]] | string | null;
      if (reply === null) return undefined;
      if (typeof reply === 'string') return { state: reply as JobState };
      if (reply[1] === known.bytes) {
        const record = recordOf(known.doc, reply.slice(2) as (string | null)[]);
        return record && { record, announced: reply[0] === '1' };
      }
    }
    const reply = (await runScript(this.redis, 'castellanRecordIfFinal', IF_FINAL, [key, this.keys.events(id)], [finals])) as string[] | string | null;
    if (reply === null) return undefined;
    if (typeof reply === 'string') return { state: reply as JobState };
    const raw: Record<string, string> = {};
    for (let i = 1; i + 1 < reply.length; i += 2) raw[reply[i]!] = reply[i + 1]!;
    if (!raw.doc || !raw.state) return undefined;
    return { record: this.decodeWhole(key, raw), announced: reply[0] === '1' };
  }

  async state(id: string): Promise<JobState | undefined> {
    const s = await this.redis.hget(this.keys.job(id), 'state');
    return (s ?? undefined) as JobState | undefined;
  }

  /**
   * Move to `to` only from one of its allowed predecessors (or a narrower `from` list), and with
   * `run`, only while the record carries that delivery's run token (queues/claims.ts): a worker
   * whose claim was lost in a failover never ends the job another delivery now runs.
   */
  async transition(id: string, to: JobState, fields: Fields = {}, from: readonly JobState[] = ALLOWED_FROM[to], run = ''): Promise<TransitionOutcome> {
    const now = new Date().toISOString();
    const reply = (await runScript(this.redis, 'castellanTransition', TRANSITION, [this.keys.job(id), this.keys.jobIndex()], [
      from.join(','),
      to,
      '',
      this.keys.jobsBy('state', ''),
      id,
      run,
      ...Object.entries(stringFields({ updatedAt: now, ...fields })).flat(),
    ])) as [string, string];
    if (reply[0] === 'ok') return { ok: true, from: reply[1] as JobState };
    return { ok: false, current: reply[0] === 'missing' ? null : (reply[1] as JobState) };
  }

  async update(id: string, fields: Fields): Promise<void> {
    await this.redis.hset(this.keys.job(id), stringFields({ updatedAt: new Date().toISOString(), ...fields }));
  }

  /** Attach (or update) a job's preview; nothing when the job record is gone (retention). */
  async setPreview(id: string, preview: JobPreview): Promise<void> {
    await runScript(this.redis, 'castellanSetPreview', SET_IF_EXISTS, [this.keys.job(id)], ['preview', JSON.stringify(preview)]);
  }

  async vote(id: string, vote: Vote, required: number, denyReason: string): Promise<VoteOutcome> {
    const reply = (await runScript(this.redis, 'castellanVote', VOTE, [this.keys.job(id), this.keys.jobIndex()], [
      JSON.stringify(vote),
      String(required),
      String(Date.now()),
      new Date().toISOString(),
      denyReason,
      ALLOWED_FROM.denied.join(','),
      ALLOWED_FROM.queued.join(','),
      this.keys.jobsBy('state', ''),
      id,
    ])) as [string, string];
    const [kind, detail] = reply;
    switch (kind) {
      case 'approved':
      case 'recorded':
      case 'denied':
        return { kind, count: Number(detail) };
      case 'state':
        return { kind, state: detail as JobState };
      default:
        return { kind: kind as 'missing' | 'duplicate' | 'expired' };
    }
  }

  /** Newest first. */
  async list(limit: number, offset = 0): Promise<JobRecord[]> {
    const ids = await this.redis.zrevrange(this.keys.jobIndex(), offset, offset + limit - 1);
    const records = await Promise.all(ids.map((id) => this.get(id)));
    return records.filter((r): r is JobRecord => r !== undefined);
  }

  /**
   * Bound history: records of finished jobs expire after `ttlSeconds`. The expiry time goes in
   * an index too, so `sweep` takes the job out of every listing index when its record goes.
   */
  async expireFinished(id: string, ttlSeconds: number): Promise<void> {
    await this.redis
      .multi()
      .expire(this.keys.job(id), ttlSeconds)
      .expire(this.keys.events(id), ttlSeconds)
      .expire(this.keys.ledger(id), ttlSeconds)
      .zadd(this.keys.jobsExpiry(), Date.now() + ttlSeconds * 1000, id)
      .exec();
  }

  /**
   * Keep at most `maxEntries` jobs, and none past its expiry: the oldest finished ones beyond
   * the cap, and those whose time is up, are deleted with their events, ledger and every index
   * entry. A job still in flight is never deleted, however old. Cheap when there is nothing to do.
   */
  async trim(maxEntries: number, isFinalState: (state: string) => boolean): Promise<number> {
    const index = this.keys.jobIndex();
    // Both reads at once: this runs at the end of every job.
    const [expired, count] = await Promise.all([this.redis.zrangebyscore(this.keys.jobsExpiry(), '-inf', Date.now(), 'LIMIT', 0, SWEEP_BATCH), this.redis.zcard(index)]);
    const over = count > maxEntries ? await this.redis.zrange(index, 0, Math.min(count - maxEntries, SWEEP_BATCH) - 1) : [];
    const candidates = [...new Set([...expired, ...over])];
    if (candidates.length === 0) return 0;
    const states = await this.redis.pipeline(candidates.map((id) => ['hget', this.keys.job(id), 'state'])).exec();
    const doomed = candidates.filter((id, i) => {
      const state = states?.[i]?.[1] as string | null | undefined;
      return state === null || state === undefined || isFinalState(state);
    });
    await this.forget(doomed);
    return doomed.length;
  }

  /** Delete jobs with everything that names them: record, events, ledger, index entries, byte accounting. */
  async forget(ids: readonly string[]): Promise<void> {
    await forgetJobs(this.redis, this.keys, ids);
  }

  /**
   * Job ids matching `query`, newest first, and how many match in all: one script, so the
   * page and the total agree. Each filter is one index (or a union of them for several
   * states); several filters intersect, which Redis does walking the smallest set.
   */
  async query(query: JobQuery): Promise<{ ids: string[]; total: number }> {
    await this.indexed();
    const groups: string[][] = [];
    if (query.states !== undefined && query.states.length > 0) groups.push(query.states.map((st) => this.keys.jobsBy('state', st)));
    for (const field of ['tool', 'requester', 'host', 'origin'] as const) {
      const value = query[field];
      if (value !== undefined) groups.push([this.keys.jobsBy(field, value)]);
    }
    if (groups.length === 0) groups.push([this.keys.jobIndex()]);
    const page = await queryIndexes(this.redis, {
      groups,
      scratch: (n) => this.keys.jobsScratch(n),
      min: query.since,
      max: query.until,
      offset: query.offset,
      limit: query.limit ?? 20,
    });
    return { total: page.total, ids: page.members.map((m) => m.member) };
  }

  /** The records of `ids` in order; ids whose record is gone leave the indexes on the way. */
  async records(ids: readonly string[]): Promise<JobRecord[]> {
    const records = await Promise.all(ids.map((id) => this.get(id)));
    const gone = ids.filter((_id, i) => records[i] === undefined);
    if (gone.length > 0) await this.forget(gone);
    return records.filter((r): r is JobRecord => r !== undefined);
  }

  private indexing: Promise<void> | undefined;

  /** Jobs written before the secondary indexes existed get them once, the first time a process lists. */
  private indexed(): Promise<void> {
    if (this.indexing === undefined) {
      const running = this.reindex().then(
        () => undefined,
        (err: unknown) => {
          this.indexing = undefined;
          throw err;
        },
      );
      this.indexing = running;
      return running;
    }
    return this.indexing;
  }

  /** Add every job missing from `where` to its indexes. Returns how many were added. */
  async reindex(): Promise<number> {
    const [total, known] = await Promise.all([this.redis.zcard(this.keys.jobIndex()), this.redis.hlen(this.keys.jobsWhere())]);
    if (known >= total) return 0;
    let added = 0;
    const all = await this.redis.zrange(this.keys.jobIndex(), 0, -1, 'WITHSCORES');
    for (let i = 0; i < all.length; i += 2000) {
      const chunk: [string, string][] = [];
      for (let j = i; j < Math.min(all.length, i + 2000); j += 2) chunk.push([all[j] ?? '', all[j + 1] ?? '0']);
      const present = await this.redis.hmget(this.keys.jobsWhere(), ...chunk.map(([id]) => id));
      const missing = chunk.filter((_c, k) => present[k] === null);
      const raws = await this.redis.pipeline(missing.map(([id]) => ['hmget', this.keys.job(id), 'doc', 'state'])).exec();
      const multi = this.redis.multi();
      missing.forEach(([id, score], k) => {
        const [doc, state] = (raws?.[k]?.[1] as [string | null, string | null] | undefined) ?? [null, null];
        if (doc === null || state === null) return;
        const where = indexKeysOf(this.keys, JSON.parse(doc) as JobDoc);
        for (const key of where) multi.zadd(key, score, id);
        multi.zadd(this.keys.jobsBy('state', state), score, id);
        multi.hset(this.keys.jobsWhere(), id, JSON.stringify(where));
        added += 1;
      });
      await multi.exec();
    }
    return added;
  }
}

/** How many expired or surplus jobs one ending deletes at most (the next ending does more). */
const SWEEP_BATCH = 500;

/** What a listing can ask for: every field narrows; times are epoch ms, inclusive. */
export interface JobQuery {
  readonly states?: readonly JobState[] | undefined;
  readonly tool?: string | undefined;
  /** Subject or display name. */
  readonly requester?: string | undefined;
  readonly host?: string | undefined;
  readonly origin?: string | undefined;
  readonly since?: number | undefined;
  readonly until?: number | undefined;
  readonly offset?: number | undefined;
  readonly limit?: number | undefined;
}

/** The secondary indexes a job sits in for life (its state index moves and is kept apart). */
export function indexKeysOf(keys: Keys, doc: JobDoc): string[] {
  const out = new Set<string>([keys.jobsBy('tool', doc.tool), keys.jobsBy('requester', doc.requester.subject), keys.jobsBy('origin', doc.requester.origin)]);
  if (doc.requester.displayName) out.add(keys.jobsBy('requester', doc.requester.displayName));
  for (const host of doc.plan.hosts) out.add(keys.jobsBy('host', host));
  return [...out];
}


function parseJson<T>(text: string | undefined): T | undefined {
  if (text === undefined || text === '') return undefined;
  return JSON.parse(text) as T;
}

/**
 * The record a hash of these fields holds: what a submitter wrote, without reading it back
 * (one round trip, and at 1000 hosts ~0.2 MB from Redis, less a job).
 */
export function recordFromFields(fields: Record<string, string>): JobRecord {
  return decode(fields);
}

function decode(raw: Record<string, string>): JobRecord {
  return withLiveFields(decodeDoc(raw.doc ?? '{}'), raw);
}

/** The fields of a record that change after submit: everything but `doc`, which never does (see knownDocs). */
const LIVE_FIELDS = ['state', 'votes', 'updatedAt', 'queuedAt', 'startedAt', 'finishedAt', 'attempt', 'worker', 'cancel', 'reason', 'result', 'preview'] as const;

// KEYS[1] the record; ARGV the fields to read. The doc's length in bytes (a reader that decoded
// the doc checks it is the one it knows), then the fields' values in order; nil: no record.
const READ_LIVE = `
local n = redis.call('HSTRLEN', KEYS[1], 'doc')
if n == 0 then return false end
local values = redis.call('HMGET', KEYS[1], unpack(ARGV))
table.insert(values, 1, n)
return values
`;

/** The record from a known doc and LIVE_FIELDS' values (undefined: the record has no state, it is gone). */
function recordOf(doc: JobDoc, values: readonly (string | null | undefined)[]): JobRecord | undefined {
  const raw = liveFieldsOf(values);
  return raw.state === undefined ? undefined : withLiveFields(doc, raw);
}

/** HMGET's answer for LIVE_FIELDS (nil: the field is not set; Lua's nil arrives as null too). */
function liveFieldsOf(values: readonly (string | null | undefined)[]): Partial<Record<string, string>> {
  const raw: Partial<Record<string, string>> = {};
  LIVE_FIELDS.forEach((field, i) => {
    const value = values[i];
    if (typeof value === 'string') raw[field] = value;
  });
  return raw;
}

/** `doc` (a doc, or a record of the same job: every live field is set anew) with `raw`'s live fields. */
function withLiveFields(doc: JobDoc, raw: Partial<Record<string, string>>): JobRecord {
  return {
    ...doc,
    state: raw.state as JobState,
    votes: parseJson<Vote[]>(raw.votes) ?? [],
    updatedAt: raw.updatedAt ?? doc.createdAt,
    queuedAt: raw.queuedAt,
    startedAt: raw.startedAt,
    finishedAt: raw.finishedAt,
    attempt: Number(raw.attempt ?? '0'),
    worker: raw.worker,
    cancel: parseJson(raw.cancel),
    reason: raw.reason,
    result: parseJson<JobResult>(raw.result),
    preview: parseJson<JobPreview>(raw.preview),
  };
}

/**
 * A record's doc (plan, binding, input: fixed at submit time, ~0.2 MB of JSON at 1000 hosts) is
 * decoded once per process: the submitter, the worker's delivery, the waiter's load and its final
 * read all read the same text, and each JSON.parse of it cost ~4 ms. Keyed by the exact text read
 * from Redis (a doc that differs in one byte is decoded afresh), so a reader sees what the record
 * holds, never what it held; the decoded doc is frozen, shared by every reader in the process.
 */
export function decodeDoc(text: string): JobDoc {
  const known = decodedDocs.get(text);
  if (known !== undefined) {
    // Most recently used last: the oldest goes first when the cache is full.
    decodedDocs.delete(text);
    decodedDocs.set(text, known);
    return known;
  }
  const doc = deepFreeze(JSON.parse(text) as JobDoc);
  decodedDocs.set(text, doc);
  if (decodedDocs.size > DOC_CACHE_ENTRIES) decodedDocs.delete(decodedDocs.keys().next().value!);
  return doc;
}

/** Docs kept decoded (about the jobs in flight in this process at once; a few MB decoded at most each). */
const DOC_CACHE_ENTRIES = 8;
const decodedDocs = new Map<string, JobDoc>();

/**
 * Docs known by record key: a job's doc is written once, at submit, and never changes, so a
 * reader that decoded it reads only the live fields again (JobStore.get, ifFinal). At 1000 hosts
 * each whole read was ~0.2 MB to send, receive and hash for decodeDoc's lookup, and a fan-out's
 * submitter, worker and waiter made four. The doc's stored length comes with the live fields:
 * a record written anew under the same key (ids are never reused; a fixture might) is read whole.
 */
const knownDocs = new Map<string, { readonly doc: JobDoc; readonly bytes: number }>();
const KNOWN_DOC_ENTRIES = DOC_CACHE_ENTRIES;

function knownDoc(key: string): { readonly doc: JobDoc; readonly bytes: number } | undefined {
  const known = knownDocs.get(key);
  if (known !== undefined) {
    knownDocs.delete(key);
    knownDocs.set(key, known);
  }
  return known;
}

/** `record`'s doc (decodeDoc's frozen one: the record spreads it) under `key`. */
function rememberDoc(key: string, record: JobRecord, text: string): void {
  const doc = decodedDocs.get(text);
  if (doc === undefined || doc.id !== record.id) return;
  knownDocs.delete(key);
  knownDocs.set(key, { doc, bytes: Buffer.byteLength(text) });
  if (knownDocs.size > KNOWN_DOC_ENTRIES) knownDocs.delete(knownDocs.keys().next().value!);
}

/** JSON values only (what JSON.parse returns): every object and array made read-only. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    if (Array.isArray(value)) for (const item of value) deepFreeze(item);
    else for (const key in value) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

const SET_IF_EXISTS = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1`;
