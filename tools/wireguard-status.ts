// WireGuard interfaces and peers. `wg show all dump` prints private and preshared keys; a
// constant awk filter on the host masks them before they leave it, so they never reach the
// executor's output stream, logs or the ledger. The host's own clock is printed alongside so
// handshake ages are right even when the server's clock differs.
import { z } from 'zod';
import { duration, targetsOrAll, timeout } from './fields.js';
import { execStep, resolveHosts, singleBatchPlan, stepTimeout } from './planning.js';
import { OutputFormatError, hostReportSchema, reportHosts } from './reports.js';
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
});

export const wireguardStatus = defineTool({
  name: 'wireguard_status',
  title: 'WireGuard status',
  description:
    'Show WireGuard interfaces and peers on each host with endpoints, allowed IPs, transfer counters and the age ' +
    'of the latest handshake; peers with no handshake within `stale_after` (or never) are flagged stale. Private ' +
    'and preshared keys are masked on the host. Mirrors `wg show all dump` (as root).',
  risk: 'read',
  idempotent: true,
  input: z
    .object({
      targets: targetsOrAll,
      stale_after: staleAfter,
      timeout,
    })
    .strict(),
  output: hostReportSchema({
    interfaces: z.array(
      z.object({ name: z.string(), public_key: z.string(), listen_port: z.number().nullable(), peers: z.array(peerSchema) }),
    ),
    stale_peers: z.number(),
  }),
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
  summarize(input, results) {
    return reportHosts(results, 'wg', (stdout) => parseWireguardDump(stdout, input.stale_after));
  },
});
