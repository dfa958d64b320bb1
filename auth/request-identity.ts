// Who is behind a request that passed bearer authentication (src/http/resource-server.ts
// `requireBearer` puts the verified token in `req.auth`): the identity and the origin its token
// carries. Here, below the front ends, so the HTTP API and MCP read it the same way and neither
// front end imports the other.
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { effectiveOrigin } from './policy.js';
import type { Identity, Origin, Requester } from './types.js';

/** What Castellan puts in `AuthInfo.extra`. */
export interface CastellanAuthExtra {
  readonly identity: Identity;
  /** The origin the verified token carries (auth.clients), never a request header. */
  readonly origin: Origin;
  readonly audience: readonly string[];
}

/** Any request object bearer authentication may have annotated (express's, node's). */
export interface AuthenticatedRequest {
  readonly auth?: AuthInfo | undefined;
}

/** The verified identity behind a request that passed `requireBearer`, or undefined. */
export function identityOf(req: AuthenticatedRequest): Identity | undefined {
  const extra = req.auth?.extra as Partial<CastellanAuthExtra> | undefined;
  return extra?.identity;
}

/**
 * The verified caller with the origin their token carries, lowered to `endpoint` where the
 * endpoint itself is an AI protocol (/mcp). Undefined without a verified token.
 */
export function verifiedRequester(req: AuthenticatedRequest, endpoint?: Origin): Requester | undefined {
  const extra = req.auth?.extra as Partial<CastellanAuthExtra> | undefined;
  if (extra?.identity === undefined) return undefined;
  // A token without a recorded origin cannot be attributed: the most restricted origin.
  return { ...extra.identity, origin: effectiveOrigin(extra.origin ?? 'mcp', endpoint) };
}
