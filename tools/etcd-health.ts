// etcd cluster health as its control plane sees it: `etcdctl endpoint status` and `endpoint
// health` (JSON) against every member, from one control-plane host. Endpoints and TLS files
// come from inventory vars of that host (etcd_endpoints, etcd_cacert, etcd_cert, etcd_key), so
// the plan shows exactly which members are asked. A member that does not answer, a member
// that reports unhealthy, members that disagree on the leader, or no leader at all fail the
// check; fewer healthy members than a majority is reported as no quorum. `etcdctl member list`
// adds the cluster's membership as the members see it (learners, members added but not yet
// started), which node expansion gates on (condition `member`).
import { z } from 'zod';
import { targets, timeout } from './fields.js';
import { execStep, resolveHosts, stepTimeout } from './planning.js';
import { OutputFormatError } from './reports.js';
import type { ConditionDefinition } from './steps/index.js';
import { bytesText, plural, type ResultViewDefinition } from './result-view.js';
import { defineTool, ToolInputError, type PlanContext, type StepResults } from './types.js';

export const ETCD_DEFAULT_ENDPOINT = 'https://127.0.0.1:2379';

export interface EtcdMember {
  endpoint: string;
  healthy: boolean;
  /** Hex member id, as `etcdctl member list -w table` shows it. */
  member_id: string | null;
  /** Hex id of the leader this member follows. */
  leader_id: string | null;
  is_leader: boolean;
  version: string | null;
  raft_term: number | null;
  raft_index: number | null;
  /** How far this member's applied index trails the highest raft index seen. */
  index_lag: number | null;
  db_size_bytes: number | null;
  /** Alarms and errors the member reports (NOSPACE, CORRUPT…). */
  errors: string[];
  error: string | null;
}

/** One entry of `etcdctl member list`: every member the cluster knows, started or not. */
export interface EtcdListedMember {
  /** Hex, as `etcdctl member list` prints it. */
  id: string;
  /** Empty until the member has started and joined. */
  name: string;
  peer_urls: string[];
  client_urls: string[];
  learner: boolean;
  started: boolean;
}

export interface EtcdHealth {
  control_plane: string;
  members: EtcdMember[];
  /** The membership from `member list` (null when it did not answer). */
  membership: EtcdListedMember[] | null;
  healthy_members: number;
  quorum: boolean;
  leader: string | null;
  split_leader: boolean;
  healthy: boolean;
  problems: string[];
}

const BIG_IDS = /"(cluster_id|member_id|leader|ID)":\s*(\d+)/g;

function parseJsonArray(stdout: string, what: string): Record<string, unknown>[] {
  const text = stdout.trim();
  if (text === '') return [];
  let doc: unknown;
  try {
    // Member ids are 64-bit: keep them exact as strings.
    doc = JSON.parse(text.replace(BIG_IDS, '"$1":"$2"'));
  } catch {
    throw new OutputFormatError(`etcdctl ${what} output is not JSON`);
  }
  if (!Array.isArray(doc)) throw new OutputFormatError(`etcdctl ${what} output is not a JSON list`);
  return doc.filter((e): e is Record<string, unknown> => typeof e === 'object' && e !== null);
}

/** `etcdctl member list -w json`; null when there is no answer to read. */
export function parseMemberList(stdout: string): EtcdListedMember[] | null {
  const text = stdout.trim();
  if (text === '') return null;
  let doc: unknown;
  try {
    doc = JSON.parse(text.replace(BIG_IDS, '"$1":"$2"'));
  } catch {
    throw new OutputFormatError('etcdctl member list output is not JSON');
  }
  const members = (doc as { members?: unknown }).members;
  if (!Array.isArray(members)) throw new OutputFormatError('etcdctl member list output has no members list');
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  return members.map((m: Record<string, unknown>) => {
    const name = typeof m.name === 'string' ? m.name : '';
    return { id: hex(m.ID) ?? '?', name, peer_urls: strings(m.peerURLs), client_urls: strings(m.clientURLs), learner: m.isLearner === true, started: name !== '' };
  });
}

const hex = (v: unknown): string | null => (typeof v === 'string' && /^\d+$/.test(v) ? BigInt(v).toString(16) : null);
const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);
const rec = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {});

