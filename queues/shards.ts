// Site shards. A job whose hosts sit in several sites (config/sites.ts) runs as a BullMQ flow:
// a parent job on the merge queue and one child per site on that site's queue, which only the
// workers of that site take. People still see one job: the shards write to the same record,
// event stream, ledger and audit, and the parent merges their outcomes into its one result.
//
// Batches and the failure budget stay global. Every shard runs every batch of the plan (with
// only its own hosts); at the end of each batch it reports its counts and waits at a barrier
// until every shard has finished that batch. Then each one knows the same failure total, so
// all of them skip the later batches together once the budget is spent, and batch N+1 starts
// nowhere before batch N ended everywhere. A shard that stops (cancel, lost lock, its worker
// gone) raises `halt`, and the others stop at their next barrier instead of waiting forever.
import type { Redis } from 'ioredis';
import { siteOf } from '../config/sites.js';
import type { Inventory } from '../config/types.js';
import type { Plan, PlanStep } from '../tools/types.js';
import type { HostOutcome, StepReport } from './records.js';
import type { BatchCounts } from './runner.js';
import type { Keys } from './keys.js';
import { guardedHset, type RunGuard } from './run-guard.js';
import { sleep } from './sleep.js';

/** The shard of hosts without a site. */
export const NO_SITE = '';

/** BullMQ queue names (no ':' allowed there). */
export function shardQueueName(base: string, site: string): string {
  return site === NO_SITE ? `${base}-nosite` : `${base}-site-${site}`;
}

export function mergeQueueName(base: string): string {
  return `${base}-merge`;
}

/** How a shard is named to people and in job ids. */
export function shardLabel(site: string): string {
  return site === NO_SITE ? 'hosts without a site' : `site ${site}`;
}

export function shardJobId(jobId: string, site: string): string {
  return `${jobId}-${site === NO_SITE ? 'nosite' : `site-${site}`}`;
}

/** What a child job carries: its part of the plan. */
export interface ShardDoc {
  readonly id: string;
  readonly site: string;
  /** Every site of the job, in order: the barrier waits for all of them. */
  readonly sites: readonly string[];
  readonly plan: Plan;
  readonly attempt: number;
}

/** `unconfirmed`: a step's claim could not be confirmed on a Redis replica (queues/claims.ts). */
export type ShardStop = 'cancel' | 'timeout' | 'shutdown' | 'lock_lost' | 'halt' | 'crash' | 'unconfirmed';

/** What a shard returns to the parent (its BullMQ return value). */
export interface ShardOutcome {
  readonly site: string;
  readonly worker: string;
  readonly hosts: readonly HostOutcome[];
  readonly steps: readonly StepReport[];
  readonly stop?: { readonly reason: ShardStop; readonly detail: string } | undefined;
  /** Hosts whose outcome is unknown (the shard's worker stopped while they ran). */
  readonly unknownHosts?: readonly string[] | undefined;
  /** Per-host words from the reconcile after a worker crash ("its run had already ended"…). */
  readonly notes?: readonly string[] | undefined;
}

/**
 * Hosts per site, in plan order. A step about a subject (kubectl on a control host about node
 * X) belongs to the subject's site when the subject is an inventory host, so a node's steps
 * stay together; any other step belongs, host by host, to the site of the host it runs on.
 */
