// `castellan serve`: bind the HTTP server and serve the app (health, metrics, OAuth metadata,
// /mcp, /api/v1). Binding comes first so the Host guard knows the real port (port 0 in tests).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TokenVerifier } from '../auth/tokens.js';
import express from 'express';
import { allowedHostsFor, createHttpApp, metricsHandler, verifierFromConfig } from './http/app.js';
import { relayCancellations, type InFlightCalls } from './mcp/calls.js';
import type { Runtime } from './runtime.js';
import { createSlackFrontEnd, type SlackFrontEnd, type SlackFrontEndOptions } from './slack/app.js';

export interface ServerOptions {
  /** Default: server.listen's host. */
  readonly host?: string;
  /** Default: server.listen's port; 0 picks a free one. */
  readonly port?: number;
  /** Default: built from auth.oidc (undefined when OIDC is not configured). */
  readonly verifier?: TokenVerifier;
  /** Slack front end options; `false` keeps Slack off even when castellan.yaml configures it. */
  readonly slack?: SlackFrontEndOptions | false;
}

export interface RunningServer {
  /** Where it listens, e.g. http://127.0.0.1:8080 (public_url may differ behind a proxy). */
  readonly url: string;
  readonly server: http.Server;
  readonly calls: InFlightCalls;
  /** The Slack front end, when slack: is configured. */
  readonly slack: SlackFrontEnd | undefined;
  /** Where /metrics is served when server.metrics.listen gives it its own listener. */
  readonly metricsUrl: string | undefined;
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
  const slack = runtime.config.slack && options.slack !== false ? createSlackFrontEnd(runtime, options.slack ?? {}) : undefined;
  const { app, calls } = createHttpApp(runtime, { verifier, allowedHosts: allowedHostsFor(runtime.config.server.publicUrl, host, port), slackRouter: slack?.router });
  server.on('request', app);
  const metricsServer = await startMetricsListener(runtime);
  let stopRelay: (() => Promise<void>) | undefined;
  try {
    // MCP cancellations reach calls served by any `castellan serve` on this Redis.
    stopRelay = await relayCancellations(calls, runtime.redis, runtime.ctx.keys.mcpCancelChannel(), runtime.logger);
    await slack?.start();
  } catch (error) {
    await stopRelay?.();
    server.close();
    metricsServer?.server.close();
    throw error;
  }
  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const url = `http://${shown}:${port}`;
  runtime.logger.info({ url, publicUrl: runtime.config.server.publicUrl, oidc: runtime.config.auth.oidc !== undefined }, 'Castellan HTTP server listening');
  return {
    url,
    server,
    calls,
    slack,
    metricsUrl: metricsServer?.url,
    async close() {
      await stopRelay?.();
      await slack?.stop();
      if (metricsServer) {
        const done = new Promise<void>((resolve) => metricsServer.server.close(() => resolve()));
        metricsServer.server.closeAllConnections();
        await done;
      }
      // MCP calls hold SSE responses open while they wait; end them rather than wait them out.
      // Their jobs are unaffected: they live in Redis and the worker.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

/**
 * server.metrics.listen: /metrics alone on its own address (typically loopback or a monitoring
 * network), so the public listener does not serve it at all.
 */
async function startMetricsListener(runtime: Runtime): Promise<{ server: http.Server; url: string } | undefined> {
  const listen = runtime.config.server.metrics.listen;
  if (listen === undefined) return undefined;
  const app = express();
  app.disable('x-powered-by');
  app.get('/metrics', metricsHandler(runtime));
  app.use((_req, res) => {
    res.status(404).type('text/plain').send('this listener serves /metrics only\n');
  });
  const server = http.createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const shown = listen.host === '0.0.0.0' || listen.host === '::' ? '127.0.0.1' : listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  return { server, url: `http://${shown}:${port}/metrics` };
}
