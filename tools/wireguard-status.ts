// WireGuard interfaces and peers. `wg show all dump` prints private and preshared keys; a
// constant awk filter on the host masks them before they leave it, so they never reach the
// executor's output stream, logs or the ledger. The host's own clock is printed alongside so
// handshake ages are right even when the server's clock differs.
import { z } from 'zod';
import { duration, targetsOrAll, timeout } from './fields.js';
import { execStep, resolveHosts, singleBatchPlan, stepTimeout } from './planning.js';
import { OutputFormatError, hostReportSchema, reportHosts } from './reports.js';
import type { Inventory } from '../config/types.js';
import { ageText, answered, notAll, plural, reportRows, type ResultViewDefinition } from './result-view.js';
import { defineTool } from './types.js';

/**
 * awk program over `wg show all dump` lines (interface lines 5 fields, peer lines 9): masks the
 * private and preshared keys and prefixes each line with `wg`. wireguard_mesh feeds it
 * `wg show <if> dump` with the interface name prepended, which is the same layout.
 */
export const WG_MASK_AWK = `BEGIN { FS = OFS = "\\t" } NF == 5 { $2 = "(hidden)" } NF == 9 && $3 != "(none)" { $3 = "(hidden)" } NF > 0 { print "wg", $0 }`;

export const WG_SCRIPT = [
  'now=$(date +%s) || exit 1',
  'dump=$(wg show all dump) || exit $?',
  'echo "now $now"',
  `printf '%s\\n' "$dump" | awk '${WG_MASK_AWK}'`,
].join('\n');

/** How old a latest handshake may be before its peer counts as stale (WireGuard re-keys every 2 minutes). */
export const staleAfter = duration({ minMs: 1000, maxMs: 7 * 24 * 3_600_000 })
  .prefault('180s')
  .describe('A peer whose latest handshake is older than this (or that never shook hands) is stale. Default 180s.');

export interface WireguardPeer {
  public_key: string;
  endpoint: string | null;
  allowed_ips: string[];
  /** ISO time of the latest handshake, null when there never was one. */
  latest_handshake: string | null;
  handshake_age_seconds: number | null;
  transfer_rx_bytes: number;
  transfer_tx_bytes: number;
  persistent_keepalive_seconds: number | null;
  /** No handshake within `stale_after`, or never. */
  stale: boolean;
}

export interface WireguardInterface {
  name: string;
  public_key: string;
  listen_port: number | null;
  peers: WireguardPeer[];
}

const orNull = (value: string | undefined): string | null => (value === undefined || value === '(none)' || value === '' ? null : value);

/** Parse the masked dump (lines `now <epoch>` and `wg\t<dump fields>`). */
export function parseWireguardDump(stdout: string, staleAfterMs: number): { interfaces: WireguardInterface[]; stale_peers: number } {
  let now: number | undefined;
  const interfaces = new Map<string, WireguardInterface>();
  for (const line of stdout.split('\n')) {
    if (line.startsWith('now ')) {
      now = Number(line.slice(4));
      continue;
    }
    if (!line.startsWith('wg\t')) continue;
    const fields = line.split('\t').slice(1);
    if (fields.length === 5) {
      const [name = '', , publicKey = '', port] = fields;
      interfaces.set(name, { name, public_key: publicKey, listen_port: Number(port) || null, peers: [] });
    } else if (fields.length === 9) {
      if (now === undefined || !Number.isFinite(now)) throw new OutputFormatError('missing host clock line');
      const [name = '', publicKey = '', , endpoint, allowedIps, handshake, rx, tx, keepalive] = fields;
      const iface = interfaces.get(name);
      if (!iface) throw new OutputFormatError(`peer of unknown interface '${name}'`);
      const handshakeAt = Number(handshake);
      const age = handshakeAt > 0 ? Math.max(0, now - handshakeAt) : null;
      iface.peers.push({
        public_key: publicKey,
        endpoint: orNull(endpoint),
        allowed_ips: (orNull(allowedIps) ?? '').split(',').filter((ip) => ip !== ''),
        latest_handshake: handshakeAt > 0 ? new Date(handshakeAt * 1000).toISOString() : null,
        handshake_age_seconds: age,
        transfer_rx_bytes: Number(rx) || 0,
        transfer_tx_bytes: Number(tx) || 0,
        persistent_keepalive_seconds: keepalive === 'off' ? null : Number(keepalive) || null,
        stale: age === null || age * 1000 > staleAfterMs,
      });
    } else {
      throw new OutputFormatError(`unexpected wg dump line with ${fields.length} fields`);
    }
  }
  if (now === undefined) throw new OutputFormatError('missing host clock line');
  const list = [...interfaces.values()];
  return { interfaces: list, stale_peers: list.reduce((n, i) => n + i.peers.filter((p) => p.stale).length, 0) };
}

const peerSchema = z.object({
  public_key: z.string(),
  endpoint: z.string().nullable(),
  allowed_ips: z.array(z.string()),
  latest_handshake: z.string().nullable(),
  handshake_age_seconds: z.number().nullable(),
  transfer_rx_bytes: z.number(),
  transfer_tx_bytes: z.number(),
  persistent_keepalive_seconds: z.number().nullable(),
  stale: z.boolean(),
  /** The inventory host this peer is, when its endpoint or address is known there. */
  name: z.string().optional(),
});