export function splitBySite(plan: Plan, inventory: Inventory): Map<string, string[]> {
  const sites = new Map<string, Set<string>>();
  /** Every host some site has (a host may be in several: a subject's site and its own). */
  const placed = new Set<string>();
  const add = (site: string, host: string): void => {
    let set = sites.get(site);
    if (!set) sites.set(site, (set = new Set()));
    set.add(host);
    placed.add(host);
  };
  const siteOfName = (name: string): string => {
    const host = inventory.hosts.get(name);
    return host ? (siteOf(host) ?? NO_SITE) : NO_SITE;
  };
  const visit = (step: PlanStep): void => {
    const owner = ownerSite(step, inventory);
    for (const h of step.hosts) add(owner ?? siteOfName(h), h);
    for (const r of step.onFailure ?? []) visit(r);
  };
  for (const batch of plan.batches) for (const step of batch.steps) visit(step);
  // Plan hosts no step names (none today) still get a place.
  for (const h of plan.hosts) if (!placed.has(h)) add(siteOfName(h), h);
  // Sets, not a search of the plan's hosts per host: at 1000 hosts that was ~500,000 string
  // comparisons (and an array of the sites per host) on every job.
  const planHosts = new Set(plan.hosts);
  const order = (set: Set<string>): string[] => [...plan.hosts.filter((h) => set.has(h)), ...[...set].filter((h) => !planHosts.has(h))];
  return new Map([...sites].sort(([a], [b]) => a.localeCompare(b)).map(([site, set]) => [site, order(set)]));
}

function ownerSite(step: PlanStep, inventory: Inventory): string | undefined {
  if (step.subject === undefined) return undefined;
  const subject = inventory.hosts.get(step.subject);
  return subject ? (siteOf(subject) ?? NO_SITE) : undefined;
}

/** The part of the plan one site runs: every batch (the barrier needs them all), its steps only. */
export function shardPlan(plan: Plan, site: string, inventory: Inventory): Plan {
  const mine = new Set(splitBySite(plan, inventory).get(site) ?? []);
  const restrict = (step: PlanStep): PlanStep | undefined => {
    const owner = ownerSite(step, inventory);
    const hosts = owner !== undefined ? (owner === site ? [...step.hosts] : []) : step.hosts.filter((h) => mine.has(h) && siteOfHost(inventory, h) === site);
    if (hosts.length === 0) return undefined;
    const onFailure = step.onFailure?.map(restrict).filter((s): s is PlanStep => s !== undefined);
    return { ...step, hosts, ...(step.onFailure ? { onFailure } : {}) };
  };
  return {
    ...plan,
    hosts: plan.hosts.filter((h) => mine.has(h)),
    batches: plan.batches.map((b) => ({ steps: b.steps.map(restrict).filter((s): s is PlanStep => s !== undefined) })),
  };
}

function siteOfHost(inventory: Inventory, name: string): string {
  const host = inventory.hosts.get(name);
  return host ? (siteOf(host) ?? NO_SITE) : NO_SITE;
}

/** Raised at a barrier when another shard stopped the job. */
export class ShardHalt extends Error {
  constructor(readonly detail: string) {
    super(detail);
    this.name = 'ShardHalt';
  }
}

// ARGV: 1 field of this shard's counts, 2 counts "ok,failed,stopped", 3 arrival counter field, 4 TTL (s).
// Returns the arrival number (the shard that makes it equal the number of shards was last).
const ARRIVE = `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local n = redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return n
`;

const SHARD_STATE_TTL_S = 7 * 24 * 3600;

/** The per-job coordination hash of a split job (ShardBoard). */
export function shardBoardKey(keys: Keys, jobId: string): string {
  return `${keys.prefix}:shards:${jobId}`;
}

/** The board field holding the run token of the delivery that runs `site`'s shard. */
export function shardRunField(site: string): string {
  return `run:${site}`;
}

/** The guard of delivery `run` of `site`'s shard (queues/run-guard.ts): its board's `run:<site>`. */
export function shardGuard(keys: Keys, jobId: string, site: string, run: string): RunGuard {
  return { key: shardBoardKey(keys, jobId), field: shardRunField(site), value: run };
}

/** The board field holding `site`'s shard outcome. */
export function shardResultField(site: string): string {
  return `result:${site}`;
}

/** The per-job coordination hash: who runs which shard, barrier counts, a halt. */
export class ShardBoard {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  private key(jobId: string): string {
    return shardBoardKey(this.keys, jobId);
  }

