// The audit trail read from its Redis indexes, on a real Redis: every filter (subject, tool,
// host, origin, kind, decision, outcome, job, time) and combinations give exactly what a scan
// of the whole stream gives, newest first, with the same total; cursor paging walks them with
// no gap and no repeat while entries keep arriving; each caller reads only what auditScope
// allows; a trimmed stream is never listed past its oldest entry and the sweep gives the
// index memory back; entries written before the indexes existed get them on first read.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditScope, type AuditScope } from '../../auth/policy.js';
import { AuditLog, type AuditKind, type AuditQuery, type AuditRecord, type StoredAudit } from '../../queues/audit.js';
import { keys } from '../../queues/keys.js';
import { Redactor } from '../../queues/redact.js';
import { useRedis } from '../support/redis.js';

const redisServer = useRedis();
let redis: Redis;
const k = keys('aud');

const PEOPLE = ['alice', 'oscar', 'vera', 'claude'];
const TOOLS = ['ping', 'exec', 'reboot'];
const HOSTS = ['node01', 'node02', 'node03', 'node04', 'node05'];
const KINDS: AuditKind[] = ['request', 'decision', 'execution', 'outcome', 'cancel', 'refused'];

/** A varied entry: the kind decides which fields it has, as the real writers do. */
function entry(i: number): AuditRecord {
  const kind = KINDS[i % KINDS.length]!;
  const requester = PEOPLE[i % 3]!;
  const actor = kind === 'decision' || kind === 'cancel' ? PEOPLE[(i + 1) % PEOPLE.length]! : requester;
  const gated = i % 4 === 0 ? { approvalsRequired: 1 } : {};
  const job = kind === 'refused' && i % 2 === 0 ? {} : { jobId: `jaud${String(i % 40).padStart(6, '0')}`, requester, ...gated };
  const base = { kind, subject: actor, displayName: actor.toUpperCase(), origin: i % 5 === 0 ? ('worker' as const) : (['cli', 'mcp', 'slack', 'dashboard'] as const)[i % 4]!, tool: TOOLS[i % TOOLS.length]!, ...job };
  // As the runner writes them: an entry per write of a step, each host with its outcome; and
  // single-host entries (as written before entries covered many hosts).
  if (kind === 'execution' && i % 4 === 0) {
    return { ...base, argv: ['uptime'], results: HOSTS.slice(i % 3, 2 + (i % 3)).map((host, n) => ({ host, status: (i + n) % 3 === 0 ? 'failed' : 'ok', exitCode: (i + n) % 3 === 0 ? 1 : 0 })) };
  }
  if (kind === 'execution') return { ...base, host: HOSTS[i % HOSTS.length]!, argv: ['uptime'], status: i % 3 === 0 ? 'failed' : 'ok', exitCode: 0 };
  if (kind === 'decision') return { ...base, decision: i % 2 === 0 ? 'approve' : 'deny', hosts: HOSTS.slice(0, 1 + (i % 3)) };
  if (kind === 'outcome') return { ...base, state: i % 2 === 0 ? 'succeeded' : 'failed', hosts: HOSTS.slice(i % 3) };
  if (kind === 'request') return { ...base, hosts: HOSTS.slice(i % 2, 3 + (i % 2)), input: { n: i } };
  return base;
}

