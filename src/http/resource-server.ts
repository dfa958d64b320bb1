// The HTTP pieces that make Castellan's MCP endpoint and HTTP API an OAuth 2.0 resource server
// (MCP authorization, 2025-11-25): RFC 9728 metadata telling clients which issuer to log in at,
// a bearer-token gate answering RFC 6750 challenges, and a Host/Origin guard against DNS
// rebinding. Token checks themselves live in auth/tokens.ts; this file only translates.
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { CastellanAuthExtra } from '../../auth/request-identity.js';
import { InvalidTokenError, TokenVerifierUnavailableError, type TokenVerifier, type VerifiedToken } from '../../auth/tokens.js';

// Importing the SDK's bearer middleware types adds `auth?: AuthInfo` to Express's Request,
// which is where the MCP transport looks for it.
import type {} from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';

const WELL_KNOWN = '/.well-known/oauth-protected-resource';

/** RFC 9728 §3.1: the well-known URL with the resource's path appended (`…/oauth-protected-resource/mcp`). */
export function protectedResourceMetadataUrl(resourceUrl: string): string {
  const url = new URL(resourceUrl);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return new URL(`${WELL_KNOWN}${path}`, url.origin).href;
}

export interface ProtectedResourceMetadataOptions {
  /** Castellan's resource URL, e.g. https://castellan.example/mcp. */
  readonly resourceUrl: string;
  /** The authorization server (Authelia) issuer. */
  readonly issuer: string;
  readonly scopes: readonly string[];
  readonly resourceName?: string;
  readonly documentationUrl?: string;
  /**
   * Endpoint paths under the resource (e.g. `/mcp`) whose path-inserted well-known URL is
   * served too: clients given `…/mcp` look for `/.well-known/oauth-protected-resource/mcp`
   * first, even when the resource identifier itself has no path.
   */
  readonly endpointPaths?: readonly string[];
}

/** The RFC 9728 document, also useful to print from `castellan doctor`. */
export function protectedResourceMetadata(options: ProtectedResourceMetadataOptions): Record<string, unknown> {
  return {
    resource: options.resourceUrl,
    authorization_servers: [options.issuer],
    scopes_supported: [...options.scopes],
    bearer_methods_supported: ['header'],
    resource_name: options.resourceName ?? 'Castellan',
    ...(options.documentationUrl !== undefined ? { resource_documentation: options.documentationUrl } : {}),
  };
}

/**
 * Serves the metadata at the path-inserted URL (what clients try first, RFC 9728 §3.1) and at
 * the root form (the MCP spec's fallback). Public and cross-origin readable: browser-based
 * MCP clients fetch it before they hold any token.
 */
export function protectedResourceMetadataRouter(options: ProtectedResourceMetadataOptions): express.Router {
  const document = JSON.stringify(protectedResourceMetadata(options));
  const router = express.Router();
  const serve: RequestHandler = (_req, res) => {
    res.set({
      'Content-Type': 'application/json',
      'Access-Control-Allow-Origin': '*',
      'Cache-Control': 'public, max-age=3600',
    });
    res.status(200).send(document);
  };
  const resourcePath = new URL(protectedResourceMetadataUrl(options.resourceUrl)).pathname;
  const paths = new Set([WELL_KNOWN, resourcePath, ...(options.endpointPaths ?? []).map((p) => `${resourcePath}${p}`)]);
  for (const path of paths) {
    router.get(path, serve);
    router.options(path, (_req, res) => {
      res.set({ 'Access-Control-Allow-Origin': '*', 'Access-Control-Allow-Methods': 'GET' }).status(204).end();
    });
  }
  return router;
}

export interface RequireBearerOptions {
  /** Advertised in every challenge so clients can discover where to log in (RFC 9728 §5.1). */
  readonly resourceMetadataUrl: string;
  readonly requiredScopes?: readonly string[];
  /** Told about IdP outages (answered 503); never given the token. */
  readonly onUnavailable?: (error: Error) => void;
}

/** RFC 6750 quoted-string values: our messages are constants, but never let a quote through. */
function quoted(value: string): string {
  return `"${value.replace(/["\\]/g, "'").replace(/[^\x20-\x7e]/g, ' ')}"`;
}

function challenge(parts: Record<string, string | undefined>): string {
  const fields = Object.entries(parts)
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(([key, value]) => `${key}=${quoted(value)}`);
  return fields.length > 0 ? `Bearer ${fields.join(', ')}` : 'Bearer';
}