  /**
   * This delivery of `site`'s shard takes it: its run token in `run:<site>`, written only while
   * no other delivery's is there. A later delivery finds the earlier token and knows the shard
   * is claimed (queues/claims.ts confirms the token before every step, like a job's `run`).
   */
  async claimRun(jobId: string, site: string, run: string): Promise<{ ours: boolean; holder?: string | undefined }> {
    const key = this.key(jobId);
    const [, [, holder]] = (await this.redis.multi().hsetnx(key, shardRunField(site), run).hget(key, shardRunField(site)).expire(key, SHARD_STATE_TTL_S).exec()) as [[null, number], [null, string | null], unknown];
    return holder === run ? { ours: true } : { ours: false, holder: holder ?? undefined };
  }

  /** A redelivery that goes on after the shard's worker is gone takes the shard over. */
  async takeRun(jobId: string, site: string, run: string): Promise<void> {
    await this.redis.hset(this.key(jobId), shardRunField(site), run);
  }

  /** Record that `worker` runs `site`'s shard; false when an earlier delivery already started it. */
  async start(jobId: string, site: string, worker: string): Promise<{ first: boolean; previous?: string | undefined }> {
    const key = this.key(jobId);
    const [[, set], [, previous]] = (await this.redis
      .multi()
      .hsetnx(key, `started:${site}`, worker)
      .hget(key, `started:${site}`)
      .hset(key, `worker:${site}`, worker)
      .expire(key, SHARD_STATE_TTL_S)
      .exec()) as [[null, number], [null, string | null], unknown, unknown];
    return set === 1 ? { first: true } : { first: false, previous: previous ?? undefined };
  }

  /** Sites whose shard has started somewhere. */
  async startedSites(jobId: string): Promise<Set<string>> {
    const fields = await this.redis.hkeys(this.key(jobId));
    return new Set(fields.filter((f) => f.startsWith('started:')).map((f) => f.slice('started:'.length)));
  }

  /** Which worker runs (or last ran) each shard. */
  async workers(jobId: string): Promise<Map<string, string>> {
    const raw = await this.redis.hgetall(this.key(jobId));
    const out = new Map<string, string>();
    for (const [field, value] of Object.entries(raw)) if (field.startsWith('worker:')) out.set(field.slice('worker:'.length), value);
    return out;
  }

  async halt(jobId: string, detail: string): Promise<void> {
    await this.redis.hsetnx(this.key(jobId), 'halt', detail);
  }

  async halted(jobId: string): Promise<string | undefined> {
    return (await this.redis.hget(this.key(jobId), 'halt')) ?? undefined;
  }

  /**
   * This shard finished batch `index` with these counts: wait until every shard has, and
   * return the batch's counts over all of them. `last` is true for exactly one shard (the one
   * that arrived last), so one line per batch is announced, not one per shard.
   */
  async arrive(jobId: string, site: string, sites: readonly string[], index: number, counts: BatchCounts, signal: AbortSignal): Promise<BatchCounts & { last: boolean }> {
    const key = this.key(jobId);
    const arrival = Number(await this.redis.eval(ARRIVE, 1, key, `b${index}:${site}`, `${counts.ok},${counts.failed},${counts.stopped}`, `n${index}`, SHARD_STATE_TTL_S));
    for (let wait = 50; ; wait = Math.min(wait * 2, 500)) {
      const raw = await this.redis.hgetall(key);
      if (raw.halt !== undefined) throw new ShardHalt(raw.halt);
      if (Number(raw[`n${index}`] ?? 0) >= sites.length) {
        let ok = 0;
        let failed = 0;
        let stopped = 0;
        for (const s of sites) {
          // A shard of an older worker writes "ok,failed": none stopped.
          const [o = '0', f = '0', st = '0'] = (raw[`b${index}:${s}`] ?? '0,0').split(',');
          ok += Number(o);
          failed += Number(f);
          stopped += Number(st);
        }
        return { ok, failed, stopped, last: arrival === sites.length };
      }
      if (signal.aborted) throw new ShardHalt(signal.reason instanceof Error ? signal.reason.message : 'stopped');
      await sleep(wait, signal);
    }
  }

