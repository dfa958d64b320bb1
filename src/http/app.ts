// The one Express app Castellan serves: health and metrics, the OAuth protected-resource
// metadata, `/mcp` and the JSON API, behind a Host/Origin guard. There is deliberately no
// app-wide body parser: each router parses its own JSON, because the Slack receiver that
// will be mounted on this app must see raw bodies to check Slack's signatures.
import { createHash, timingSafeEqual } from 'node:crypto';
import express, { type RequestHandler } from 'express';
import type { TokenVerifier } from '../../auth/tokens.js';
import { createTokenVerifier } from '../../auth/tokens.js';
import { oidcConfigFromSettings } from '../../auth/settings.js';
import { CastellanError } from '../../config/errors.js';
import { metrics } from '../../queues/metrics.js';
import { RETRY_AFTER_S } from '../../queues/connections.js';
import { redisTopology } from '../redis.js';
import type { Runtime } from '../runtime.js';
import { InFlightCalls } from '../mcp/calls.js';
import { MCP_PATH, mcpRouter } from '../mcp/http.js';
import { API_PREFIX, apiRouter } from './api.js';
import { dashboardRouter } from '../dashboard/router.js';
import {
  hostAndOriginGuard,
  protectedResourceMetadataRouter,
  protectedResourceMetadataUrl,
  requireBearer,
} from './resource-server.js';

export interface HttpAppOptions {
  /** Checks bearer tokens; undefined when `auth.oidc` is not configured (then /mcp and the API answer 503). */
  readonly verifier: TokenVerifier | undefined;
  /** Host header values accepted besides public_url's host (e.g. `127.0.0.1:8080`). */
  readonly allowedHosts?: readonly string[];
  /** The Slack front end's routes (/slack/events, the link page), when Slack is configured. */
  readonly slackRouter?: express.Router | undefined;
}

export interface HttpApp {
  readonly app: express.Express;
  /** MCP tool calls in flight (for cancellation, and for tests and shutdown to inspect). */
  readonly calls: InFlightCalls;
}

const HEALTH_TIMEOUT_MS = 2000;

const NO_OIDC =
  'OIDC is not configured (auth.oidc in castellan.yaml), so this server cannot tell who is asking and refuses all ' +
  'remote calls. Configure auth.oidc (issuer, client_id, client_secret_env) to use /mcp and the HTTP API; locally, ' +
  '`castellan mcp --stdio` and the CLI run as auth.local_identity.';

/** The token verifier for `auth.oidc`, or undefined when OIDC is not configured. */
export function verifierFromConfig(runtime: Pick<Runtime, 'config'>): TokenVerifier | undefined {
  const { config } = runtime;
  const oidc = config.auth.oidc;
  if (oidc === undefined) return undefined;
  const secret = config.secrets.oidcClientSecret;
  if (secret === undefined) {
    throw new CastellanError('unavailable', `${config.file}: auth.oidc needs client_secret_env or client_secret_file (Castellan's own client secret, used to introspect tokens)`);
  }
  return createTokenVerifier(oidcConfigFromSettings(oidc, secret, {
      cacheTtlSeconds: Math.min(300, Math.floor(oidc.cacheTtlMs / 1000)),
      maxTokenLifetimeSeconds: Math.max(60, Math.floor(oidc.maxTokenLifetimeMs / 1000)),
      clockSkewSeconds: Math.min(600, Math.floor(oidc.clockSkewMs / 1000)),
    }), {
    roles: config.auth.roles,
    clients: config.auth.clients,
  });
}

/** Host headers a browser may legitimately send for this server (DNS-rebinding guard). */
export function allowedHostsFor(publicUrl: string, listenHost: string, port: number): string[] {
  const hosts = new Set<string>([new URL(publicUrl).host]);
  const wildcard = listenHost === '0.0.0.0' || listenHost === '::' || listenHost === '';
  const loopback = wildcard || listenHost === '127.0.0.1' || listenHost === '::1' || listenHost === 'localhost';
  if (!wildcard) hosts.add(`${listenHost.includes(':') ? `[${listenHost}]` : listenHost}:${port}`);
  if (loopback) for (const name of ['localhost', '127.0.0.1', '[::1]']) hosts.add(`${name}:${port}`);
  return [...hosts];
}

/**
 * CORS for browser MCP clients (the MCP Inspector) and the dashboard: only origins the guard
 * already accepted get here; they may send the MCP and auth headers and read the challenge.
 */
function cors(): RequestHandler {
  return (req, res, next) => {
    const origin = req.headers.origin;
    if (origin === undefined) {
      next();
      return;
    }
    res.set({
      'Access-Control-Allow-Origin': origin,
      Vary: 'Origin',
      'Access-Control-Expose-Headers': 'Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate, Location',
    });
    if (req.method === 'OPTIONS') {
      res
        .set({
          'Access-Control-Allow-Methods': 'GET, POST, DELETE, OPTIONS',
          'Access-Control-Allow-Headers': 'Authorization, Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID',
          'Access-Control-Max-Age': '600',
        })
        .status(204)
        .end();
      return;
    }
    next();
  };
}

