// Power off. Scheduled like reboot so the SSH call returns cleanly; nothing to wait for after.
import { z } from 'zod';
import { targets } from './fields.js';
import { execStep, resolveHosts, singleBatchPlan } from './planning.js';
import { defineTool } from './types.js';

export const SCHEDULE_POWEROFF = ['systemd-run', '--on-active=2', 'systemctl', 'poweroff'] as const;

export const shutdown = defineTool({
  name: 'shutdown',
  title: 'Shut down hosts',
  description:
    'Power hosts off (as root), scheduled two seconds out with systemd-run so the SSH call returns. They stay off ' +
    'until someone powers them on. Mirrors `systemctl poweroff`.',
  risk: 'destructive',
  toolset: 'power',
  idempotent: true,
  input: z.object({ targets }).strict(),
  plan(input, ctx) {
    const hosts = resolveHosts(ctx, input.targets);
    return singleBatchPlan('shutdown', hosts, [
      execStep({ id: 'poweroff', hosts, argv: SCHEDULE_POWEROFF, asRoot: true, timeoutMs: ctx.defaults.commandTimeoutMs }),
    ]);
  },
});
