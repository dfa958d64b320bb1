// One query over Castellan's secondary indexes (sorted sets of ids scored by time): the job
// listing (queues/records.ts) and the audit trail (queues/audit.ts) both ask it. Groups of
// keys: a group of several keys is their union (several states; "mine" = what I did ∪ what I
// requested), several groups intersect (filters). The page is taken newest first, either at an
// offset or after a cursor (the last member shown and its score: stable while entries arrive),
// and the total counts every match in the range, in the same script so page and total agree.
import type { Redis } from 'ioredis';
import { runScript } from './scripts.js';

export interface IndexQuery {
  /** Each group: one key, or several keys whose union is meant. Intersected; at least one group. */
  readonly groups: readonly (readonly string[])[];
  /** Scratch key maker (n = 0…groups): deleted by the script before it returns. */
  readonly scratch: (n: number) => string;
  /** Score range, inclusive. */
  readonly min?: number | undefined;
  readonly max?: number | undefined;
  readonly offset?: number | undefined;
  readonly limit: number;
  /** Start below this entry (newest first): entries with a lower score, or the same score and a lower member. */
  readonly after?: { readonly score: number; readonly member: string } | undefined;
}

export interface IndexPage {
  /** Members, newest first, with their scores. */
  readonly members: { readonly member: string; readonly score: number }[];
  /** How many entries match in the whole range (not only after the cursor). */
  readonly total: number;
}

export async function queryIndexes(redis: Redis, query: IndexQuery): Promise<IndexPage> {
  const { groups } = query;
  if (groups.length === 0) throw new Error('queryIndexes: at least one group');
  const keys = [...groups.flat(), ...groups.map((_g, n) => query.scratch(n)), query.scratch(groups.length)];
  const reply = (await runScript(redis, 'castellanIndexQuery', QUERY, keys, [
    query.min ?? '-inf',
    query.max ?? '+inf',
    Math.max(0, query.offset ?? 0),
    Math.max(1, query.limit),
    query.after !== undefined ? query.after.score : '',
    query.after !== undefined ? query.after.member : '',
    groups.length,
    ...groups.map((g) => g.length),
  ])) as [number, string[]];
  const flat = reply[1];
  const members: { member: string; score: number }[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) members.push({ member: flat[i] ?? '', score: Number(flat[i + 1]) });
  return { total: Number(reply[0]), members };
}

// KEYS: the index keys of every group, then one scratch key per group and one for the result.
// ARGV: 1 min score, 2 max score, 3 offset, 4 limit, 5 cursor score ('' = none), 6 cursor
// member, 7 number of groups, 8.. size of each group. AGGREGATE MAX keeps the time score that
// every index shares. Within one score Redis orders members by bytes (reverse, newest first), so
// the cursor skips the members of its own score that are not below it, then continues.
const QUERY = `
local groups = tonumber(ARGV[7])
local pos = 1
local sets = {}
local scratch = {}
local nkeys = 0
for g = 1, groups do nkeys = nkeys + tonumber(ARGV[7 + g]) end
for g = 1, groups do
  local size = tonumber(ARGV[7 + g])
  if size == 1 then
    table.insert(sets, KEYS[pos])
  else
    local dest = KEYS[nkeys + g]
    local args = {'ZUNIONSTORE', dest, size}
    for k = pos, pos + size - 1 do table.insert(args, KEYS[k]) end
    table.insert(args, 'AGGREGATE')
    table.insert(args, 'MAX')
    redis.call(unpack(args))
    table.insert(sets, dest)
    table.insert(scratch, dest)
  end
  pos = pos + size
end
local target = sets[1]
if #sets > 1 then
  target = KEYS[nkeys + groups + 1]
  local args = {'ZINTERSTORE', target, #sets}
  for _, key in ipairs(sets) do table.insert(args, key) end
  table.insert(args, 'AGGREGATE')
  table.insert(args, 'MAX')
  redis.call(unpack(args))
  table.insert(scratch, target)
end
local total = redis.call('ZCOUNT', target, ARGV[1], ARGV[2])
local top = ARGV[2]
local offset = tonumber(ARGV[3])
if ARGV[5] ~= '' then
  local cursor = tonumber(ARGV[5])
  local upper = tonumber(ARGV[2])
  if upper == nil or cursor <= upper then
    top = ARGV[5]
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', target, ARGV[5], ARGV[5])) do
      if m >= ARGV[6] then offset = offset + 1 end
    end
  end
end
local page = redis.call('ZREVRANGEBYSCORE', target, top, ARGV[1], 'WITHSCORES', 'LIMIT', offset, tonumber(ARGV[4]))
for _, key in ipairs(scratch) do redis.call('DEL', key) end
return {total, page}
`;