/** Combine `endpoint status -w json` and `endpoint health -w json` (either may be partial). */
export function judgeEtcd(controlPlane: string, endpoints: readonly string[], statusOut: string, healthOut: string, stderr: string, memberListOut = ''): EtcdHealth {
  const statuses = new Map(parseJsonArray(statusOut, 'endpoint status').map((e) => [typeof e.Endpoint === 'string' ? e.Endpoint : '', rec(e.Status)]));
  const health = new Map(parseJsonArray(healthOut, 'endpoint health').map((e) => [typeof e.endpoint === 'string' ? e.endpoint : '', e]));
  const maxIndex = Math.max(0, ...[...statuses.values()].map((s) => num(s.raftIndex) ?? 0));
  const members: EtcdMember[] = endpoints.map((endpoint) => {
    const s = statuses.get(endpoint);
    const h = health.get(endpoint);
    const header = rec(s?.header);
    const memberId = hex(header.member_id);
    const leaderId = hex(s?.leader);
    const errors = Array.isArray(s?.errors) ? (s.errors as unknown[]).map(String) : [];
    const healthError = typeof h?.error === 'string' ? h.error : null;
    const missing = !s ? (stderr.split('\n').find((l) => l.includes(endpoint))?.trim() ?? 'did not answer endpoint status') : null;
    return {
      endpoint,
      healthy: h?.health === true && s !== undefined && errors.length === 0,
      member_id: memberId,
      leader_id: leaderId,
      is_leader: memberId !== null && memberId === leaderId,
      version: typeof s?.version === 'string' ? s.version : null,
      raft_term: num(s?.raftTerm),
      raft_index: num(s?.raftIndex),
      index_lag: s ? maxIndex - (num(s.raftAppliedIndex) ?? num(s.raftIndex) ?? 0) : null,
      db_size_bytes: num(s?.dbSize),
      errors,
      error: healthError ?? missing,
    };
  });
  const healthy = members.filter((m) => m.healthy).length;
  const leaders = [...new Set(members.map((m) => m.leader_id).filter((l): l is string => l !== null && l !== '0'))];
  const leaderMember = members.find((m) => m.is_leader);
  const quorum = healthy > members.length / 2;
  const problems: string[] = [];
  for (const m of members) if (!m.healthy) problems.push(`${m.endpoint} unhealthy${m.error ? `: ${m.error}` : ''}${m.errors.length ? ` (${m.errors.join(', ')})` : ''}`);
  if (leaders.length > 1) problems.push(`members disagree on the leader: ${leaders.join(', ')}`);
  if (leaders.length === 0 || !leaderMember) problems.push('no member reports itself leader');
  if (!quorum) problems.push(`no quorum: ${healthy} of ${members.length} members healthy, ${Math.floor(members.length / 2) + 1} needed`);
  return {
    control_plane: controlPlane,
    members,
    membership: parseMemberList(memberListOut),
    healthy_members: healthy,
    quorum,
    leader: leaderMember?.endpoint ?? null,
    split_leader: leaders.length > 1,
    healthy: problems.length === 0,
    problems,
  };
}

function varList(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(String);
  if (typeof value === 'string') return value.split(',').map((s) => s.trim()).filter(Boolean);
  return [];
}

const ENDPOINT = /^https?:\/\/[A-Za-z0-9.\-[\]:]+$/;
const PATH = /^\/[^\0\n]*$/;

/** etcdctl's connection flags for a control-plane host, from its inventory vars. */
export function etcdFlags(ctx: PlanContext, host: string): { endpoints: string[]; flags: string[] } {
  const vars = ctx.inventory.hosts.get(host)?.vars ?? {};
  const endpoints = varList(vars.etcd_endpoints);
  const list = endpoints.length ? endpoints : [ETCD_DEFAULT_ENDPOINT];
  const bad = list.find((e) => !ENDPOINT.test(e));
  if (bad !== undefined) throw new ToolInputError('targets', `inventory var etcd_endpoints of ${host} has '${bad}', not an http(s)://host:port URL`);
  const flags = [`--endpoints=${list.join(',')}`, '--write-out=json', '--dial-timeout=3s', '--command-timeout=5s'];
  for (const [key, flag] of [['etcd_cacert', 'cacert'], ['etcd_cert', 'cert'], ['etcd_key', 'key']] as const) {
    const value = vars[key];
    if (value === undefined) continue;
    if (typeof value !== 'string' || !PATH.test(value)) throw new ToolInputError('targets', `inventory var ${key} of ${host} must be an absolute path`);
    flags.push(`--${flag}=${value}`);
  }
  return { endpoints: list, flags };
}