/** What a listing must return: every stream entry, filtered the slow way, newest first. */
async function scan(query: AuditQuery, scope: AuditScope = { all: true }): Promise<StoredAudit[]> {
  // The stream as stored (`read` gives an entry of many hosts once per host).
  const all = (await redis.xrevrange(k.audit(), '+', '-')).map(([id, fields]) => ({ ...(JSON.parse(fields[1] ?? '{}') as StoredAudit), id }));
  const ms = (id: string): number => Number(id.split('-')[0]);
  return all.filter((r) => {
    const hosts = [...(r.host !== undefined ? [r.host] : []), ...(r.hosts ?? []), ...(r.results ?? []).map((run) => run.host)];
    const outcomes = [r.kind === 'outcome' ? r.state : r.kind === 'execution' ? r.status : undefined, ...(r.results ?? []).map((run) => run.status)];
    const visible = scope.all || r.subject === scope.subject || r.requester === scope.subject || (scope.gated && (r.approvalsRequired ?? 0) > 0);
    return (
      visible &&
      (query.subject === undefined || r.subject === query.subject) &&
      (query.tool === undefined || r.tool === query.tool) &&
      (query.host === undefined || hosts.includes(query.host)) &&
      (query.origin === undefined || r.origin === query.origin) &&
      (query.kind === undefined || r.kind === query.kind) &&
      (query.decision === undefined || r.decision === query.decision) &&
      (query.outcome === undefined || outcomes.includes(query.outcome)) &&
      (query.jobId === undefined || r.jobId === query.jobId) &&
      (query.since === undefined || ms(r.id) >= query.since) &&
      (query.until === undefined || ms(r.id) <= query.until)
    );
  });
}

/** Every page of a listing, followed by its cursor. */
async function walk(log: AuditLog, query: AuditQuery, scope: AuditScope, limit: number): Promise<{ ids: string[]; totals: Set<number>; pages: number }> {
  const ids: string[] = [];
  const totals = new Set<number>();
  let after: string | undefined;
  let pages = 0;
  do {
    const page = await log.page({ ...query, limit, after }, scope);
    pages += 1;
    ids.push(...page.entries.map((e) => e.id));
    totals.add(page.total);
    after = page.next;
    if (pages > 500) throw new Error('paging does not end');
  } while (after !== undefined);
  return { ids, totals, pages };
}

let log: AuditLog;
let middle: { since: number; until: number };

beforeAll(async () => {
  redis = new Redis(redisServer.url);
  log = new AuditLog(redis, k, new Redactor([]));
  // Batches as the runner writes them (many entries in one millisecond) and single appends, at
  // distinct times so a time range cuts through the trail.
  const stamps: number[] = [];
  for (let b = 0; b < 6; b++) {
    await log.appendMany(Array.from({ length: 80 }, (_x, i) => entry(b * 100 + i)));
    for (let i = 80; i < 86; i++) await log.append(entry(b * 100 + i));
    stamps.push(Date.now());
    await new Promise((r) => setTimeout(r, 15));
  }
  middle = { since: stamps[1]! + 1, until: stamps[3]! };
}, 60_000);

afterAll(async () => {
  await redis.quit();
});

