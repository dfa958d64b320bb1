// The WireGuard mesh as the inventory says it should be, checked on every node and every
// plane. Each node runs `wg show <if> dump` for each plane (keys masked on the host by the
// same awk filter as wireguard_status, whose parser reads the result) and, when asked, pings
// its peers' plane addresses over that plane, all pings at once and each bounded. Castellan
// then compares what it saw with the inventory:
//
//   host vars   wireguard: { wg0: { address: 10.77.0.1/16, public_key: …, endpoint: …,
//                                   allowed_ips: [...], peers: [...], port: 51820 }, wg1: … }
//               wireguard_endpoint_host: 192.168.1.11   (the underlay address; endpoint = it:port)
//   group vars  wireguard_planes: { wg0: { port: 51820 }, … }   (port per plane, optional)
//
// A node's expected peers on a plane are every other inventory host with that plane (or the
// plane's `peers` list, for hub-and-spoke planes). Peers are named by the inventory host that
// owns their public key; no key leaves the node (the host script sends sha256 digests of public
// keys, and an unknown one is shown as 12 digits of it). The answer is a node × peer matrix per plane plus one line per
// problem, so gates (`healthy`, `node_meshed`) and people read the same thing.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { duration, targetsOrAll, timeout } from './fields.js';
import type { HostResult } from './host-result.js';
import { execStep, resolveHosts, stepTimeout } from './planning.js';
import { humanSeconds } from './reports.js';
import type { ConditionDefinition, Observation, Verdict } from './steps/index.js';
import type { ResultViewDefinition, ViewRow } from './result-view.js';
import { defineTool, ToolInputError, type PlanContext, type StepResults } from './types.js';
import { parseWireguardDump, staleAfter, WG_MASK_AWK, type WireguardPeer } from './wireguard-status.js';

// --- inventory ---------------------------------------------------------------------------

const IFACE = /^[A-Za-z0-9_=+.-]{1,15}$/;
const KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
const ADDRESS = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]+)(\/\d{1,3})?$/;
const ENDPOINT = /^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

const planeVars = z
  .object({
    address: z.string().regex(ADDRESS, { error: 'expected an IP address like 10.77.0.1 or 10.77.0.1/16' }).optional(),
    public_key: z.string().regex(KEY, { error: 'expected a base64 WireGuard public key (44 characters)' }).optional(),
    endpoint: z.string().regex(ENDPOINT, { error: 'expected host:port' }).optional(),
    allowed_ips: z.array(z.string().regex(ADDRESS, { error: 'expected CIDRs like 10.77.0.1/32' })).optional(),
    peers: z.array(z.string()).optional(),
    port: z.number().int().min(1).max(65535).optional(),
  })
  .strict();
type PlaneVars = z.output<typeof planeVars>;

const hostVars = z.record(z.string().regex(IFACE, { error: 'plane names are interface names (wg0…)' }), planeVars.nullable());
const planesVar = z.record(z.string().regex(IFACE), z.object({ port: z.number().int().min(1).max(65535).optional() }).loose().nullable());

interface MeshLayout {
  /** plane → host → its vars, for every inventory host that has the plane. */
  readonly planes: ReadonlyMap<string, ReadonlyMap<string, PlaneVars>>;
  /** plane → its port from wireguard_planes (per host, since group vars are per host). */
  readonly planePort: (host: string, plane: string) => number | undefined;
  readonly endpointHost: (host: string) => string | undefined;
}

function issueText(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue ? `${issue.path.join('.') || '(value)'}: ${issue.message}` : 'invalid';
}

