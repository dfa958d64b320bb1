// `/mcp` over Streamable HTTP (MCP 2025-11-25), stateless: every POST gets a fresh server
// and transport bound to the caller verified by the bearer middleware, closed when the
// response closes. Nothing about a caller survives between requests except their jobs, which
// live in Redis; so any instance can serve any request, and no session can be hijacked.
// SSE responses stay on (no enableJsonResponse) because progress notifications only flow
// over SSE.
import express, { type ErrorRequestHandler, type RequestHandler, type Response } from 'express';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { Runtime } from '../runtime.js';
import { identityOf, verifiedRequester } from '../../auth/request-identity.js';
import { CastellanError } from '../../config/errors.js';
import { InFlightCalls } from './calls.js';
import type { ApprovalPlaces } from '../present/job-view.js';
import { createMcpServer } from './server.js';
import { mcpTools } from './tools.js';

export const MCP_PATH = '/mcp';
const MAX_BODY = '4mb';
/** Most messages one JSON-RPC batch may hold when batches are counted, not refused. */
const MAX_BATCH = 20;

export interface McpHttpOptions {
  /** Bearer authentication (requireBearer), or a responder explaining why there is none. */
  readonly authenticate: RequestHandler;
  readonly places: ApprovalPlaces;
  /** Shared with other routers in the process so cancellations find their calls. */
  readonly calls?: InFlightCalls;
}

function jsonRpcError(res: Response, status: number, code: number, message: string): void {
  res.status(status).json({ jsonrpc: '2.0', error: { code, message }, id: null });
}

export function mcpRouter(runtime: Runtime, options: McpHttpOptions): express.Router {
  const calls = options.calls ?? new InFlightCalls();
  // Tool definitions (and their JSON Schemas) are built once, not per request.
  const tools = mcpTools(runtime.ctx.tools.list(), runtime.config.mcp.toolsets);
  const router = express.Router();

  const handle: RequestHandler = async (req, res) => {
    const identity = identityOf(req);
    if (identity === undefined) {
      jsonRpcError(res, 401, -32001, 'no verified identity on this request');
      return;
    }
    const server = createMcpServer({ runtime, identity, tools, calls, places: options.places });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => {
      transport.close().catch(() => undefined);
      server.close().catch(() => undefined);
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  };

  // JSON-RPC batches (an array of messages in one POST; MCP 2025-06-18 dropped them) would let
  // one request start many jobs past the rate limit: refused, or (limits.mcp_batches: count)
  // each message is charged to the caller's rate limit up front, at most MAX_BATCH of them.
  const batches: RequestHandler = (req, res, next) => {
    const body: unknown = req.body;
    if (!Array.isArray(body)) {
      next();
      return;
    }
    const limits = runtime.config.limits;
    if (limits.mcpBatches === 'refuse' || body.length > MAX_BATCH) {
      const why = limits.mcpBatches === 'refuse' ? 'this server does not accept them (limits.mcp_batches: refuse)' : `at most ${MAX_BATCH} messages per batch`;
      jsonRpcError(res, 400, -32600, `JSON-RPC batches are refused: ${why}; send one message per POST`);
      return;
    }
    const requester = verifiedRequester(req, 'mcp');
    if (requester === undefined) {
      jsonRpcError(res, 401, -32001, 'no verified identity on this request');
      return;
    }
    runtime.service.chargeRequests(requester, body.length).then(
      () => next(),
      (error: unknown) => {
        if (error instanceof CastellanError && error.code === 'rate_limited') {
          if (error.retryAfterS !== undefined) res.set('Retry-After', String(error.retryAfterS));
          jsonRpcError(res, 429, -32000, error.message);
          return;
        }
        next(error);
      },
    );
  };

  router.post(MCP_PATH, options.authenticate, express.json({ limit: MAX_BODY }), batches, handle);
  // Stateless: no standalone SSE stream to GET and no session to DELETE.
  const notAllowed: RequestHandler = (_req, res) => {
    res.set('Allow', 'POST');
    jsonRpcError(res, 405, -32000, 'method not allowed: this MCP endpoint is stateless; send JSON-RPC messages with POST');
  };
  router.get(MCP_PATH, options.authenticate, notAllowed);
  router.delete(MCP_PATH, options.authenticate, notAllowed);

  const onError: ErrorRequestHandler = (err: unknown, req, res, next) => {
    if (res.headersSent || !req.path.startsWith(MCP_PATH)) {
      next(err);
      return;
    }
    const type = (err as { type?: unknown }).type;
    if (type === 'entity.parse.failed') {
      jsonRpcError(res, 400, -32700, `parse error: the request body is not valid JSON (${(err as Error).message})`);
      return;
    }
    if (type === 'entity.too.large') {
      jsonRpcError(res, 413, -32600, `the request body is larger than ${MAX_BODY}`);
      return;
    }
    runtime.logger.error({ err }, 'MCP request failed');
    jsonRpcError(res, 500, -32603, 'internal error; the server log has the details');
  };
  router.use(onError);
  return router;
}
