// What `tools/list` costs an AI client before any work: the bytes (and a token estimate) of the
// answer per Castellan role, with every toolset served and with a narrowed `mcp.toolsets`.
// A real Castellan server runtime (private redis-server), its MCP server, and the MCP SDK's own
// Client over an in-memory transport, as an assistant connected through it would see it.
// Writes bench/results/mcp-tools-list-latest.{md,json}.
//
//   npm run build && node dist/bench/mcp-tools-list.js
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { parseConfig, type Config } from '../config/load.js';
import { TOOLSETS, type Role, type Toolset } from '../config/vocabulary.js';
import { startRedis } from '../src/lab/redis.js';
import { InFlightCalls } from '../src/mcp/calls.js';
import { createMcpServer } from '../src/mcp/server.js';
import { mcpTools } from '../src/mcp/tools.js';
import { createRuntime } from '../src/runtime.js';

const RESULTS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');
const ROLES: readonly Role[] = ['viewer', 'operator', 'approver', 'admin'];
/** The selections measured: everything, and what a monitoring assistant needs. */
const SELECTIONS: ReadonlyArray<{ name: string; toolsets: readonly Toolset[] }> = [
  { name: 'all toolsets (default)', toolsets: TOOLSETS },
  { name: 'inventory, health, services', toolsets: ['inventory', 'health', 'services'] },
];

interface Row {
  readonly selection: string;
  readonly role: Role;
  readonly tools: number;
  readonly bytes: number;
  /** Rough: ~4 bytes of JSON per token. */
  readonly tokens: number;
  readonly largest: string;
}

async function measure(config: Config, selection: (typeof SELECTIONS)[number]): Promise<Row[]> {
  const runtime = await createRuntime({ ...config, mcp: { toolsets: selection.toolsets } }, { mode: 'server' });
  try {
    const rows: Row[] = [];
    for (const role of ROLES) {
      const identity = { subject: `bench-${role}`, displayName: role, groups: [`${role}s`], roles: [role] };
      const server = createMcpServer({ runtime, identity, tools: mcpTools(runtime.ctx.tools.list(), runtime.config.mcp.toolsets), calls: new InFlightCalls(), places: {} });
      const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
      await server.connect(serverSide);
      const client = new Client({ name: 'bench', version: '0' });
      await client.connect(clientSide);
      const { tools } = await client.listTools();
      const bytes = Buffer.byteLength(JSON.stringify({ tools }));
      const largest = [...tools].sort((a, b) => JSON.stringify(b).length - JSON.stringify(a).length)[0];
      rows.push({ selection: selection.name, role, tools: tools.length, bytes, tokens: Math.round(bytes / 4), largest: largest ? `${largest.name} (${JSON.stringify(largest).length} B)` : '-' });
      await client.close();
      await server.close();
    }
    return rows;
  } finally {
    await runtime.close();
  }
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-bench-mcp-'));
  const redis = await startRedis({ dir: path.join(dir, 'redis'), appendOnly: false });
  try {
    const inventory = path.join(dir, 'inventory.yaml');
    await writeFile(inventory, 'all:\n  hosts:\n' + Array.from({ length: 16 }, (_, i) => `    node${String(i + 1).padStart(2, '0')}: { ansible_host: 127.0.0.${i + 2} }\n`).join(''));
    await writeFile(path.join(dir, 'known_hosts'), '');
    const yaml = [
      `inventory: ${inventory}`,
      `known_hosts: ${path.join(dir, 'known_hosts')}`,
      `redis: { url: '${redis.url}', prefix: bench-mcp }`,
      'auth:',
      '  roles: { viewer: [viewers], operator: [operators], approver: [approvers], admin: [admins] }',
      'log: { level: warn }',
    ].join('\n');
    const config = await parseConfig(yaml, path.join(dir, 'castellan.yaml'));
    const rows: Row[] = [];
    for (const selection of SELECTIONS) rows.push(...(await measure(config, selection)));
    const md = [
      '# tools/list per role',
      '',
      `${new Date().toISOString()} · \`npm run build && node dist/bench/mcp-tools-list.js\` · the MCP SDK Client's tools/list against a real server runtime; bytes of the JSON result, tokens ≈ bytes / 4.`,
      '',
      '| mcp.toolsets | role | tools | bytes | ≈ tokens | largest tool |',
      '|---|---|---:|---:|---:|---|',
      ...rows.map((r) => `| ${r.selection} | ${r.role} | ${r.tools} | ${r.bytes.toLocaleString('en')} | ${r.tokens.toLocaleString('en')} | ${r.largest} |`),
      '',
    ].join('\n');
    await mkdir(RESULTS_DIR, { recursive: true });
    await writeFile(path.join(RESULTS_DIR, 'mcp-tools-list-latest.md'), md);
    await writeFile(path.join(RESULTS_DIR, 'mcp-tools-list-latest.json'), JSON.stringify(rows, null, 2) + '\n');
    process.stdout.write(md);
  } finally {
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