/** Read every host's `wireguard` var; a malformed one is a clear error naming host and var. */
export function meshLayout(ctx: PlanContext): MeshLayout {
  const planes = new Map<string, Map<string, PlaneVars>>();
  const ports = new Map<string, Record<string, { port?: number | undefined } | null>>();
  for (const [name, host] of ctx.inventory.hosts) {
    const raw = host.vars.wireguard;
    if (raw !== undefined && raw !== null) {
      const parsed = hostVars.safeParse(raw);
      if (!parsed.success) throw new ToolInputError('targets', `inventory var wireguard of ${name}: ${issueText(parsed.error)}`);
      for (const [plane, vars] of Object.entries(parsed.data)) {
        if (!planes.has(plane)) planes.set(plane, new Map());
        planes.get(plane)?.set(name, vars ?? {});
      }
    }
    const rawPlanes = host.vars.wireguard_planes;
    if (rawPlanes !== undefined && rawPlanes !== null) {
      const parsed = planesVar.safeParse(rawPlanes);
      if (!parsed.success) throw new ToolInputError('targets', `inventory var wireguard_planes of ${name}: ${issueText(parsed.error)}`);
      ports.set(name, parsed.data);
    }
  }
  for (const [plane, hosts] of planes) {
    for (const [name, vars] of hosts) {
      const unknown = (vars.peers ?? []).find((p) => !hosts.has(p));
      if (unknown !== undefined) throw new ToolInputError('targets', `inventory var wireguard.${plane}.peers of ${name} names ${unknown}, which has no ${plane}`);
    }
  }
  return {
    planes,
    planePort: (host, plane) => planes.get(plane)?.get(host)?.port ?? ports.get(host)?.[plane]?.port ?? undefined,
    endpointHost: (host) => {
      const value = ctx.inventory.hosts.get(host)?.vars.wireguard_endpoint_host;
      return typeof value === 'string' && value !== '' ? value : undefined;
    },
  };
}

const bare = (address: string): string => address.split('/')[0] ?? address;
const hostOnly = (address: string): string => `${bare(address)}/${bare(address).includes(':') ? 128 : 32}`;

function expectedPeers(layout: MeshLayout, plane: string, host: string): string[] {
  const members = layout.planes.get(plane);
  const mine = members?.get(host);
  if (!members || !mine) return [];
  if (mine.peers) return mine.peers.filter((p) => p !== host);
  // Hub-and-spoke: a spoke that lists only the hub is not expected on the other spokes.
  return [...members.keys()].filter((p) => p !== host && (members.get(p)?.peers ?? [host]).includes(host));
}

function expectedEndpoint(layout: MeshLayout, plane: string, host: string): string | null {
  const vars = layout.planes.get(plane)?.get(host);
  if (vars?.endpoint) return vars.endpoint;
  const underlay = layout.endpointHost(host);
  const port = layout.planePort(host, plane);
  if (underlay === undefined || port === undefined) return null;
  return `${underlay.includes(':') ? `[${underlay}]` : underlay}:${port}`;
}

function expectedAllowedIps(layout: MeshLayout, plane: string, host: string): string[] | null {
  const vars = layout.planes.get(plane)?.get(host);
  if (vars?.allowed_ips) return vars.allowed_ips;
  return vars?.address ? [hostOnly(vars.address)] : null;
}

// --- the host script ---------------------------------------------------------------------

/**
 * argv after the script: the ping wait in seconds, the planes, `--`, then (plane, address)
 * pairs to ping. One script for every node: a node skips addresses that are its own. Each
 * dump is masked on the host (private and preshared keys hidden by wireguard_status's filter,
 * then every public key replaced by its sha256, which is all Castellan needs to name the
 * peer), so no key reaches the job's output. A plane whose `wg show` fails becomes a `down`
 * line with wg's first error line. Pings run together, each bounded by -c 1 -W wait.
 */