/** 127.0.0.0/8 and ::1 (also IPv4-mapped): addresses only a process on this host can send from. */
export function isLoopbackPeer(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return v4 === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/**
 * /metrics: with server.metrics.token, only `Authorization: Bearer <token>` (compared in constant
 * time); without one, only loopback peers (a Prometheus on the same host, or the separate
 * listener an operator bound to a private address). Everyone else gets a 401/403 saying how.
 */
export function metricsHandler(runtime: Pick<Runtime, 'config'>): RequestHandler {
  const token = runtime.config.secrets.metricsToken;
  const expected = token === undefined ? undefined : createHash('sha256').update(token).digest();
  const separate = runtime.config.server.metrics.listen !== undefined;
  return async (req, res) => {
    if (expected !== undefined) {
      const given = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '')?.[1];
      const digest = createHash('sha256').update(given ?? '').digest();
      if (given === undefined || !timingSafeEqual(digest, expected)) {
        res.set('WWW-Authenticate', 'Bearer realm="castellan-metrics"').status(401).type('text/plain').send('metrics need the bearer token configured in server.metrics.token_env / token_file\n');
        return;
      }
    } else if (!separate && !isLoopbackPeer(req.socket.remoteAddress)) {
      res.status(403).type('text/plain').send('metrics are served to loopback peers only; set server.metrics.listen (a separate listener) or server.metrics.token_env to read them from elsewhere\n');
      return;
    }
    const registry = metrics().registry;
    res.set('Content-Type', registry.contentType).send(await registry.metrics());
  };
}

/**
 * Health: does Redis answer, and what does the setup look like (standalone or Sentinel, the
 * primary it talks to, replicas, sentinels reachable). 503 when Redis does not answer; the
 * topology's problems (a sentinel down, no replica) are reported without failing the check.
 */
async function health(runtime: Runtime): Promise<{ ok: boolean; body: Record<string, unknown> }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), HEALTH_TIMEOUT_MS);
  });
  try {
    const answered = await Promise.race([runtime.redis.ping().then((reply) => reply === 'PONG', () => false), timeout]);
    if (!answered) return { ok: false, body: { status: 'unavailable', redis: 'not answering' } };
    const topology = await Promise.race([redisTopology(runtime.redis, runtime.config.redis, runtime.config.secrets.redisSentinelPassword), timeout]);
    const shown = topology && {
      mode: topology.mode,
      connected_to: topology.connectedTo,
      role: topology.role,
      replicas: topology.replicas,
      version: topology.version,
      tls: topology.tls,
      ...(topology.sentinel
        ? { sentinel: { name: topology.sentinel.name, reachable: topology.sentinel.sentinels.filter((s) => s.reachable).length, configured: topology.sentinel.sentinels.length } }
        : {}),
      problems: topology.problems,
    };
    return { ok: true, body: { status: 'ok', redis: 'ok', ...(shown ? { topology: shown } : {}) } };
  } finally {
    clearTimeout(timer);
  }
}

export function createHttpApp(runtime: Runtime, options: HttpAppOptions): HttpApp {
  const { config } = runtime;
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  const calls = new InFlightCalls();
  const publicUrl = config.server.publicUrl;

  app.use(
    hostAndOriginGuard({
      allowedHosts: [...new Set([new URL(publicUrl).host, ...(options.allowedHosts ?? [])])],
      allowedOrigins: config.server.allowedOrigins,
    }),
  );
  app.use(cors());

  app.get('/healthz', async (_req, res) => {
    const { ok, body } = await health(runtime);
    if (!ok) res.set('Retry-After', String(RETRY_AFTER_S));
    res.status(ok ? 200 : 503).json(body);
  });
  // On its own listener when server.metrics.listen says so (startServer serves it there).
  if (config.server.metrics.listen === undefined) app.get('/metrics', metricsHandler(runtime));

  // Before any body parser: Bolt verifies Slack's signature on the raw body.
  if (options.slackRouter) app.use(options.slackRouter);

  const oidc = config.auth.oidc;
  let mcpAuth: RequestHandler;
  let apiAuth: RequestHandler;
  if (oidc !== undefined && options.verifier !== undefined) {
    const resourceMetadataUrl = protectedResourceMetadataUrl(oidc.audience);
    app.use(protectedResourceMetadataRouter({ resourceUrl: oidc.audience, issuer: oidc.issuer, scopes: oidc.scopes, endpointPaths: [MCP_PATH] }));
    const verifier = options.verifier;
    const bearer = requireBearer(verifier, {
      resourceMetadataUrl,
      onUnavailable: (error) => runtime.logger.warn({ err: error }, 'cannot check access tokens: the OIDC provider is not answering'),
    });
    mcpAuth = bearer;
    apiAuth = bearer;
  } else {
    mcpAuth = (_req, res) => {
      res.status(503).json({ jsonrpc: '2.0', error: { code: -32001, message: NO_OIDC }, id: null });
    };
    apiAuth = (_req, res) => {
      res.status(503).json({ error: { code: 'unavailable', message: NO_OIDC } });
    };
  }

  const places = { ...runtime.places, publicUrl };
  app.use(mcpRouter(runtime, { authenticate: mcpAuth, places, calls }));
  app.use(API_PREFIX, apiRouter(runtime, { authenticate: apiAuth }));
  app.use('/ui', dashboardRouter(runtime));
  runtime.logger.debug({ mcp: MCP_PATH, api: API_PREFIX, oidc: oidc !== undefined }, 'HTTP routes ready');
  return { app, calls };
}
