// `castellan serve`: bind the HTTP server and serve the app (health, metrics, OAuth metadata,
// /mcp, /api/v1). Binding comes first so the Host guard knows the real port (port 0 in tests).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TokenVerifier } from '../auth/tokens.js';
import { allowedHostsFor, createHttpApp, verifierFromConfig } from './http/app.js';
import type { InFlightCalls } from './mcp/calls.js';
import type { Runtime } from './runtime.js';

export interface ServerOptions {
  /** Default: server.listen's host. */
  readonly host?: string;
  /** Default: server.listen's port; 0 picks a free one. */
  readonly port?: number;
  /** Default: built from auth.oidc (undefined when OIDC is not configured). */
  readonly verifier?: TokenVerifier;
}

export interface RunningServer {
  /** Where it listens, e.g. http://127.0.0.1:8080 (public_url may differ behind a proxy). */
  readonly url: string;
  readonly server: http.Server;
  readonly calls: InFlightCalls;
  close(): Promise<void>;
}

export async function startServer(runtime: Runtime, options: ServerOptions = {}): Promise<RunningServer> {
  const listen = runtime.config.server.listen;
  const host = options.host ?? listen.host;
  const verifier = options.verifier ?? verifierFromConfig(runtime);
  const server = http.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? listen.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const { app, calls } = createHttpApp(runtime, { verifier, allowedHosts: allowedHostsFor(runtime.config.server.publicUrl, host, port) });
  server.on('request', app);
  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const url = `http://${shown}:${port}`;
  runtime.logger.info({ url, publicUrl: runtime.config.server.publicUrl, oidc: runtime.config.auth.oidc !== undefined }, 'Castellan HTTP server listening');
  return {
    url,
    server,
    calls,
    async close() {
      // MCP calls hold SSE responses open while they wait; end them rather than wait them out.
      // Their jobs are unaffected: they live in Redis and the worker.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