describe('audit listing from the indexes', () => {
  // Functions: the time range is known once beforeAll wrote the trail.
  const cases: [string, () => AuditQuery][] = [
    ['everything', () => ({})],
    ['subject', () => ({ subject: 'oscar' })],
    ['tool', () => ({ tool: 'reboot' })],
    ['host in an execution or a plan', () => ({ host: 'node03' })],
    ['origin', () => ({ origin: 'worker' })],
    ['kind', () => ({ kind: 'execution' })],
    ['decision', () => ({ decision: 'deny' })],
    ['outcome of jobs and hosts', () => ({ outcome: 'failed' })],
    ['one job', () => ({ jobId: 'jaud000012' })],
    ['time range', () => (middle)],
    ['subject + host + time', () => ({ subject: 'alice', host: 'node01', ...middle })],
    ['tool + kind + outcome', () => ({ tool: 'exec', kind: 'execution', outcome: 'ok' })],
    ['nothing matches', () => ({ subject: 'nobody' })],
  ];

  it.each(cases)('%s: the same entries, order and total as a scan', async (_name, make) => {
    const query = make();
    const expected = await scan(query);
    const page = await log.page({ ...query, limit: 1000 }, { all: true });
    expect(page.entries.map((e) => e.id)).toEqual(expected.map((e) => e.id));
    expect(page.total).toBe(expected.length);
    expect(page.next).toBeUndefined();
    if (query.subject !== undefined && expected.length > 0) expect(page.entries[0]).toMatchObject({ subject: query.subject });
  });

  it('cursor paging walks every match once, in order, even while entries arrive', async () => {
    const query: AuditQuery = { host: 'node02' };
    const expected = (await scan(query)).map((e) => e.id);
    expect(expected.length).toBeGreaterThan(60);
    const first = await log.page({ ...query, limit: 7 }, { all: true });
    expect(first.next).toBe(first.entries.at(-1)?.id);
    // New entries land above the cursor: the walk below it is unchanged.
    await log.appendMany(Array.from({ length: 20 }, (_x, i) => ({ ...entry(1000 + i * 5), host: 'node02' })));
    const ids = [...first.entries.map((e) => e.id)];
    let after = first.next;
    while (after !== undefined) {
      const page = await log.page({ ...query, limit: 7, after }, { all: true });
      ids.push(...page.entries.map((e) => e.id));
      after = page.next;
    }
    expect(ids).toEqual(expected);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('a page size that divides the matches ends without an empty page', async () => {
    const expected = await scan({ kind: 'cancel' });
    const size = expected.length % 2 === 0 ? 2 : 1;
    const walked = await walk(log, { kind: 'cancel' }, { all: true }, size);
    expect(walked.ids).toEqual(expected.map((e) => e.id));
    expect(walked.pages).toBe(expected.length / size);
  });

  it('an execution entry of many hosts is found by each host and status, shows the hosts asked for, and reads as one entry per host', async () => {
    const one = new AuditLog(redis, keys('audmany'), new Redactor([]));
    const results = [
      { host: 'node01', status: 'ok', exitCode: 0, durationMs: 4 },
      { host: 'node02', status: 'failed', exitCode: 3, durationMs: 5, reason: 'exit code 3' },
      { host: 'node03', status: 'ok', exitCode: 0, durationMs: 6 },
    ];
    const { ids } = await one.appendMany([{ kind: 'execution', jobId: 'jmany', subject: 'oscar', origin: 'worker', tool: 'exec', step: 'run', argv: ['uptime'], results }]);
    const byHost = await one.page({ host: 'node02' }, { all: true });
    expect(byHost.entries.map((e) => [e.id, e.results?.map((r) => r.host)])).toEqual([[ids[0], ['node02']]]);
    const failed = await one.page({ outcome: 'failed' }, { all: true });
    expect(failed.entries.map((e) => e.results?.map((r) => `${r.host}:${r.status}`))).toEqual([['node02:failed']]);
    expect((await one.page({ outcome: 'ok' }, { all: true })).entries[0]?.results?.map((r) => r.host)).toEqual(['node01', 'node03']);
    expect((await one.page({ outcome: 'timed_out' }, { all: true })).total).toBe(0);
    expect((await one.page({ host: 'node04' }, { all: true })).total).toBe(0);
    // Unfiltered: the whole entry, once.
    const all = await one.page({}, { all: true });
    expect(all.total).toBe(1);
    expect(all.entries[0]?.results).toHaveLength(3);
    // A job's trail host by host, as single-host entries read.
    const trail = await one.read({ jobId: 'jmany' });
    expect(trail.map((e) => `${e.host}:${e.status}:${e.exitCode}`)).toEqual(['node01:ok:0', 'node02:failed:3', 'node03:ok:0']);
    expect(trail.every((e) => e.id === ids[0] && e.results === undefined && e.argv?.[0] === 'uptime')).toBe(true);
  });

  it('a cursor that is not an entry id is refused by name', async () => {
    await expect(log.page({ after: '1;DROP' }, { all: true })).rejects.toMatchObject({ code: 'invalid_input', field: 'cursor' });
  });
});

describe('who reads which entries (auditScope)', () => {
  const people = {
    admin: { subject: 'root', roles: ['admin'] as const },
    approver: { subject: 'vera', roles: ['approver'] as const },
    operator: { subject: 'oscar', roles: ['operator'] as const },
    viewer: { subject: 'claude', roles: ['viewer'] as const },
  };

  it.each(Object.entries(people))('%s: exactly the entries the rule allows, paged', async (_role, who) => {
    const scope = auditScope({ subject: who.subject, roles: [...who.roles] });
    const expected = (await scan({}, scope)).map((e) => e.id);
    const walked = await walk(log, {}, scope, 50);
    expect(walked.ids).toEqual(expected);
    expect([...walked.totals]).toEqual([expected.length]);
    const everything = (await scan({})).length;
    if (who.roles[0] === 'admin') expect(expected.length).toBe(everything);
    else expect(expected.length).toBeLessThan(everything);
  });

  it('an operator reads what was done on their jobs by others, and nothing of others', async () => {
    const page = await log.page({ limit: 1000 }, auditScope({ subject: 'oscar', roles: ['operator'] }));
    expect(page.entries.some((e) => e.subject !== 'oscar' && e.requester === 'oscar')).toBe(true);
    expect(page.entries.every((e) => e.subject === 'oscar' || e.requester === 'oscar')).toBe(true);
  });

  it('an approver also reads every entry of jobs that asked for approval', async () => {
    const page = await log.page({ limit: 1000 }, auditScope({ subject: 'vera', roles: ['approver'] }));
    const others = page.entries.filter((e) => e.subject !== 'vera' && e.requester !== 'vera');
    expect(others.length).toBeGreaterThan(0);
    expect(others.every((e) => (e.approvalsRequired ?? 0) > 0)).toBe(true);
  });

  it('filters narrow within the scope', async () => {
    const scope = auditScope({ subject: 'oscar', roles: ['operator'] });
    const expected = await scan({ kind: 'decision' }, scope);
    const page = await log.page({ kind: 'decision', limit: 1000 }, scope);
    expect(page.entries.map((e) => e.id)).toEqual(expected.map((e) => e.id));
  });
});

describe('a bounded trail', () => {
  it('a trimmed stream is never listed past its oldest entry, and the sweep frees the indexes', async () => {
    const kt = keys('audtrim');
    const small = new AuditLog(redis, kt, new Redactor([]), { maxEntries: 200 });
    for (let b = 0; b < 10; b++) await small.appendMany(Array.from({ length: 100 }, (_x, i) => entry(b * 100 + i)));
    const length = await redis.xlen(kt.audit());
    expect(length).toBeLessThan(1000);
    const page = await small.page({ limit: 1000 }, { all: true });
    expect(page.total).toBe(length);
    expect(page.entries).toHaveLength(length);
    expect(await redis.zcard(kt.auditIndex())).toBe(1000);
    expect(await small.sweep()).toBeGreaterThan(0);
    expect(await redis.zcard(kt.auditIndex())).toBe(length);
    expect(await redis.zcard(kt.auditBy('kind', 'execution'))).toBe(page.entries.filter((e) => e.kind === 'execution').length);
    // Nothing moved since: the next sweep has nothing to do.
    expect(await small.sweep()).toBe(0);
  });

  it('entries written before the indexes existed are indexed on first read', async () => {
    const ko = keys('audold');
    for (let i = 0; i < 30; i++) await redis.xadd(ko.audit(), '*', 'r', JSON.stringify({ at: new Date().toISOString(), ...entry(i) }));
    const fresh = new AuditLog(redis, ko, new Redactor([]));
    await fresh.append(entry(30));
    const page = await fresh.page({ subject: 'alice', limit: 1000 }, { all: true });
    const all = await fresh.read({ count: 1000 });
    expect(page.entries.map((e) => e.id)).toEqual(all.filter((e) => e.subject === 'alice').reverse().map((e) => e.id));
    expect(await redis.zcard(ko.auditIndex())).toBe(31);
  });
});