export const MESH_SCRIPT = [
  'now=$(date +%s) || exit 1',
  'echo "now $now"',
  "T=$(printf '\\t')",
  'fp() { printf %s "$1" | sha256sum | cut -d " " -f 1; }',
  'wait_s=$1; shift',
  'while [ "$#" -gt 0 ] && [ "$1" != -- ]; do',
  '  if dump=$(wg show "$1" dump 2>&1); then',
  `    printf '%s\\n' "$dump" | awk -v i="$1" 'BEGIN { FS = OFS = "\\t" } NF > 0 { print i, $0 }' | awk '${WG_MASK_AWK}' |`,
  '    while IFS="$T" read -r w i a b c d e f g h; do',
  '      if [ -z "$e" ]; then',
  `        printf '%s\\t%s\\t%s\\tsha256:%s\\t%s\\t%s\\n' "$w" "$i" "$a" "$(fp "$b")" "$c" "$d"`,
  '      else',
  `        printf '%s\\t%s\\tsha256:%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' "$w" "$i" "$(fp "$a")" "$b" "$c" "$d" "$e" "$f" "$g" "$h"`,
  '      fi',
  '    done',
  '  else',
  `    printf 'down\\t%s\\t%s\\n' "$1" "$(printf '%s\\n' "$dump" | head -n 1)"`,
  '  fi',
  '  shift',
  'done',
  '[ "$#" -gt 0 ] && shift',
  'while [ "$#" -ge 2 ]; do',
  '  if [ -z "$(ip -o addr show to "$2" 2>/dev/null)" ]; then',
  '    (',
  '      if out=$(ping -n -q -c 1 -W "$wait_s" -I "$1" "$2" 2>&1); then',
  `        printf 'ping\\t%s\\t%s\\tok\\t%s\\n' "$1" "$2" "$(printf '%s\\n' "$out" | sed -n 's|^rtt [^=]*= [0-9.]*/\\([0-9.]*\\)/.*|\\1|p')"`,
  '      else',
  `        printf 'ping\\t%s\\t%s\\tfail\\t\\n' "$1" "$2"`,
  '      fi',
  '    ) &',
  '  fi',
  '  shift 2',
  'done',
  'wait',
].join('\n');

interface HostReading {
  readonly peers: ReadonlyMap<string, { listen_port: number | null; public_key: string; peers: WireguardPeer[] }>;
  readonly down: ReadonlyMap<string, string>;
  readonly pings: ReadonlyMap<string, { ok: boolean; rtt_ms: number | null }>;
}

function readHost(stdout: string, staleAfterMs: number): HostReading {
  const { interfaces } = parseWireguardDump(stdout, staleAfterMs);
  const down = new Map<string, string>();
  const pings = new Map<string, { ok: boolean; rtt_ms: number | null }>();
  for (const line of stdout.split('\n')) {
    const f = line.split('\t');
    if (f[0] === 'down' && f.length >= 2) down.set(f[1] ?? '', f.slice(2).join(' ').trim() || 'wg show failed');
    if (f[0] === 'ping' && f.length >= 4) pings.set(`${f[1]}\t${f[2]}`, { ok: f[3] === 'ok', rtt_ms: f[4] ? Number(f[4]) : null });
  }
  return { peers: new Map(interfaces.map((i) => [i.name, i])), down, pings };
}

// --- the answer --------------------------------------------------------------------------

export const MESH_CELLS = ['ok', 'stale', 'mismatch', 'unreachable', 'missing', 'down', 'no_answer'] as const;
export type MeshCell = (typeof MESH_CELLS)[number];

export interface MeshPeer {
  /** The inventory host owning the peer's key on this plane; null when no host does. */
  peer: string | null;
  /** Only for keys no inventory host owns: `sha256:` and 12 hex digits of the key, never the key. */
  key_fingerprint: string | null;
  expected: boolean;
  present: boolean;
  state: MeshCell | 'unexpected';
  endpoint: string | null;
  expected_endpoint: string | null;
  allowed_ips: string[];
  expected_allowed_ips: string[] | null;
  latest_handshake: string | null;
  handshake_age_seconds: number | null;
  stale: boolean;
  transfer_rx_bytes: number;
  transfer_tx_bytes: number;
  /** Ping over the plane: null when not asked (or no address to ping). */
  reachable: boolean | null;
  rtt_ms: number | null;
  problems: string[];
}