const wireguardOutput = hostReportSchema({
    interfaces: z.array(
      z.object({ name: z.string(), public_key: z.string(), listen_port: z.number().nullable(), peers: z.array(peerSchema) }),
    ),
    stale_peers: z.number(),
  });
type WireguardData = z.output<typeof wireguardOutput>;
interface PeerRow {
  interface: string;
  peer: WireguardPeer & { name?: string | undefined };
}

const IP_ONLY = /^(\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f:]+)$/i;

/**
 * Inventory host by address: its SSH address and any WireGuard address in its vars (a var whose
 * name mentions wg or wireguard holding an address or a list of them, with or without a prefix).
 */
export function peerNames(inventory: Inventory): ReadonlyMap<string, string> {
  const names = new Map<string, string>();
  const add = (value: unknown, host: string): void => {
    if (typeof value === 'string') {
      const ip = value.replace(/\/\d+$/, '');
      if (IP_ONLY.test(ip) && !names.has(ip)) names.set(ip, host);
    } else if (Array.isArray(value)) for (const v of value) add(v, host);
    else if (value !== null && typeof value === 'object') for (const v of Object.values(value)) add(v, host);
  };
  for (const host of inventory.hosts.values()) {
    add(host.address, host.name);
    for (const [key, value] of Object.entries(host.vars)) if (/wg|wireguard/i.test(key)) add(value, host.name);
  }
  return names;
}

function withName(peer: WireguardPeer, names: ReadonlyMap<string, string>): WireguardPeer & { name?: string } {
  const endpointHost = peer.endpoint?.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  const single = peer.allowed_ips.filter((ip) => /\/(32|128)$/.test(ip)).map((ip) => ip.replace(/\/\d+$/, ''));
  const name = [...single, ...(endpointHost ? [endpointHost] : [])].map((ip) => names.get(ip)).find((n) => n !== undefined);
  return name !== undefined ? { ...peer, name } : peer;
}

/** interface · peer (inventory name where known) · endpoint · handshake age · stale. */
const wireguardView: ResultViewDefinition<WireguardData, PeerRow> = {
  columns: [
    { label: 'interface', cell: (r) => r.interface },
    { label: 'peer', cell: (r) => r.peer.name ?? `${r.peer.public_key.slice(0, 8)}…` },
    { label: 'endpoint', cell: (r) => r.peer.endpoint ?? '' },
    { label: 'handshake', cell: (r) => (r.peer.handshake_age_seconds === null ? 'never' : `${ageText(r.peer.handshake_age_seconds)} ago`), align: 'right' },
    { label: 'stale', cell: (r) => (r.peer.stale ? 'STALE' : ''), tone: (r) => (r.peer.stale ? 'bad' : undefined) },
  ],
  rows: (data) => reportRows(data.hosts, (h) => h.interfaces?.flatMap((i) => i.peers.map((peer) => ({ interface: i.name, peer })))),
  summary(data) {
    const up = answered(data.hosts, (h) => h.interfaces !== undefined);
    if (up.length === 0) return `no host answered (${data.hosts.length} asked)`;
    const peers = up.flatMap((h) => (h.interfaces ?? []).flatMap((i) => i.peers.map((p) => ({ host: h.host, i: i.name, p }))));
    const stale = peers.filter((x) => x.p.stale);
    const shown = stale.slice(0, 3).map((x) => `${x.host} ${x.i} → ${x.p.name ?? `${x.p.public_key.slice(0, 8)}…`}`);
    return `${notAll(up.length, data.hosts.length)}${plural(peers.length, 'peer')} on ${plural(up.length, 'host')}; ${stale.length ? `${stale.length} stale: ${shown.join(', ')}${stale.length > 3 ? ', …' : ''}` : 'none stale'}`;
  },
};

export const wireguardStatus = defineTool({
  name: 'wireguard_status',
  title: 'WireGuard status',
  description:
    'Show WireGuard interfaces and peers on each host with endpoints, allowed IPs, transfer counters and the age ' +
    'of the latest handshake; peers with no handshake within `stale_after` (or never) are flagged stale. Private ' +
    'and preshared keys are masked on the host. Mirrors `wg show all dump` (as root).',
  risk: 'read',
  toolset: 'wireguard',
  idempotent: true,
  input: z
    .object({
      targets: targetsOrAll,
      stale_after: staleAfter,
      timeout,
    })
    .strict(),
  output: wireguardOutput,
  view: wireguardView,
  plan(input, ctx) {
    const hosts = resolveHosts(ctx, input.targets);
    return singleBatchPlan('wireguard_status', hosts, [
      execStep({
        id: 'wg',
        hosts,
        argv: ['/bin/sh', '-c', WG_SCRIPT],
        asRoot: true,
        timeoutMs: stepTimeout(ctx, input.timeout),
        description: 'sudo wg show all dump (keys masked on the host)',
      }),
    ]);
  },
  summarize(input, results, ctx) {
    const names = peerNames(ctx.inventory);
    return reportHosts(results, 'wg', (stdout) => {
      const parsed = parseWireguardDump(stdout, input.stale_after);
      return { ...parsed, interfaces: parsed.interfaces.map((i) => ({ ...i, peers: i.peers.map((p) => withName(p, names)) })) };
    });
  },
});
