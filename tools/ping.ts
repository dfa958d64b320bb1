// Reachability: connect and run a trivial command. Latency is the whole round trip of that
// exec (connect included when the connection was not pooled), which is what an operator feels.
// Its conditions make it the check of reachability gates (a reboot waits for `unreachable`,
// then `reachable`).
import { z } from 'zod';
import { HOST_STATUSES } from './host-result.js';
import type { HostResult, HostStatus } from './host-result.js';
import { duration, targetsOrAll, timeout } from './fields.js';
import { execStep, resolveHosts, singleBatchPlan, stepTimeout } from './planning.js';
import type { ConditionDefinition, Observation } from './steps/index.js';
import { defineTool } from './types.js';
import { foldNodeSet } from '../config/nodeset.js';
import { msText, percentile, type ResultViewDefinition } from './result-view.js';

/** Reachable means we got a shell, even if `true` somehow failed. */
const answered = (status: HostStatus): boolean => status === 'ok' || status === 'failed';

function pingOf(observation: Observation, host: string): HostResult | undefined {
  return observation.results.get('ping')?.get(host);
}

const seen = (r: HostResult | undefined): string => (r ? (answered(r.status) ? 'answers over SSH' : `${r.status}${r.error ? ` (${r.error})` : ''}`) : 'not checked');

const reachability: Readonly<Record<string, ConditionDefinition>> = {
  reachable: {
    describe: (_a, subject) => `${subject ?? 'each host'} answers over SSH`,
    judge(observation, host) {
      const r = pingOf(observation, host);
      // A changed host key will not fix itself by waiting: refuse at once.
      if (r?.status === 'host_key_rejected') return { state: 'failed', observed: seen(r) };
      return { state: r && answered(r.status) ? 'holds' : 'waiting', observed: seen(r) };
    },
  },
  unreachable: {
    describe: (_a, subject) => `${subject ?? 'each host'} stops answering over SSH`,
    judge(observation, host) {
      const r = pingOf(observation, host);
      return { state: r && (r.status === 'unreachable' || r.status === 'timed_out') ? 'holds' : 'waiting', observed: seen(r) };
    },
  },
};

const pingOutput = z.object({
  hosts: z.array(
    z.object({
      host: z.string(),
      status: z.enum(HOST_STATUSES),
      reachable: z.boolean(),
      latency_ms: z.number(),
      connect_ms: z.number(),
      error: z.string().optional(),
    }),
  ),
});
type PingHost = z.output<typeof pingOutput>['hosts'][number];

/** `node[01-05] (5) ok  p50 12 ms  max 31 ms`: alike hosts fold; latency is summed up, not compared. */
const pingView: ResultViewDefinition<z.output<typeof pingOutput>, PingHost> = {
  header: false,
  columns: [
    { label: 'status', cell: (h) => (h.reachable ? 'ok' : h.status.replaceAll('_', ' ')), tone: (h) => (h.reachable ? 'ok' : 'bad') },
    { label: 'latency', measure: (h) => (h.reachable ? h.latency_ms : undefined), format: msText, align: 'right' },
    { label: 'error', cell: (h) => (h.reachable ? '' : (h.error ?? '')) },
  ],
  rows: (data) => data.hosts.map((h) => ({ host: h.host, row: h })),
  summary(data) {
    const up = data.hosts.filter((h) => h.reachable);
    const down = data.hosts.filter((h) => !h.reachable).map((h) => h.host);
    const latencies = up.map((h) => h.latency_ms);
    const p50 = percentile(latencies, 50);
    const max = percentile(latencies, 100);
    const timing = p50 !== undefined && max !== undefined ? `; p50 ${msText(p50)}, max ${msText(max)}` : '';
    return `${up.length} of ${data.hosts.length} reachable${down.length ? ` (${foldNodeSet(down)} ${down.length === 1 ? 'is' : 'are'} not)` : ''}${timing}`;
  },
};

export const ping = defineTool({
  name: 'ping',
  title: 'Ping hosts',
  description:
    'Check that hosts are reachable over SSH and measure round-trip latency by running `true` on each. ' +
    'Mirrors `ansible TARGETS -m ping`.',
  risk: 'read',
  toolset: 'health',
  idempotent: true,
  input: z
    .object({
      targets: targetsOrAll,
      timeout,
      connect_timeout: duration({ minMs: 500, maxMs: 120_000 })
        .optional()
        .describe('How long to wait for the SSH connection, e.g. `3s`. Defaults to the configured connect timeout.'),
    })
    .strict(),
  output: pingOutput,
  view: pingView,
  plan(input, ctx) {
    const hosts = resolveHosts(ctx, input.targets);
    const step = execStep({ id: 'ping', hosts, argv: ['true'], asRoot: false, timeoutMs: stepTimeout(ctx, input.timeout) });
    const action = input.connect_timeout !== undefined ? { ...step.action, connectTimeoutMs: input.connect_timeout } : step.action;
    return singleBatchPlan('ping', hosts, [{ ...step, action, description: 'ping (run `true`)' }]);
  },
  summarize(_input, results) {
    const step: ReadonlyMap<string, HostResult> = results.get('ping') ?? new Map<string, HostResult>();
    return {
      hosts: [...step.values()].map((r) => ({
        host: r.host,
        status: r.status,
        reachable: answered(r.status),
        latency_ms: r.durationMs,
        connect_ms: r.connectMs,
        ...(r.status === 'ok' ? {} : { error: r.error ?? r.status }),
      })),
    };
  },
  conditions: reachability,
});
