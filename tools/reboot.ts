// Rolling reboot. The reboot is scheduled two seconds out with systemd-run so the SSH command
// returns cleanly (an immediate `reboot` kills the session and looks like a failure); then two
// ordinary gates on `ping` wait for the batch's hosts to go away and to answer again before
// the next batch starts.
import { z } from 'zod';
import { batchSize, duration, failureBudget, targets } from './fields.js';
import { ping } from './ping.js';
import { execStep, resolveHosts, rollingBatches } from './planning.js';
import { validatedOrThrow } from './registry.js';
import { gateStep } from './steps/index.js';
import { defineTool, type PlanContext, type PlanStep } from './types.js';

export const SCHEDULE_REBOOT = ['systemd-run', '--on-active=2', 'systemctl', 'reboot'] as const;

/**
 * Gates that follow a reboot of `hosts`: down within `downMs`, back within `upMs`. They poll
 * every `intervalMs` (default: 1s for "down", which can be brief, and 2s for "up").
 */
export function reachabilityGates(id: string, hosts: readonly string[], downMs: number, upMs: number, ctx: PlanContext, intervalMs?: number): PlanStep[] {
  const probe = { targets: hosts.join(','), timeout: '5s', connect_timeout: '3s' };
  return [
    gateStep({ id: `down-${id}`, check: ping, input: probe, until: 'unreachable', intervalMs: Math.min(intervalMs ?? 1000, 1000), timeoutMs: downMs }, ctx, validatedOrThrow),
    gateStep({ id: `up-${id}`, check: ping, input: probe, until: 'reachable', intervalMs: intervalMs ?? 2000, timeoutMs: upMs }, ctx, validatedOrThrow),
  ];
}

export const reboot = defineTool({
  name: 'reboot',
  title: 'Reboot hosts (rolling)',
  description:
    'Reboot hosts in rolling batches: each batch schedules `systemctl reboot` (as root, via systemd-run so the SSH ' +
    'call returns), waits for its hosts to go down and answer again, then the next batch starts. Stops once more ' +
    'than `failure_budget` hosts failed. Mirrors `systemctl reboot` with `ansible --forks`/serial.',
  risk: 'destructive',
  toolset: 'power',
  idempotent: false,
  input: z
    .object({
      targets,
      batch_size: batchSize.prefault(1).describe('Hosts rebooted at a time: a count like `1` or `25%`. Default 1.'),
      failure_budget: failureBudget.default(0).describe('Hosts allowed to fail (or not come back) before the roll stops. Default 0.'),
      down_timeout: duration({ minMs: 5000, maxMs: 30 * 60_000 })
        .prefault('2m')
        .describe('How long to wait for a host to go down after scheduling the reboot. Default 2m.'),
      up_timeout: duration({ minMs: 10_000, maxMs: 2 * 3_600_000 })
        .prefault('10m')
        .describe('How long to wait for a host to come back and answer. Default 10m.'),
    })
    .strict(),
  plan(input, ctx) {
    const hosts = resolveHosts(ctx, input.targets);
    const batches = rollingBatches(hosts, input.batch_size).map((batch, i) => ({
      steps: [
        execStep({ id: `reboot-${i + 1}`, hosts: batch, argv: SCHEDULE_REBOOT, asRoot: true, timeoutMs: ctx.defaults.commandTimeoutMs }),
        ...reachabilityGates(String(i + 1), batch, input.down_timeout, input.up_timeout, ctx),
      ],
    }));
    return { tool: 'reboot', hosts, batches, failureBudget: input.failure_budget };
  },
});