  /** What a worker-gone check found on a shard's hosts (kept for the shard's redelivery). */
  async notes(jobId: string, site: string): Promise<{ unknown: string[]; notes: string[] } | undefined> {
    const raw = await this.redis.hget(this.key(jobId), `notes:${site}`);
    return raw ? (JSON.parse(raw) as { unknown: string[]; notes: string[] }) : undefined;
  }

  async saveNotes(jobId: string, site: string, checked: { unknown: string[]; notes: string[] }): Promise<void> {
    await this.redis.hset(this.key(jobId), `notes:${site}`, JSON.stringify(checked));
  }

  /**
   * A shard's outcome, also kept here: a redelivery that stood by for a live owner returns it.
   * Written only by the delivery that holds the shard (run token `run`): false otherwise.
   */
  async saveResult(jobId: string, site: string, outcome: ShardOutcome, run: string): Promise<boolean> {
    return guardedHset(this.redis, this.keys, this.key(jobId), shardGuard(this.keys, jobId, site, run), [shardResultField(site), JSON.stringify(outcome)]);
  }

  async result(jobId: string, site: string): Promise<ShardOutcome | undefined> {
    const raw = await this.redis.hget(this.key(jobId), shardResultField(site));
    return raw ? (JSON.parse(raw) as ShardOutcome) : undefined;
  }

  async forget(jobId: string): Promise<void> {
    await this.redis.expire(this.key(jobId), 3600);
  }
}

const statusRank = (h: HostOutcome): number => (h.status === 'ok' ? 0 : 1);

/** The one result people see: every shard's hosts and steps, in plan order. */
export function mergeOutcomes(plan: Plan, parts: readonly ShardOutcome[]): { hosts: HostOutcome[]; steps: StepReport[] } {
  const position = new Map(plan.hosts.map((h, i) => [h, i]));
  const byPlan = (a: string, b: string): number => (position.get(a) ?? Number.MAX_SAFE_INTEGER) - (position.get(b) ?? Number.MAX_SAFE_INTEGER);
  const hosts = new Map<string, HostOutcome>();
  for (const part of parts) {
    for (const h of part.hosts) {
      const seen = hosts.get(h.host);
      // A host named by two shards (a control host of subject steps): its worst outcome.
      if (!seen || statusRank(h) > statusRank(seen)) hosts.set(h.host, h);
    }
  }
  const stepOrder: string[] = [];
  const planOrder = new Map<string, number>();
  plan.batches.forEach((b, bi) => b.steps.forEach((s, si) => planOrder.set(`${bi}|${s.id}`, bi * 10_000 + si)));
  const steps = new Map<string, StepReport>();
  for (const part of parts) {
    for (const report of part.steps) {
      const key = `${report.batch}|${report.id}|${report.onFailure?.subject ?? ''}|${report.onFailure?.armedBy ?? ''}`;
      const seen = steps.get(key);
      if (!seen) {
        steps.set(key, report);
        stepOrder.push(key);
      } else {
        steps.set(key, {
          ...seen,
          results: [...seen.results, ...report.results].sort((a, b) => byPlan(a.host, b.host)),
          ...(seen.observations || report.observations ? { observations: [...(seen.observations ?? []), ...(report.observations ?? [])] } : {}),
        });
      }
    }
  }
  const rank = (key: string): number => {
    const [batch = '0', id = ''] = key.split('|');
    return planOrder.get(`${batch}|${id}`) ?? Number(batch) * 10_000 + 9_999;
  };
  const orderedKeys = stepOrder.map((k, i) => ({ k, i })).sort((a, b) => rank(a.k) - rank(b.k) || a.i - b.i).map((x) => x.k);
  return {
    hosts: [...hosts.values()].sort((a, b) => byPlan(a.host, b.host)),
    steps: orderedKeys.map((k) => steps.get(k)!),
  };
}
