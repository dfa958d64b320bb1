// Make a boot environment the one the next boot uses (the rollback half of a failed upgrade).
import { z } from 'zod';
import { targets, timeout } from './fields.js';
import { activateCommand, beName, beSteps } from './boot-env.js';
import { resolveHosts, singleBatchPlan, stepTimeout } from './planning.js';
import { defineTool } from './types.js';

export const bootEnvironmentActivate = defineTool({
  name: 'boot_environment_activate',
  title: 'Activate a boot environment',
  description:
    'Make a ZFS boot environment the one each host boots next (it takes effect at the next reboot, which this tool ' +
    'does not do). Mirrors `kbe activate NAME` / `zectl activate NAME` / `bectl activate NAME` / ' +
    '`zpool set bootfs=rpool/ROOT/NAME rpool`.',
  risk: 'destructive',
  toolset: 'boot',
  idempotent: true,
  input: z.object({ targets, name: beName, timeout }).strict(),
  plan(input, ctx) {
    const hosts = resolveHosts(ctx, input.targets);
    return singleBatchPlan('boot_environment_activate', hosts, beSteps(ctx, hosts, 'activate', stepTimeout(ctx, input.timeout), (d) => activateCommand(d, input.name)));
  },
});
