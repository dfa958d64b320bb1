// One MCP server for one caller. Over HTTP it lives for a single request (stateless
// Streamable HTTP, a fresh server and transport per POST, as the SDK requires); over stdio
// for the whole process. It lists the tools the caller's roles may run and turns each call
// into a JobService request made in the caller's name.
//
// Built on the SDK's low-level `Server` rather than `McpServer.registerTool`, on purpose:
// registerTool validates and *transforms* arguments before the handler sees them (a
// `timeout: "30s"` arrives as 30000), while JobService must receive the caller's raw input to
// validate, plan and record it once, the same way for every front end; and registerTool can
// only hide a tool by making calls to it fail with "Tool not found", where a caller without the
// role should hear which role it needs. Schemas still come from the tools' zod definitions.
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import {
  CallToolRequestSchema,
  CancelledNotificationSchema,
  ErrorCode,
  ListToolsRequestSchema,
  McpError,
  type CallToolResult,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import type { Identity, Requester } from '../../auth/types.js';
import { didYouMean } from '../../config/suggest.js';
import { CastellanError } from '../../config/errors.js';
import { isRedisUnavailable, redisUnavailable } from '../../queues/connections.js';
import type { Runtime } from '../runtime.js';
import type { InFlightCalls } from './calls.js';
import type { ApprovalPlaces } from '../present/job-view.js';
import { toolError, type McpCall, type McpTool } from './tools.js';

export const SERVER_INFO = { name: 'castellan', title: 'Castellan', version: '0.1.0' } as const;

const INSTRUCTIONS = [
  'Castellan runs operations on a bare-metal cluster as audited jobs, in your user\'s name and with their role.',
  'Read tools answer directly (with progress notifications when you send a progressToken).',
  'Change and destructive tools usually answer at once with state "awaiting_approval", the job id and the exact plan: a person with the approver role must approve it outside MCP (CLI, HTTP API or Slack). You can never approve; tell your user where to do it.',
  'A job that outlasts the wait budget answers with its job_id and state: follow it with job_status (wait_seconds), read all output with job_output, stop it with job_cancel.',
  'Targets are expressions: host names, group names, all, node sets like node[01-05], labels like role=storage, combined with "," (union), "&" (intersection) and "!" (difference).',
].join(' ');

export interface McpServerOptions {
  readonly runtime: Runtime;
  /** The verified caller (OIDC) or the configured local identity (stdio). */
  readonly identity: Identity;
  readonly tools: readonly McpTool[];
  readonly calls: InFlightCalls;
  readonly places: ApprovalPlaces;
}

function definition(tool: McpTool): Tool {
  return {
    name: tool.name,
    title: tool.title,
    description: tool.description,
    inputSchema: { ...tool.inputSchema, type: 'object' },
    outputSchema: { ...tool.outputSchema, type: 'object' },
    annotations: { ...tool.annotations },
  };
}

/** A CastellanError as a tool error an AI client can act on: the message names the field or the role. */
function errorResult(error: unknown, runtime: Runtime, tool: string): CallToolResult {
  if (error instanceof CastellanError) {
    const field = error.field !== undefined && !error.message.includes(error.field) ? `${error.field}: ` : '';
    return toolError(`${field}${error.message}`);
  }
  if (isRedisUnavailable(error)) return toolError(redisUnavailable(error, 'nothing was changed').message);
  runtime.logger.error({ err: error, tool }, 'MCP tool call failed');
  return toolError(`${tool} failed with an internal error; nothing more is known to the client (the server log has the details)`);
}

export function createMcpServer(options: McpServerOptions): Server {
  const { runtime, identity, tools, calls, places } = options;
  const requester: Requester = { ...identity, origin: 'mcp' };
  const byName = new Map(tools.map((tool) => [tool.name, tool]));
  // The SDK marks the low-level Server "for advanced use cases"; the header says why this is one.
  const server = new Server(SERVER_INFO, { capabilities: { tools: {} }, instructions: INSTRUCTIONS });

  server.setRequestHandler(ListToolsRequestSchema, () => ({
    tools: tools.filter((tool) => tool.visibleTo(identity, runtime.auth)).map(definition),
  }));

  server.setRequestHandler(CallToolRequestSchema, async (request, extra): Promise<CallToolResult> => {
    const name = request.params.name;
    const tool = byName.get(name);
    if (tool === undefined) {
      // Unknown tools are protocol errors (MCP tools §Error Handling), not tool results.
      throw new McpError(ErrorCode.InvalidParams, `unknown tool '${name}'${didYouMean(name, [...byName.keys()])}`);
    }
    const stop = new AbortController();
    let cancelReason: string | undefined;
    // The SDK aborts extra.signal when the HTTP connection goes away: stop waiting, but a
    // dropped connection is not a cancellation (MCP 2025-11-25), so the job goes on.
    const onDisconnect = (): void => stop.abort();
    if (extra.signal.aborted) stop.abort();
    else extra.signal.addEventListener('abort', onDisconnect, { once: true });
    const unregister = calls.register(identity.subject, extra.requestId, (reason) => {
      cancelReason ??= reason;
      stop.abort();
    });

    const token = request.params._meta?.progressToken;
    let sent = 0;
    let notifications: Promise<void> = Promise.resolve();
    const call: McpCall = {
      runtime,
      requester,
      places,
      requestId: extra.requestId,
      signal: stop.signal,
      cancelReason: () => cancelReason,
      progress(message, total) {
        if (token === undefined || stop.signal.aborted) return;
        sent += 1;
        // MCP requires progress to increase with every notification; total never below it.
        const params = { progressToken: token, progress: sent, ...(total !== undefined ? { total: Math.max(total, sent) } : {}), message };
        notifications = notifications
          .then(() => extra.sendNotification({ method: 'notifications/progress', params }))
          .catch(() => undefined);
      },
    };
    try {
      const args = request.params.arguments ?? {};
      return await tool.run(args, call);
    } catch (error) {
      return errorResult(error, runtime, name);
    } finally {
      unregister();
      extra.signal.removeEventListener('abort', onDisconnect);
      // Progress must reach the client before the result closes the request's stream.
      await notifications;
    }
  });

  // Replaces the SDK's own handler: over stateless HTTP the cancellation arrives on another
  // server instance (or another process), so it goes through the registry and its relay.
  server.setNotificationHandler(CancelledNotificationSchema, (notification) => {
    const id = notification.params.requestId;
    if (id !== undefined) calls.cancelEverywhere(identity.subject, id, notification.params.reason ?? '');
  });

  return server;
}