export interface MeshPlane {
  plane: string;
  up: boolean;
  error: string | null;
  listen_port: number | null;
  expected_port: number | null;
  /** The interface's public key against the inventory's (null: the inventory has none). */
  key_matches_inventory: boolean | null;
  peers: MeshPeer[];
}

export interface MeshNode {
  host: string;
  status: HostResult['status'];
  error?: string;
  planes: MeshPlane[];
}

export interface WireguardMesh {
  stale_after_seconds: number;
  reachability: boolean;
  nodes: MeshNode[];
  /** Per plane, row node → column peer → cell, for every expected pair of a checked node. */
  planes: { plane: string; matrix: Record<string, Record<string, MeshCell>> }[];
  problems: string[];
  healthy: boolean;
}

/** What the host script puts in place of a public key: `sha256:` and the key's hex digest. */
export const keyDigest = (key: string): string => `sha256:${createHash('sha256').update(key).digest('hex')}`;
/** How an unknown key is shown: the digest's first 12 hex digits. */
const shortDigest = (digest: string): string => digest.slice(0, 'sha256:'.length + 12);
const sameSet = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && [...a].sort().join(',') === [...b].sort().join(',');

function ageWords(p: WireguardPeer): string {
  return p.handshake_age_seconds === null ? 'never shook hands' : `last handshake ${humanSeconds(p.handshake_age_seconds)} ago`;
}