const memberSchema = z.object({
  endpoint: z.string(),
  healthy: z.boolean(),
  member_id: z.string().nullable(),
  leader_id: z.string().nullable(),
  is_leader: z.boolean(),
  version: z.string().nullable(),
  raft_term: z.number().nullable(),
  raft_index: z.number().nullable(),
  index_lag: z.number().nullable(),
  db_size_bytes: z.number().nullable(),
  errors: z.array(z.string()),
  error: z.string().nullable(),
});

const listedSchema = z.object({
  id: z.string(),
  name: z.string(),
  peer_urls: z.array(z.string()),
  client_urls: z.array(z.string()),
  learner: z.boolean(),
  started: z.boolean(),
});

const conditions: Readonly<Record<string, ConditionDefinition>> = {
  healthy: {
    describe: () => 'etcd is healthy (every member answers, one leader)',
    judge(observation) {
      const data = rec(observation.data) as Partial<EtcdHealth> & { error?: string };
      if (!Array.isArray(data.members)) return { state: 'waiting', observed: data.error ?? 'no answer from the control plane' };
      return { state: data.healthy ? 'holds' : 'waiting', observed: data.healthy ? `${data.members.length} members healthy, leader ${data.leader ?? '?'}` : (data.problems ?? []).join('; ') };
    },
  },
  // A control-plane node has joined etcd when the cluster lists it under its name (a member
  // only has one once it started), as a voting member (a learner is not yet), and the
  // members the control plane asks are healthy.
  member: {
    describe: (args) => `${String(args.name ?? '?')} is a started, voting etcd member and etcd is healthy`,
    judge(observation, _subject, args) {
      const data = rec(observation.data) as Partial<EtcdHealth> & { error?: string };
      if (!Array.isArray(data.members)) return { state: 'waiting', observed: data.error ?? 'no answer from the control plane' };
      const list = data.membership ?? [];
      const me = list.find((m) => m.name === args.name);
      const unstarted = list.filter((m) => !m.started).length;
      const seen = `${list.length} member(s)${unstarted ? `, ${unstarted} not started` : ''}`;
      if (!me) return { state: 'waiting', observed: `${String(args.name)} not a started member yet (${seen})` };
      if (me.learner) return { state: 'waiting', observed: `${me.name} is a learner, not yet promoted to a voting member (${seen})` };
      if (!data.healthy) return { state: 'waiting', observed: `${me.name} is a voting member, but: ${(data.problems ?? []).join('; ')}` };
      return { state: 'holds', observed: `${me.name} is a voting member (id ${me.id}) of ${list.length}; ${data.members.length} asked members healthy` };
    },
  },
};

const etcdOutput = z
    .object({
      members: z.array(memberSchema),
      membership: z.array(listedSchema).nullable(),
      healthy_members: z.number(),
      quorum: z.boolean(),
      leader: z.string().nullable(),
      split_leader: z.boolean(),
      healthy: z.boolean(),
      problems: z.array(z.string()),
    })
    .partial()
    .extend({ control_plane: z.string(), error: z.string().optional() });
type EtcdData = z.output<typeof etcdOutput>;
type EtcdMemberRow = z.output<typeof memberSchema>;

