// Inventory only: what Castellan believes exists, without touching any host.
import { z } from 'zod';
import { targetsOrAll } from './fields.js';
import { resolveHosts } from './planning.js';
import { defineTool } from './types.js';

export const listNodes = defineTool({
  name: 'list_nodes',
  title: 'List nodes',
  description:
    'List inventory hosts (all, or those matching a target expression) with their address, groups and labels. ' +
    'Reads the inventory only; no host is contacted. Mirrors `ansible-inventory --list`.',
  risk: 'read',
  idempotent: true,
  input: z.object({ targets: targetsOrAll }).strict(),
  output: z.object({
    nodes: z.array(
      z.object({
        name: z.string(),
        address: z.string(),
        port: z.number(),
        groups: z.array(z.string()),
        labels: z.record(z.string(), z.string()),
      }),
    ),
  }),
  answer(input, ctx) {
    const names = resolveHosts(ctx, input.targets);
    return {
      nodes: names.flatMap((name) => {
        const host = ctx.inventory.hosts.get(name);
        // `all` is implied for every host; listing it would be noise.
        return host
          ? [{ name, address: host.address, port: host.port, groups: host.groups.filter((g) => g !== 'all'), labels: { ...host.labels } }]
          : [];
      }),
    };
  },
});