function judgeNode(layout: MeshLayout, host: string, planes: readonly string[], reading: HostReading, reachability: boolean, problems: string[]): MeshPlane[] {
  const out: MeshPlane[] = [];
  for (const plane of planes) {
    const members = layout.planes.get(plane);
    const mine = members?.get(host);
    if (!members || !mine) continue;
    const at = `${host} ${plane}`;
    const expectedPort = layout.planePort(host, plane) ?? null;
    const iface = reading.peers.get(plane);
    if (!iface) {
      const error = reading.down.get(plane) ?? 'no such interface';
      problems.push(`${at}: interface down (${error})`);
      out.push({ plane, up: false, error, listen_port: null, expected_port: expectedPort, key_matches_inventory: null, peers: [] });
      continue;
    }
    const keyMatches = mine.public_key === undefined ? null : keyDigest(mine.public_key) === iface.public_key;
    if (keyMatches === false) problems.push(`${at}: the interface's public key is not the one in the inventory`);
    if (expectedPort !== null && iface.listen_port !== expectedPort) problems.push(`${at}: listens on ${iface.listen_port ?? 'no port'}, the plane's port is ${expectedPort}`);
    const owners = new Map<string, string>();
    for (const [name, vars] of members) if (vars.public_key) owners.set(keyDigest(vars.public_key), name);
    const expected = expectedPeers(layout, plane, host);
    const seen = new Set<string>();
    const peers: MeshPeer[] = [];
    for (const p of iface.peers) {
      const owner = owners.get(p.public_key) ?? null;
      const isExpected = owner !== null && expected.includes(owner);
      if (owner !== null) seen.add(owner);
      const wantEndpoint = owner ? expectedEndpoint(layout, plane, owner) : null;
      const expectedIps = owner ? expectedAllowedIps(layout, plane, owner) : null;
      const address = owner ? layout.planes.get(plane)?.get(owner)?.address : undefined;
      const ping = address !== undefined ? reading.pings.get(`${plane}\t${bare(address)}`) : undefined;
      const own: string[] = [];
      const who = owner ?? `unknown key ${shortDigest(p.public_key)}`;
      let state: MeshPeer['state'] = 'ok';
      if (!isExpected) {
        state = 'unexpected';
        own.push(`${at}: unexpected peer ${who}${p.endpoint ? ` (endpoint ${p.endpoint})` : ''}${p.allowed_ips.length ? ` allowed ${p.allowed_ips.join(',')}` : ''}`);
      } else {
        const mismatch: string[] = [];
        if (wantEndpoint !== null && p.endpoint !== wantEndpoint) mismatch.push(`${at}: peer ${owner} endpoint ${p.endpoint ?? '(none)'}, the inventory says ${wantEndpoint}`);
        if (expectedIps !== null && !sameSet(p.allowed_ips, expectedIps)) mismatch.push(`${at}: peer ${owner} allowed-ips ${p.allowed_ips.join(',') || '(none)'}, the inventory says ${expectedIps.join(',')}`);
        if (reachability && ping && !ping.ok) state = 'unreachable';
        else if (p.stale) state = 'stale';
        else if (mismatch.length) state = 'mismatch';
        if (reachability && ping && !ping.ok) own.push(`${at}: peer ${owner} unreachable at ${bare(address ?? '')}`);
        if (p.stale) own.push(`${at}: peer ${owner} stale (${ageWords(p)})`);
        own.push(...mismatch);
      }
      problems.push(...own);
      peers.push({
        peer: owner,
        key_fingerprint: owner ? null : shortDigest(p.public_key),
        expected: isExpected,
        present: true,
        state,
        endpoint: p.endpoint,
        expected_endpoint: wantEndpoint,
        allowed_ips: p.allowed_ips,
        expected_allowed_ips: expectedIps,
        latest_handshake: p.latest_handshake,
        handshake_age_seconds: p.handshake_age_seconds,
        stale: p.stale,
        transfer_rx_bytes: p.transfer_rx_bytes,
        transfer_tx_bytes: p.transfer_tx_bytes,
        reachable: reachability && ping ? ping.ok : null,
        rtt_ms: ping?.rtt_ms ?? null,
        problems: own,
      });
    }
    for (const missing of expected.filter((p) => !seen.has(p))) {
      const text = `${at}: peer ${missing} missing`;
      problems.push(text);
      peers.push({
        peer: missing,
        key_fingerprint: null,
        expected: true,
        present: false,
        state: 'missing',
        endpoint: null,
        expected_endpoint: expectedEndpoint(layout, plane, missing),
        allowed_ips: [],
        expected_allowed_ips: expectedAllowedIps(layout, plane, missing),
        latest_handshake: null,
        handshake_age_seconds: null,
        stale: true,
        transfer_rx_bytes: 0,
        transfer_tx_bytes: 0,
        reachable: null,
        rtt_ms: null,
        problems: [text],
      });
    }
    // Inventory order (the matrix's), strangers last: wg lists peers in no useful order.
    const order = [...members.keys()];
    const rank = (p: MeshPeer): number => (p.peer === null ? order.length : order.indexOf(p.peer));
    peers.sort((a, b) => rank(a) - rank(b));
    out.push({ plane, up: true, error: null, listen_port: iface.listen_port, expected_port: expectedPort, key_matches_inventory: keyMatches, peers });
  }
  return out;
}

