// Inventory only: the groups an operator can target, with their sizes and nesting.
import { z } from 'zod';
import { defineTool } from './types.js';

export const listGroups = defineTool({
  name: 'list_groups',
  title: 'List groups',
  description:
    'List inventory groups with the number of hosts in each (through nested groups), their hosts and child groups. ' +
    'Reads the inventory only; no host is contacted. Mirrors `goldentooth list_groups`.',
  risk: 'read',
  idempotent: true,
  input: z.object({}).strict(),
  output: z.object({
    groups: z.array(z.object({ name: z.string(), host_count: z.number(), hosts: z.array(z.string()), children: z.array(z.string()) })),
  }),
  answer(_input, ctx) {
    return {
      groups: [...ctx.inventory.groups].map(([name, hosts]) => ({
        name,
        host_count: hosts.length,
        hosts: [...hosts],
        children: [...(ctx.inventory.children.get(name) ?? [])],
      })),
    };
  },
});
