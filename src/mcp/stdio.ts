// `castellan mcp --stdio`: the same tools for a local MCP client that starts Castellan as a
// subprocess (Claude Code, Claude Desktop, the MCP Inspector).
//
// Identity: there is no token on stdio, so every call runs as `auth.local_identity` from
// castellan.yaml (default subject `local-admin`, with the roles its `groups` map to), with
// origin `mcp`. Whoever can start this process is trusted as that identity, exactly as with
// the local CLI; give it a narrower identity (e.g. groups mapping to operator only) when an AI
// client drives it. The policy still applies: approvals are never accepted through MCP, so a
// risky call waits for a person (CLI, HTTP API or Slack) whatever the local identity is.
//
// Jobs run on a worker: start one in the same process (runtime 'all' + startWorker) or keep
// `castellan up` / `castellan worker` running. Logs go to stderr; stdout carries only MCP.
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { Readable, Writable } from 'node:stream';
import type { Runtime } from '../runtime.js';
import { InFlightCalls } from './calls.js';
import { createMcpServer } from './server.js';
import { mcpTools } from './tools.js';

export interface StdioOptions {
  /** Defaults: process.stdin / process.stdout. */
  readonly input?: Readable;
  readonly output?: Writable;
}

export interface StdioHandle {
  /** Resolves when the client closes the connection (stdin ends) or close() is called. */
  readonly closed: Promise<void>;
  close(): Promise<void>;
}

export async function runStdio(runtime: Runtime, options: StdioOptions = {}): Promise<StdioHandle> {
  const identity = runtime.localRequester('mcp');
  const server = createMcpServer({
    runtime,
    identity,
    tools: mcpTools(runtime.ctx.tools.list(), runtime.config.mcp.toolsets),
    calls: new InFlightCalls(),
    places: runtime.places,
  });
  const input = options.input ?? process.stdin;
  const transport = new StdioServerTransport(input, options.output);
  const closed = new Promise<void>((resolve) => {
    server.onclose = () => resolve();
  });
  await server.connect(transport);
  // The SDK's stdio transport does not notice its input ending; a client that exits must end us.
  input.once('end', () => {
    server.close().catch(() => undefined);
  });
  runtime.logger.info({ subject: identity.subject, roles: identity.roles }, 'MCP over stdio: calls run as the local identity');
  return {
    closed,
    async close() {
      await server.close();
    },
  };
}