/** Compare each node's reading with the inventory. `results` are the mesh step's, per host. */
export function judgeMesh(layout: MeshLayout, hosts: readonly string[], results: ReadonlyMap<string, HostResult>, options: { staleAfterMs: number; reachability: boolean }): WireguardMesh {
  const problems: string[] = [];
  for (const [plane, members] of layout.planes) {
    const byKey = new Map<string, string[]>();
    for (const [name, vars] of members) if (vars.public_key) byKey.set(vars.public_key, [...(byKey.get(vars.public_key) ?? []), name]);
    for (const names of byKey.values()) if (names.length > 1) problems.push(`${plane}: ${names.join(', ')} share one public key in the inventory`);
  }
  const nodes: MeshNode[] = [];
  const matrices = new Map<string, Record<string, Record<string, MeshCell>>>();
  for (const host of hosts) {
    const planes = [...layout.planes.keys()].filter((p) => layout.planes.get(p)?.has(host));
    const result = results.get(host);
    let reading: HostReading | undefined;
    let error: string | undefined;
    if (!result || result.status !== 'ok') error = result ? `${result.status}${result.error ? `: ${result.error}` : ''}` : 'no result';
    else {
      try {
        reading = readHost(result.stdout, options.staleAfterMs);
        if (result.truncated) error = 'output was truncated';
      } catch (e) {
        error = `unexpected output: ${e instanceof Error ? e.message : String(e)}`;
      }
    }
    const node: MeshNode = { host, status: result?.status ?? 'skipped', planes: [] };
    if (!reading) {
      node.error = error ?? 'no answer';
      problems.push(`${host}: no answer (${node.error})`);
    } else {
      if (error) node.error = error;
      node.planes = judgeNode(layout, host, planes, reading, options.reachability, problems);
    }
    nodes.push(node);
    for (const plane of planes) {
      const row: Record<string, MeshCell> = {};
      const seen = node.planes.find((p) => p.plane === plane);
      for (const peer of expectedPeers(layout, plane, host)) {
        if (!reading) row[peer] = 'no_answer';
        else if (!seen?.up) row[peer] = 'down';
        else row[peer] = (seen.peers.find((p) => p.peer === peer && p.expected)?.state ?? 'missing') as MeshCell;
      }
      if (!matrices.has(plane)) matrices.set(plane, {});
      const matrix = matrices.get(plane);
      if (matrix) matrix[host] = row;
    }
  }
  return {
    stale_after_seconds: Math.round(options.staleAfterMs / 1000),
    reachability: options.reachability,
    nodes,
    planes: [...matrices].map(([plane, matrix]) => ({ plane, matrix })),
    problems,
    healthy: problems.length === 0,
  };
}

// --- conditions (gates) ------------------------------------------------------------------

const rec = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {});

function meshOf(observation: Observation): WireguardMesh | undefined {
  const data = rec(observation.data);
  return Array.isArray(data.nodes) && Array.isArray(data.planes) ? (data as unknown as WireguardMesh) : undefined;
}

/** The cells of `node`'s row and column on every plane that are not ok. */
export function nodeTrouble(mesh: WireguardMesh, node: string): { cells: number; bad: string[] } {
  const bad: string[] = [];
  let cells = 0;
  for (const { plane, matrix } of mesh.planes) {
    for (const [row, peers] of Object.entries(matrix)) {
      for (const [col, cell] of Object.entries(peers)) {
        if (row !== node && col !== node) continue;
        cells++;
        if (cell !== 'ok') bad.push(`${plane} ${row}→${col} ${cell.replaceAll('_', ' ')}`);
      }
    }
  }
  return { cells, bad };
}

const listed = (items: readonly string[], max = 4): string => `${items.slice(0, max).join('; ')}${items.length > max ? `; and ${items.length - max} more` : ''}`;

const conditions: Readonly<Record<string, ConditionDefinition>> = {
  healthy: {
    describe: () => 'the WireGuard mesh is healthy on every plane (no missing, stale, unreachable or mismatched peer)',
    judge(observation): Verdict {
      const mesh = meshOf(observation);
      if (!mesh) return { state: 'waiting', observed: 'no mesh data yet' };
      return mesh.healthy ? { state: 'holds', observed: `${mesh.nodes.length} nodes, ${mesh.planes.length} planes healthy` } : { state: 'waiting', observed: listed(mesh.problems) };
    },
  },
  node_meshed: {
    describe: (args, subject) => `${typeof args.node === 'string' ? args.node : (subject ?? 'the node')} has fresh handshakes with every peer on every plane, both ways`,
    judge(observation, subject, args): Verdict {
      const node = typeof args.node === 'string' ? args.node : subject;
      const mesh = meshOf(observation);
      if (!mesh) return { state: 'waiting', observed: 'no mesh data yet' };
      const { cells, bad } = nodeTrouble(mesh, node);
      if (cells === 0) return { state: 'waiting', observed: `${node} is in no plane of the checked nodes` };
      return bad.length ? { state: 'waiting', observed: listed(bad) } : { state: 'holds', observed: `${node}: ${cells} peer links ok` };
    },
  },
};

