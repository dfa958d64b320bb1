// Reachability: connect and run a trivial command. Latency is the whole round trip of that
// exec (connect included when the connection was not pooled), which is what an operator feels.
import { z } from 'zod';
import { HOST_STATUSES } from '../src/ssh/types.js';
import type { HostResult } from '../src/ssh/types.js';
import { targetsOrAll, timeout } from './fields.js';
import { execStep, resolveHosts, singleBatchPlan, stepTimeout } from './planning.js';
import { defineTool } from './types.js';

export const ping = defineTool({
  name: 'ping',
  title: 'Ping hosts',
  description:
    'Check that hosts are reachable over SSH and measure round-trip latency by running `true` on each. ' +
    'Mirrors `ansible TARGETS -m ping`.',
  risk: 'read',
  idempotent: true,
  input: z.object({ targets: targetsOrAll, timeout }).strict(),
  output: z.object({
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
  }),
  plan(input, ctx) {
    const hosts = resolveHosts(ctx, input.targets);
    const step = execStep({ id: 'ping', hosts, argv: ['true'], asRoot: false, timeoutMs: stepTimeout(ctx, input.timeout) });
    return singleBatchPlan('ping', hosts, [{ ...step, description: 'ping (run `true`)' }]);
  },
  summarize(_input, results) {
    const step: ReadonlyMap<string, HostResult> = results.get('ping') ?? new Map<string, HostResult>();
    return {
      hosts: [...step.values()].map((r) => ({
        host: r.host,
        status: r.status,
        // Reachable means we got a shell, even if `true` somehow failed.
        reachable: r.status === 'ok' || r.status === 'failed',
        latency_ms: r.durationMs,
        connect_ms: r.connectMs,
        ...(r.status === 'ok' ? {} : { error: r.error ?? r.status }),
      })),
    };
  },
});
