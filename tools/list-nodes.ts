// Inventory only: what Castellan believes exists, without touching any host.
import { z } from 'zod';
import { targetsOrAll } from './fields.js';
import { resolveHosts } from './planning.js';
import { defineTool } from './types.js';
import { plural, type ResultViewDefinition } from './result-view.js';

const nodesOutput = z.object({
    nodes: z.array(
      z.object({
        name: z.string(),
        address: z.string(),
        port: z.number(),
        groups: z.array(z.string()),
        labels: z.record(z.string(), z.string()),
      }),
    ),
  });
type NodesData = z.output<typeof nodesOutput>;
type NodeEntry = NodesData['nodes'][number];

/** A table of the inventory: node · address · groups · labels. */
const nodesView: ResultViewDefinition<NodesData, NodeEntry> = {
  key: 'node',
  columns: [
    { label: 'address', cell: (n) => (n.port === 22 ? n.address : `${n.address}:${n.port}`) },
    { label: 'groups', cell: (n) => n.groups.join(',') },
    { label: 'labels', cell: (n) => Object.entries(n.labels).map(([k, v]) => `${k}=${v}`).join(' ') },
  ],
  // Every node is its own row: the list is what was asked for, folding would hide names.
  rows: (data) => data.nodes.map((n) => ({ name: n.name, row: n })),
  summary(data) {
    const groups = new Set(data.nodes.flatMap((n) => n.groups));
    return `${plural(data.nodes.length, 'node')} in ${plural(groups.size, 'group')}`;
  },
};

export const listNodes = defineTool({
  name: 'list_nodes',
  title: 'List nodes',
  description:
    'List inventory hosts (all, or those matching a target expression) with their address, groups and labels. ' +
    'Reads the inventory only; no host is contacted. Mirrors `ansible-inventory --list`.',
  risk: 'read',
  toolset: 'inventory',
  idempotent: true,
  input: z.object({ targets: targetsOrAll }).strict(),
  output: nodesOutput,
  view: nodesView,
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