// --- how the result reads --------------------------------------------------------------------

interface MeshViewData {
  readonly nodes: readonly { host: string; status: string; error?: string | undefined; planes: readonly { plane: string; up: boolean; error: string | null; peers: readonly { peer: string | null; state: string; problems: readonly string[] }[] }[] }[];
  readonly problems: readonly string[];
  readonly healthy: boolean;
}
type MeshPlaneRow = MeshViewData['nodes'][number]['planes'][number];

/** One row per node and plane: `node[01-16] (16) wg0 up  15 of 15 ok`; a node's bad links named. */
const meshView: ResultViewDefinition<MeshViewData, MeshPlaneRow> = {
  columns: [
    { label: 'plane', cell: (p) => p.plane },
    { label: 'link', cell: (p) => (p.up ? 'up' : `down${p.error ? `: ${p.error}` : ''}`), tone: (p) => (p.up ? 'ok' : 'bad') },
    {
      label: 'peers',
      cell: (p) => `${p.peers.filter((x) => x.state === 'ok').length} of ${p.peers.filter((x) => x.state !== 'unexpected').length} ok`,
      tone: (p) => (p.peers.every((x) => x.state === 'ok') ? undefined : 'bad'),
    },
    {
      label: 'trouble',
      cell: (p) =>
        p.peers
          .filter((x) => x.state !== 'ok')
          .map((x) => `${x.peer ?? 'unknown peer'} ${x.state.replaceAll('_', ' ')}`)
          .join(', '),
    },
  ],
  rows: (data) =>
    data.nodes.flatMap((n): ViewRow<MeshPlaneRow>[] =>
      n.status !== 'ok' && n.planes.length === 0 ? [{ host: n.host, problem: { status: n.status, text: n.error ?? n.status } }] : n.planes.map((row) => ({ host: n.host, row })),
    ),
  summary: (data) => (data.healthy ? `mesh healthy: ${data.nodes.length} nodes` : `${data.problems.length} problem${data.problems.length === 1 ? '' : 's'}: ${data.problems.slice(0, 3).join('; ')}${data.problems.length > 3 ? '; …' : ''}`),
};

// --- the tool ----------------------------------------------------------------------------

const cell = z.enum(MESH_CELLS);
const peerSchema = z.object({
  peer: z.string().nullable(),
  key_fingerprint: z.string().nullable(),
  expected: z.boolean(),
  present: z.boolean(),
  state: z.enum([...MESH_CELLS, 'unexpected']),
  endpoint: z.string().nullable(),
  expected_endpoint: z.string().nullable(),
  allowed_ips: z.array(z.string()),
  expected_allowed_ips: z.array(z.string()).nullable(),
  latest_handshake: z.string().nullable(),
  handshake_age_seconds: z.number().nullable(),
  stale: z.boolean(),
  transfer_rx_bytes: z.number(),
  transfer_tx_bytes: z.number(),
  reachable: z.boolean().nullable(),
  rtt_ms: z.number().nullable(),
  problems: z.array(z.string()),
});

const planeName = z.string().regex(IFACE, { error: 'expected an interface name like wg0' });

function meshHosts(ctx: PlanContext, targets: string, planes: readonly string[] | undefined): { hosts: string[]; layout: MeshLayout; planes: string[] } {
  const layout = meshLayout(ctx);
  const chosen = planes?.length ? [...planes] : [...layout.planes.keys()];
  const unknown = chosen.find((p) => !layout.planes.has(p));
  if (unknown !== undefined) throw new ToolInputError('planes', `no inventory host has plane '${unknown}' in its wireguard var${layout.planes.size ? ` (planes: ${[...layout.planes.keys()].join(', ')})` : ''}`);
  const hosts = resolveHosts(ctx, targets).filter((h) => chosen.some((p) => layout.planes.get(p)?.has(h)));
  if (hosts.length === 0) throw new ToolInputError('targets', `none of '${targets}' has a WireGuard plane in its inventory vars (wireguard: { wg0: { address, public_key, … } })`);
  // Only the chosen planes count: a layout limited to them.
  const limited: MeshLayout = { ...layout, planes: new Map(chosen.map((p) => [p, layout.planes.get(p) ?? new Map()])) };
  return { hosts, layout: limited, planes: chosen };
}

