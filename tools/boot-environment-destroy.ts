// Destroy a boot environment (the running one is refused by the tools themselves).
import { z } from 'zod';
import { targets, timeout } from './fields.js';
import { beName, beSteps, destroyCommand } from './boot-env.js';
import { resolveHosts, singleBatchPlan, stepTimeout } from './planning.js';
import { defineTool } from './types.js';

export const bootEnvironmentDestroy = defineTool({
  name: 'boot_environment_destroy',
  title: 'Destroy a boot environment',
  description:
    'Destroy a ZFS boot environment on each host; its data is gone and it can no longer be rolled back to. The ' +
    'running environment cannot be destroyed. Mirrors `kbe delete NAME` / `zectl destroy NAME` / ' +
    '`bectl destroy NAME` / `zfs destroy rpool/ROOT/NAME`.',
  risk: 'destructive',
  toolset: 'boot',
  idempotent: false,
  input: z.object({ targets, name: beName, timeout }).strict(),
  plan(input, ctx) {
    const hosts = resolveHosts(ctx, input.targets);
    return singleBatchPlan('boot_environment_destroy', hosts, beSteps(ctx, hosts, 'destroy', stepTimeout(ctx, input.timeout), (d) => destroyCommand(d, input.name)));
  },
});
