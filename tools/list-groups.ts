// Inventory only: the groups an operator can target, with their sizes and nesting.
import { z } from 'zod';
import { defineTool } from './types.js';
import { foldNodeSet } from '../config/nodeset.js';
import { plural, type ResultViewDefinition } from './result-view.js';

const groupsOutput = z.object({
    groups: z.array(z.object({ name: z.string(), host_count: z.number(), hosts: z.array(z.string()), children: z.array(z.string()) })),
  });
type GroupsData = z.output<typeof groupsOutput>;
type GroupEntry = GroupsData['groups'][number];

/** A table of the groups: group · size · hosts as a node set · child groups. */
const groupsView: ResultViewDefinition<GroupsData, GroupEntry> = {
  key: 'group',
  columns: [
    { label: 'hosts', cell: (g) => String(g.host_count), align: 'right' },
    { label: 'members', cell: (g) => (g.hosts.length ? foldNodeSet(g.hosts) : '') },
    { label: 'children', cell: (g) => g.children.join(',') },
  ],
  rows: (data) => data.groups.map((g) => ({ name: g.name, row: g })),
  summary: (data) => plural(data.groups.length, 'group'),
};

export const listGroups = defineTool({
  name: 'list_groups',
  title: 'List groups',
  description:
    'List inventory groups with the number of hosts in each (through nested groups), their hosts and child groups. ' +
    'Reads the inventory only; no host is contacted. Mirrors `goldentooth list_groups`.',
  risk: 'read',
  toolset: 'inventory',
  idempotent: true,
  input: z.object({}).strict(),
  output: groupsOutput,
  view: groupsView,
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
