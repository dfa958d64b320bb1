// Everything the MCP and HTTP API tests run against, all real: a private redis-server (from
// useRedis), the real-sshd lab, the lab OIDC provider (opaque or JWT access tokens), and
// Castellan itself built from a castellan.yaml text like an operator's: a server runtime with
// its HTTP server, and a separate worker runtime (so tests can stop the worker to hold jobs
// in the queue, as a busy or restarting worker would).
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { parseConfig, type Config } from '../../config/load.js';
import { findFreePort } from '../../src/lab/net.js';
import { LAB_ROLES, startLabOidc, type LabOidc } from '../../src/lab/oidc.js';
import { labUp, type Lab } from '../../src/lab/sshd-lab.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { startServer, type RunningServer } from '../../src/server.js';
import type { JobSettings } from '../../queues/context.js';

export const OTHER_RESOURCE = 'https://other-service.example/api';
const SECRET_ENV = 'CASTELLAN_TEST_OIDC_SECRET';
const DASHBOARD_SECRET_ENV = 'CASTELLAN_TEST_DASHBOARD_SECRET';

export interface HarnessOptions {
  readonly redisUrl: string;
  readonly nodes: number;
  readonly tokenFormat: 'opaque' | 'jwt';
  /** Leave auth.oidc out of the config (the "not configured" case). */
  readonly withoutOidc?: boolean;
  /** Extra auth.oidc keys (e.g. max_token_lifetime), merged over the lab's. */
  readonly oidcConfig?: Readonly<Record<string, unknown>>;
  /** Extra castellan.yaml keys (shallow-merged per top-level section). */
  readonly config?: Readonly<Record<string, Record<string, unknown>>>;
}

export interface Harness {
  readonly dir: string;
  readonly lab: Lab;
  readonly oidc: LabOidc;
  readonly config: Config;
  /** The castellan.yaml text and the environment its secrets come from (for separate processes). */
  readonly yaml: string;
  readonly env: Readonly<Record<string, string>>;
  /** Serves HTTP; does not execute jobs. */
  readonly runtime: Runtime;
  readonly server: RunningServer;
  /** http://127.0.0.1:PORT: the public URL, the resource (token audience) and where it listens. */
  readonly base: string;
  /** A fresh access token for a lab user (opaque or JWT, per the harness), issued to `clientId` (default castellan-cli). */
  token(username: string, clientId?: string): Promise<string>;
  /** An MCP client over Streamable HTTP, logged in as `username` through `clientId` (default castellan-cli). */
  mcp(username: string, url?: string, clientId?: string): Promise<Client>;
  /** Run jobs: start (or restart) the worker runtime. */
  startWorker(): Promise<void>;
  /** Stop executing jobs; queued ones wait until startWorker(). */
  stopWorker(): Promise<void>;
  /** Another server runtime on its own port with job settings (e.g. a tiny wait budget) or config sections overridden. */
  extraServer(jobSettings: Partial<JobSettings>, config?: Partial<Config>): Promise<{ runtime: Runtime; server: RunningServer }>;
  close(): Promise<void>;
}