export const wireguardMesh = defineTool({
  name: 'wireguard_mesh',
  title: 'WireGuard mesh check',
  description:
    'Check every WireGuard plane on every node against the inventory (host var `wireguard: {wg0: {address, public_key, ' +
    'endpoint, allowed_ips, peers, port}}`, `wireguard_endpoint_host`, group var `wireguard_planes`): peers missing or ' +
    'unexpected (named by inventory host; keys never shown), handshake age against `stale_after`, endpoint and allowed-IPs ' +
    'mismatches, transfer counters, and with `reachability` a ping of every peer over each plane. Answers a node × peer ' +
    'matrix per plane. Mirrors `wg show <if> dump` and `ping -I <if>` (as root).',
  risk: 'read',
  toolset: 'wireguard',
  idempotent: true,
  input: z
    .object({
      targets: targetsOrAll,
      planes: z.array(planeName).max(16).optional().describe('Planes (interface names) to check; default every plane in the inventory.'),
      stale_after: staleAfter,
      reachability: z.boolean().default(false).describe("Also ping every expected peer's plane address over the plane (all at once, each bounded by ping_wait)."),
      ping_wait: duration({ minMs: 1000, maxMs: 10_000 }).prefault('2s').describe('How long each ping waits for its answer (1s–10s). Default 2s.'),
      timeout,
    })
    .strict(),
  output: z.object({
    stale_after_seconds: z.number(),
    reachability: z.boolean(),
    nodes: z.array(
      z.object({
        host: z.string(),
        status: z.string(),
        error: z.string().optional(),
        planes: z.array(
          z.object({
            plane: z.string(),
            up: z.boolean(),
            error: z.string().nullable(),
            listen_port: z.number().nullable(),
            expected_port: z.number().nullable(),
            key_matches_inventory: z.boolean().nullable(),
            peers: z.array(peerSchema),
          }),
        ),
      }),
    ),
    planes: z.array(z.object({ plane: z.string(), matrix: z.record(z.string(), z.record(z.string(), cell)) })),
    problems: z.array(z.string()),
    healthy: z.boolean(),
  }),
  view: meshView,
  plan(input, ctx) {
    const { hosts, layout, planes } = meshHosts(ctx, input.targets, input.planes);
    const pings = input.reachability
      ? planes.flatMap((plane) => [...(layout.planes.get(plane) ?? new Map<string, PlaneVars>())].flatMap(([, vars]) => (vars.address ? [plane, bare(vars.address)] : [])))
      : [];
    const wait = String(Math.ceil(input.ping_wait / 1000));
    return {
      tool: 'wireguard_mesh',
      hosts,
      batches: [
        {
          steps: [
            execStep({
              id: 'mesh',
              hosts,
              argv: ['/bin/sh', '-c', MESH_SCRIPT, 'wireguard_mesh', wait, ...planes, '--', ...pings],
              asRoot: true,
              timeoutMs: stepTimeout(ctx, input.timeout),
              description: `sudo wg show <plane> dump for ${planes.join(', ')} (keys masked on the host)${input.reachability ? `; ping -I <plane> each peer (wait ${wait}s)` : ''}`,
            }),
          ],
        },
      ],
      failureBudget: hosts.length,
    };
  },
  summarize(input, results: StepResults, ctx) {
    const { hosts, layout } = meshHosts(ctx, input.targets, input.planes);
    return judgeMesh(layout, hosts, results.get('mesh') ?? new Map(), { staleAfterMs: input.stale_after, reachability: input.reachability });
  },
  conditions,
});
