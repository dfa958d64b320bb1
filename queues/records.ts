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
import { runScript } from './scripts.js';
import type { PlanBinding } from './plan-binding.js';
import { ALLOWED_FROM, type JobState } from './states.js';

/** Where progress and results go back to, per origin. Opaque to the queue layer. */
export type ReplyAddress =
  | { readonly kind: 'cli' }
  | { readonly kind: 'mcp'; readonly sessionId?: string | undefined }
  | { readonly kind: 'slack'; readonly channel: string; readonly threadTs?: string | undefined; readonly user?: string | undefined; readonly team?: string | undefined }
  | { readonly kind: 'dashboard' };

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

const TRANSITION = `
local s = redis.call('HGET', KEYS[1], 'state')
if not s then return {'missing', ''} end
for allowed in string.gmatch(ARGV[1], '[^,]+') do
  if allowed == s then
    redis.call('HSET', KEYS[1], 'state', ARGV[2])
    local fields = cjson.decode(ARGV[3])
    for k, v in pairs(fields) do redis.call('HSET', KEYS[1], k, v) end
    return {'ok', s}
  end
end
return {'refused', s}
`;

// ARGV: 1 vote (JSON), 2 approvals required, 3 now (ms), 4 now (ISO), 5 deny reason,
// 6 states `denied` may come from, 7 states `queued` may come from (the transition table,
// so the script never writes a state the table does not allow).
const VOTE = `
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
  return {'denied', tostring(#votes)}
end
local approvals = 0
for _, v in ipairs(votes) do if v['decision'] == 'approve' then approvals = approvals + 1 end end
if approvals >= tonumber(ARGV[2]) and allowed(ARGV[7]) then
  redis.call('HSET', KEYS[1], 'state', 'queued', 'queuedAt', ARGV[4])
  return {'approved', tostring(approvals)}
end
return {'recorded', tostring(approvals)}
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

export class JobStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  async create(doc: JobDoc, initial: JobState, extra: Fields = {}): Promise<void> {
    const key = this.keys.job(doc.id);
    const now = new Date().toISOString();
    await this.redis
      .multi()
      .hset(
        key,
        stringFields({
          doc: JSON.stringify(doc),
          state: initial,
          votes: '[]',
          updatedAt: now,
          attempt: 0,
          expiresAt: doc.expiresAt ?? 0,
          ...extra,
        }),
      )
      .zadd(this.keys.jobIndex(), Date.parse(doc.createdAt), doc.id)
      .exec();
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const raw = await this.redis.hgetall(this.keys.job(id));
    if (!raw.doc || !raw.state) return undefined;
    return decode(raw);
  }

  async state(id: string): Promise<JobState | undefined> {
    const s = await this.redis.hget(this.keys.job(id), 'state');
    return (s ?? undefined) as JobState | undefined;
  }

  /** Move to `to` only from one of its allowed predecessors (or a narrower `from` list). */
  async transition(id: string, to: JobState, fields: Fields = {}, from: readonly JobState[] = ALLOWED_FROM[to]): Promise<TransitionOutcome> {
    const now = new Date().toISOString();
    const reply = (await runScript(this.redis, 'castellanTransition', TRANSITION, [this.keys.job(id)], [
      from.join(','),
      to,
      JSON.stringify(stringFields({ updatedAt: now, ...fields })),
    ])) as [string, string];
    if (reply[0] === 'ok') return { ok: true, from: reply[1] as JobState };
    return { ok: false, current: reply[0] === 'missing' ? null : (reply[1] as JobState) };
  }

  async update(id: string, fields: Fields): Promise<void> {
    await this.redis.hset(this.keys.job(id), stringFields({ updatedAt: new Date().toISOString(), ...fields }));
  }

  async vote(id: string, vote: Vote, required: number, denyReason: string): Promise<VoteOutcome> {
    const reply = (await runScript(this.redis, 'castellanVote', VOTE, [this.keys.job(id)], [
      JSON.stringify(vote),
      String(required),
      String(Date.now()),
      new Date().toISOString(),
      denyReason,
      ALLOWED_FROM.denied.join(','),
      ALLOWED_FROM.queued.join(','),
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

  /** Bound history: records of finished jobs expire after `ttlSeconds`. */
  async expireFinished(id: string, ttlSeconds: number): Promise<void> {
    await this.redis.multi().expire(this.keys.job(id), ttlSeconds).expire(this.keys.events(id), ttlSeconds).expire(this.keys.ledger(id), ttlSeconds).exec();
  }

  /**
   * Keep at most `maxEntries` jobs: the oldest finished ones beyond that are deleted with
   * their events and ledger (records whose TTL already removed them leave the index too).
   * A job still in flight is never deleted, however old. Cheap when under the cap (ZCARD).
   */
  async trim(maxEntries: number, isFinalState: (state: string) => boolean): Promise<number> {
    const index = this.keys.jobIndex();
    const count = await this.redis.zcard(index);
    if (count <= maxEntries) return 0;
    const oldest = await this.redis.zrange(index, 0, count - maxEntries - 1);
    const states = await Promise.all(oldest.map((id) => this.redis.hget(this.keys.job(id), 'state')));
    const doomed = oldest.filter((_, i) => states[i] === null || isFinalState(states[i]!));
    if (doomed.length === 0) return 0;
    const multi = this.redis.multi();
    for (const id of doomed) multi.del(this.keys.job(id), this.keys.events(id), this.keys.ledger(id));
    multi.zrem(index, ...doomed);
    await multi.exec();
    return doomed.length;
  }
}

function parseJson<T>(text: string | undefined): T | undefined {
  if (text === undefined || text === '') return undefined;
  return JSON.parse(text) as T;
}

function decode(raw: Record<string, string>): JobRecord {
  const doc = JSON.parse(raw.doc ?? '{}') as JobDoc;
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
  };
}
