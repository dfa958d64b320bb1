// The execution ledger: proof that no step ran twice on a host. Before a step is dispatched
// to a host, the worker claims `<attempt>|<step>|<host>` with HSETNX; a claim that already
// exists is never dispatched again. `change`/`destructive` jobs always use attempt 0, so
// no redelivery (stalled job, retry, second worker) can ever run them twice; `read` jobs
// may be re-run under a new attempt number.
import type { Redis } from 'ioredis';
import type { Keys } from './keys.js';
import { DeliverySuperseded, guardArgs, guardedHset, guardRefuses, type RunGuard } from './run-guard.js';
import { runScript } from './scripts.js';

export interface LedgerEntry {
  readonly attempt: number;
  readonly step: string;
  readonly host: string;
  readonly worker: string;
  readonly startedAt: string;
  readonly finishedAt?: string | undefined;
  readonly status?: string | undefined;
  readonly exitCode?: number | null | undefined;
  readonly durationMs?: number | undefined;
  /** Start of the step's output, kept for resumable plans (their reports read it back). */
  readonly output?: string | undefined;
}

// KEYS[1] the ledger, KEYS[2] the delivery's guard hash (queues/run-guard.ts); ARGV 1 and 2 the
// guard's field ('' for none) and token, 3 the claim's JSON, then the fields to claim. Returns
// those claimed, or false (nil) claiming nothing when the guard refuses: a delivery replaced by
// another never claims a step (nor finishes one: writeLedger).
const CLAIM = `if ${guardRefuses('KEYS[2]', 'ARGV[1]', 'ARGV[2]')} then return false end
local claimed = {}
for i = 4, #ARGV do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[3]) == 1 then table.insert(claimed, ARGV[i]) end
end
return claimed
`;

export function ledgerField(attempt: number, step: string, host: string): string {
  return `${attempt}|${step}|${host}`;
}

export class ExecutionLedger {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  /**
   * Claim the step on each host; returns only the hosts this caller may run it on. `guard`:
   * the claiming delivery's (queues/run-guard.ts); throws DeliverySuperseded, claiming nothing,
   * once another delivery holds the job.
   */
  async claim(jobId: string, attempt: number, step: string, hosts: readonly string[], worker: string, startedAt = new Date().toISOString(), guard?: RunGuard): Promise<string[]> {
    if (hosts.length === 0) return [];
    const entry = (host: string): LedgerEntry => ({ attempt, step, host, worker, startedAt });
    // One script call: the started record is the same shape for all hosts except the host
    // name, which the field already carries; store the host-free part once.
    const template = JSON.stringify({ ...entry(''), host: undefined });
    const fields = hosts.map((h) => ledgerField(attempt, step, h));
    const [guardKey, ...guardRest] = guardArgs(guard, this.keys.unused());
    const claimed = (await runScript(this.redis, 'castellanLedgerClaim', CLAIM, [this.keys.ledger(jobId), guardKey], [...guardRest, template, ...fields])) as string[] | null;
    if (claimed === null) throw new DeliverySuperseded(jobId, `the ledger claim of step ${step}`);
    const set = new Set(claimed);
    return hosts.filter((h) => set.has(ledgerField(attempt, step, h)));
  }

  /**
   * Record the outcome of every host of a step at once: one write (and one read of the claims
   * whose start the caller does not know, i.e. made by an earlier delivery) instead of two
   * round trips per host. Returns what it wrote, so that a step checkpoint (queues/claims.ts)
   * can confirm it on a replica and write it again if lost. `guard`: as for claim.
   */
  async finishMany(
    jobId: string,
    attempt: number,
    step: string,
    outcomes: ReadonlyArray<{ readonly host: string } & Pick<LedgerEntry, 'status' | 'exitCode' | 'durationMs' | 'output'> & { readonly startedAt?: string | undefined }>,
    worker: string,
    guard?: RunGuard,
  ): Promise<LedgerWrite> {
    if (outcomes.length === 0) return { key: this.keys.ledger(jobId), values: {} };
    const key = this.keys.ledger(jobId);
    const fields = outcomes.map((o) => ledgerField(attempt, step, o.host));
    const unknown = outcomes.flatMap((o, i) => (o.startedAt === undefined ? [i] : []));
    const read = unknown.length > 0 ? await this.redis.hmget(key, ...unknown.map((i) => fields[i] as string)) : [];
    const current = new Map(unknown.map((index, k) => [index, read[k]]));
    const finishedAt = new Date().toISOString();
    const values: string[] = [];
    outcomes.forEach((outcome, i) => {
      const raw = current.get(i);
      const started = outcome.startedAt !== undefined ? { startedAt: outcome.startedAt } : raw ? (JSON.parse(raw) as Partial<LedgerEntry>) : {};
      const entry: LedgerEntry = {
        attempt,
        step,
        host: outcome.host,
        worker,
        startedAt: started.startedAt ?? finishedAt,
        finishedAt,
        status: outcome.status,
        exitCode: outcome.exitCode ?? null,
        durationMs: outcome.durationMs,
        ...(outcome.output !== undefined ? { output: outcome.output } : {}),
      };
      values.push(fields[i] as string, JSON.stringify(entry));
    });
    const written: LedgerWrite = { key, values: Object.fromEntries(fields.map((f, i) => [f, values[2 * i + 1] as string])), guard };
    await writeLedger(this.redis, this.keys, written, `the ledger finish of step ${step}`);
    return written;
  }

  async entries(jobId: string): Promise<LedgerEntry[]> {
    const raw = await this.redis.hgetall(this.keys.ledger(jobId));
    return Object.entries(raw).map(([field, json]) => {
      const [attempt, step, host] = field.split('|');
      const parsed = JSON.parse(json) as Partial<LedgerEntry>;
      return { ...parsed, attempt: Number(attempt), step: step ?? '', host: host ?? '' } as LedgerEntry;
    });
  }

  /** Hosts that started a step but never reported its end: their outcome is unknown. */
  async unfinished(jobId: string): Promise<LedgerEntry[]> {
    return (await this.entries(jobId)).filter((e) => e.finishedAt === undefined);
  }
}

/** Ledger fields (and their JSON) as one write put them, under the job's ledger key. */
export interface LedgerWrite {
  readonly key: string;
  readonly values: Readonly<Record<string, string>>;
  /** The writing delivery's guard: a write made again (a checkpoint's repair) passes it too. */
  readonly guard?: RunGuard | undefined;
}

/** Write `w`'s fields (on `redis`: a checkpoint repairs on the current primary), under its guard. */
export async function writeLedger(redis: Redis, keys: Keys, w: LedgerWrite, what = 'a ledger write'): Promise<void> {
  if (!(await guardedHset(redis, keys, w.key, w.guard, Object.entries(w.values).flat()))) throw new DeliverySuperseded(w.key.slice(keys.ledger('').length), what);
}