export async function startHarness(options: HarnessOptions): Promise<Harness> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-mcp-'));
  const cleanups: Array<() => Promise<void>> = [async () => rm(dir, { recursive: true, force: true })];
  const close = async (): Promise<void> => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  };
  try {
    const lab = await labUp({ nodes: options.nodes, dir: path.join(dir, 'lab') });
    cleanups.push(() => lab.down());
    // Bind-and-release to learn a free port: the resource URL (token audience) contains it.
    const port = await findFreePort();
    const base = `http://127.0.0.1:${port}`;
    const oidc = await startLabOidc({ resource: base, accessTokenFormat: options.tokenFormat, otherResources: [OTHER_RESOURCE] });
    cleanups.push(() => oidc.stop());

    const doc: Record<string, Record<string, unknown> | string> = {
      inventory: lab.inventoryFile,
      known_hosts: lab.knownHostsFile,
      ssh: { user: lab.loginUser, private_key_file: lab.clientKeyFile, connect_timeout: '5s', command_timeout: '1m' },
      redis: { url: options.redisUrl, prefix: `ct-${randomBytes(4).toString('hex')}` },
      server: { listen: `127.0.0.1:${port}`, public_url: base, allowed_origins: ['http://localhost:6274'] },
      auth: {
        ...(options.withoutOidc
          ? {}
          : {
              oidc: { issuer: oidc.issuer, client_id: oidc.castellanClient.clientId, client_secret_env: SECRET_ENV, ...options.oidcConfig },
              dashboard: { client_id: oidc.dashboardClient.clientId, client_secret_env: DASHBOARD_SECRET_ENV },
            }),
        roles: LAB_ROLES,
        local_identity: { subject: 'local-admin', display_name: 'Local admin', groups: ['admins'] },
      },
      jobs: { wait_budget: '20s' },
      log: { level: 'warn' },
    };
    for (const [section, values] of Object.entries(options.config ?? {})) {
      const current = doc[section];
      doc[section] = typeof current === 'object' ? { ...current, ...values } : values;
    }
    const yaml = stringify(doc);
    // The secret reaches Castellan the way it does in production: through the named env var.
    const env = { [SECRET_ENV]: oidc.castellanClient.clientSecret, [DASHBOARD_SECRET_ENV]: oidc.dashboardClient.clientSecret };
    const config = await parseConfig(yaml, path.join(dir, 'castellan.yaml'), { env: { ...process.env, ...env } });

    const runtime = await createRuntime(config, { mode: 'server' });
    cleanups.push(() => runtime.close());
    const server = await startServer(runtime);
    cleanups.push(() => server.close());

    let worker: Runtime | undefined;
    const stopWorker = async (): Promise<void> => {
      const w = worker;
      worker = undefined;
      await w?.close();
    };
    cleanups.push(stopWorker);

    return {
      dir,
      lab,
      oidc,
      config,
      yaml,
      env,
      runtime,
      server,
      base,
      token: (username, clientId) => oidc.mintAccessToken({ username, ...(clientId !== undefined ? { clientId } : {}) }),
      async mcp(username, url = `${base}/mcp`, clientId) {
        const token = await oidc.mintAccessToken({ username, ...(clientId !== undefined ? { clientId } : {}) });
        const client = new Client({ name: 'castellan-test', version: '0.0.0' });
        const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } });
        await client.connect(transport);
        cleanups.push(() => client.close());
        return client;
      },
      async startWorker() {
        if (worker) return;
        const w = await createRuntime(config, { mode: 'worker' });
        worker = w;
        await w.startWorker();
      },
      stopWorker,
      async extraServer(jobSettings, override = {}) {
        const extra = await createRuntime({ ...config, ...override }, { mode: 'server', jobSettings });
        cleanups.push(() => extra.close());
        const extraServer = await startServer(extra, { port: 0 });
        cleanups.push(() => extraServer.close());
        return { runtime: extra, server: extraServer };
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * The harness's config written for separate `castellan serve` and `castellan worker` processes:
 * the serve one listens on a free port of its own (the harness's in-process server keeps its).
 */
export async function processConfigs(h: Pick<Harness, 'yaml' | 'dir'>): Promise<{ serveConfig: string; workerConfig: string }> {
  const doc = parse(h.yaml) as { server: Record<string, unknown> };
  doc.server.listen = `127.0.0.1:${await findFreePort()}`;
  const serveConfig = path.join(h.dir, 'serve.yaml');
  const workerConfig = path.join(h.dir, 'worker.yaml');
  await Promise.all([writeFile(serveConfig, stringify(doc)), writeFile(workerConfig, h.yaml)]);
  return { serveConfig, workerConfig };
}

/** Poll until `check` returns a value (not undefined), or fail after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