function toAuthInfo(token: string, verified: VerifiedToken): AuthInfo {
  const extra: CastellanAuthExtra = { identity: verified.identity, origin: verified.origin, audience: verified.audience };
  return {
    token,
    clientId: verified.clientId,
    scopes: [...verified.scopes],
    expiresAt: verified.expiresAt,
    resource: new URL(verified.resource),
    extra: { ...extra },
  };
}

/**
 * Express middleware: 401 with `WWW-Authenticate: Bearer resource_metadata="…"` when no token
 * is given (RFC 6750 §3.1: no error code then), 401 `error="invalid_token"` with the reason
 * when it is refused, 403 `insufficient_scope` when scopes are missing, 503 when the IdP
 * cannot be asked. On success `req.auth` holds the SDK's AuthInfo with `extra.identity`.
 */
export function requireBearer(verifier: TokenVerifier, options: RequireBearerOptions): RequestHandler {
  const required = options.requiredScopes ?? [];
  const scope = required.length > 0 ? required.join(' ') : undefined;
  const metadata = options.resourceMetadataUrl;

  const refuse = (res: Response, status: number, header: string, error: string, description: string) => {
    res.set('WWW-Authenticate', header).status(status).json({ error, error_description: description });
  };

  return (req: Request, res: Response, next: NextFunction) => {
    const header = req.headers.authorization;
    if (header === undefined || header.trim() === '') {
      refuse(res, 401, challenge({ resource_metadata: metadata, scope }), 'unauthorized', 'a bearer access token is required');
      return;
    }
    const match = /^Bearer +([^\s]+) *$/i.exec(header);
    if (match?.[1] === undefined) {
      const description = 'the Authorization header must be "Bearer <token>"';
      refuse(res, 401, challenge({ error: 'invalid_token', error_description: description, resource_metadata: metadata, scope }), 'invalid_token', description);
      return;
    }
    const token = match[1];
    verifier.verify(token).then(
      (verified) => {
        const missing = required.filter((needed) => !verified.scopes.includes(needed));
        if (missing.length > 0) {
          const description = `the token lacks scope ${missing.join(' ')}`;
          refuse(res, 403, challenge({ error: 'insufficient_scope', error_description: description, scope, resource_metadata: metadata }), 'insufficient_scope', description);
          return;
        }
        req.auth = toAuthInfo(token, verified);
        next();
      },
      (error: unknown) => {
        if (error instanceof InvalidTokenError) {
          refuse(res, 401, challenge({ error: 'invalid_token', error_description: error.message, resource_metadata: metadata, scope }), 'invalid_token', error.message);
          return;
        }
        const problem = error instanceof Error ? error : new Error(String(error));
        options.onUnavailable?.(problem);
        const description =
          error instanceof TokenVerifierUnavailableError ? error.message : 'the access token could not be checked right now';
        res.set('Retry-After', '5').status(503).json({ error: 'temporarily_unavailable', error_description: description });
      },
    );
  };
}

export interface HostAndOriginGuardOptions {
  /** `host` or `host:port`; an entry without a port matches any port. Case-insensitive. */
  readonly allowedHosts: readonly string[];
  /** Full origins, e.g. `https://castellan.example` or `http://localhost:6274`. */
  readonly allowedOrigins: readonly string[];
}

/**
 * DNS-rebinding protection (MCP transports §Security): a browser tricked into talking to
 * Castellan through an attacker's hostname sends that hostname as Host, and any page sends
 * its own Origin. Requests without Origin (CLI, curl, server-to-server) pass the Origin check.
 */
export function hostAndOriginGuard(options: HostAndOriginGuardOptions): RequestHandler {
  const hosts = options.allowedHosts.map((host) => host.toLowerCase());
  const origins = new Set(options.allowedOrigins.map((origin) => origin.toLowerCase().replace(/\/$/, '')));
  const hostAllowed = (host: string): boolean => {
    const value = host.toLowerCase();
    const bare = value.startsWith('[') ? value.slice(0, value.indexOf(']') + 1) : value.split(':')[0];
    return hosts.some((allowed) => allowed === value || (!/:\d+$/.test(allowed) && allowed === bare));
  };
  return (req, res, next) => {
    const host = req.headers.host;
    if (host === undefined || !hostAllowed(host)) {
      res.status(403).json({ error: 'forbidden', error_description: 'Host header is not one of the allowed hosts' });
      return;
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !origins.has(origin.toLowerCase())) {
      res.status(403).json({ error: 'forbidden', error_description: 'Origin is not allowed' });
      return;
    }
    next();
  };
}
