// Create a boot environment: a clone of the running root, to come back to if a change breaks the node.
import { z } from 'zod';
import { targets, timeout } from './fields.js';
import { beName, beSteps, createCommand } from './boot-env.js';
import { resolveHosts, singleBatchPlan, stepTimeout } from './planning.js';
import { defineTool } from './types.js';

export const bootEnvironmentCreate = defineTool({
  name: 'boot_environment_create',
  title: 'Create a boot environment',
  description:
    'Create a ZFS boot environment on each host from the running one (a snapshot and clone of the root), with the ' +
    'tool the inventory names (kbe, zectl, bectl, or zfs snapshot + zfs clone). Nothing changes for the running ' +
    'system or the next boot. Mirrors `kbe create NAME` / `zectl create NAME` / `bectl create NAME`.',
  risk: 'change',
  toolset: 'boot',
  idempotent: false,
  input: z.object({ targets, name: beName, timeout }).strict(),
  plan(input, ctx) {
    const hosts = resolveHosts(ctx, input.targets);
    return singleBatchPlan('boot_environment_create', hosts, beSteps(ctx, hosts, 'create', stepTimeout(ctx, input.timeout), (d) => createCommand(d, input.name)));
  },
});