/** `etcdctl endpoint status -w table`, readable: member · health · leader · version · index lag · db size. */
const etcdView: ResultViewDefinition<EtcdData, EtcdMemberRow> = {
  key: 'member',
  columns: [
    { label: 'health', cell: (m) => (m.healthy ? 'healthy' : `unhealthy${m.error ? `: ${m.error}` : ''}`), tone: (m) => (m.healthy ? 'ok' : 'bad') },
    { label: 'leader', cell: (m) => (m.is_leader ? 'leader' : '') },
    { label: 'version', cell: (m) => m.version ?? '' },
    { label: 'index lag', cell: (m) => (m.index_lag === null ? '' : String(m.index_lag)), align: 'right', tone: (m) => (m.index_lag !== null && m.index_lag > 1000 ? 'warn' : undefined) },
    { label: 'db size', cell: (m) => (m.db_size_bytes === null ? '' : bytesText(m.db_size_bytes)), align: 'right' },
    { label: 'alarms', cell: (m) => m.errors.join('; '), tone: (m) => (m.errors.length ? 'bad' : undefined) },
  ],
  rows: (data) =>
    data.error !== undefined && data.members === undefined
      ? [{ name: data.control_plane, problem: { status: 'failed', text: data.error } }]
      : (data.members ?? []).map((m) => ({ name: m.endpoint, row: m })),
  summary(data) {
    if (data.members === undefined) return data.error ?? `no answer from etcdctl on ${data.control_plane}`;
    const verdict = data.healthy ? 'healthy' : data.quorum === false ? 'NO QUORUM' : 'unhealthy';
    const leader = data.leader ? `, leader ${data.leader}` : '';
    const problems = data.problems?.length ? `: ${data.problems.join('; ')}` : '';
    return `${verdict}: ${data.healthy_members ?? 0} of ${plural(data.members.length, 'member')} healthy${leader}${problems}`;
  },
};

export const etcdHealth = defineTool({
  name: 'etcd_health',
  title: 'etcd cluster health',
  description:
    'Check the etcd cluster from one control-plane host: every member (etcd_endpoints inventory var, TLS files from ' +
    'etcd_cacert/etcd_cert/etcd_key) for health, leader, raft term and index lag, DB size and alarms. One unhealthy ' +
    'member, a split or missing leader fails the check; fewer than a majority healthy is reported as no quorum. ' +
    'Also lists the membership (learners, members not yet started). Gates wait on its conditions `healthy` and ' +
    '`member` (name: a started voting member). Mirrors `etcdctl endpoint status|health -w json` and `etcdctl member list -w json`.',
  risk: 'read',
  toolset: 'kubernetes',
  idempotent: true,
  input: z
    .object({
      control_plane: targets.default('k8s_control_plane').describe('Control-plane hosts; etcdctl runs on the first one. Default `k8s_control_plane`.'),
      as_root: z.boolean().default(false).describe('Run etcdctl through `sudo -n` (to read the etcd client key).'),
      timeout,
    })
    .strict(),
  // Without an answer from etcdctl only control_plane and error are present.
  output: etcdOutput,
  view: etcdView,
  plan(input, ctx) {
    const [host = ''] = resolveHosts(ctx, input.control_plane, 'control_plane');
    const { flags } = etcdFlags(ctx, host);
    const timeoutMs = stepTimeout(ctx, input.timeout);
    // Two batches, not two steps: etcdctl exits 1 when a member is down, and the health read
    // must still run after a status read that "failed" that way.
    return {
      tool: 'etcd_health',
      hosts: [host],
      batches: [
        ...(['status', 'health'] as const).map((verb) => ({
          steps: [execStep({ id: verb, hosts: [host], argv: ['etcdctl', ...flags, 'endpoint', verb], asRoot: input.as_root, timeoutMs })],
        })),
        { steps: [execStep({ id: 'members', hosts: [host], argv: ['etcdctl', ...flags, 'member', 'list'], asRoot: input.as_root, timeoutMs })] },
      ],
      failureBudget: 3,
    };
  },
  summarize(input, results: StepResults, ctx) {
    const [host = ''] = resolveHosts(ctx, input.control_plane, 'control_plane');
    const status = results.get('status')?.get(host);
    const health = results.get('health')?.get(host);
    // etcdctl exits 1 when any member is down, yet still prints what the others said.
    const answered = (r: typeof status): boolean => r !== undefined && (r.status === 'ok' || (r.status === 'failed' && r.exitCode !== null));
    if (!answered(status) || !answered(health)) {
      const r = answered(status) ? health : status;
      return { control_plane: host, error: `etcdctl did not run on ${host}: ${r?.error ?? r?.status ?? 'no result'}` };
    }
    const members = results.get('members')?.get(host);
    return judgeEtcd(host, etcdFlags(ctx, host).endpoints, status?.stdout ?? '', health?.stdout ?? '', `${status?.stderr ?? ''}\n${health?.stderr ?? ''}`, members?.status === 'ok' ? members.stdout : '');
  },
  conditions,
});
