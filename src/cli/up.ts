// `castellan up`: the embedded default. Starts, on loopback only, a private redis-server
// (own port and data dir, AOF on), a lab of real sshd nodes, the lab OIDC provider with demo
// users, the HTTP server and a worker; writes a ready castellan.yaml; prints how to try it;
// and on SIGINT/SIGTERM/SIGHUP stops everything it started, leaving no process behind. The
// lab's sshd nodes and redis-server carry a parent-death signal, so even SIGKILL leaves
// nothing running; the next `up` on the same --dir stops whatever an older run left.
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { loadConfig } from '../../config/load.js';
import { DASHBOARD_CLIENT_ID, LAB_ROLES, LAB_USERS, MCP_INSPECTOR_ORIGIN, startLabOidc, type LabOidc, type LabOidcOptions } from '../lab/oidc.js';
import { liveOwner, readUpRecord, stopLeftovers, writeUpRecord } from '../lab/leftovers.js';
import { startRedis, type PrivateRedis } from '../lab/redis.js';
import { labUp, nodeBinDir, type Lab } from '../lab/sshd-lab.js';
import { installLabUnits } from '../lab/lab-units.js';
import { findFreePort } from '../lab/net.js';
import { createRuntime, type Runtime } from '../runtime.js';
import { CastellanError, errorMessage } from '../../config/errors.js';
import { untilSignal } from './commands.js';

export interface UpOptions {
  readonly dir: string;
  readonly nodes: number;
  readonly port: number;
}

export async function runUp(options: UpOptions): Promise<void> {
  if (!Number.isInteger(options.nodes) || options.nodes < 1 || options.nodes > 200) throw new CastellanError('invalid_input', '--nodes: expected an integer from 1 to 200');
  if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) throw new CastellanError('invalid_input', '--port: expected a TCP port');
  const dir = resolve(options.dir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const previous = await readUpRecord(dir);
  const owner = liveOwner(previous);
  if (owner !== undefined) throw new CastellanError('conflict', `castellan up already runs on ${dir} (pid ${owner}): stop it first (Ctrl-C in its terminal, or kill ${owner})`);
  const leftovers = await stopLeftovers(dir);
  if (leftovers.sshd.length + leftovers.redis.length > 0) {
    process.stderr.write(`» stopped what an earlier run left on ${dir}: ${leftovers.sshd.length} sshd, ${leftovers.redis.length} redis-server\n`);
  }
  const port = (await findFreePort('127.0.0.1', options.port).catch(() => undefined)) === options.port ? options.port : await findFreePort('127.0.0.1');
  if (port !== options.port) process.stderr.write(`» port ${options.port} is busy: using ${port}\n`);
  const publicUrl = `http://127.0.0.1:${port}`;

  const started: Array<{ name: string; stop: () => Promise<void> }> = [];
  const stopAll = async (): Promise<void> => {
    for (const s of started.reverse()) {
      try {
        await s.stop();
      } catch (err) {
        process.stderr.write(`» stopping ${s.name}: ${errorMessage(err)}\n`);
      }
    }
  };

  try {
    const redis: PrivateRedis = await startRedis({ dir: join(dir, 'redis') });
    started.push({ name: 'redis', stop: () => redis.stop() });
    // Each node gets its own bin dir with systemctl/journalctl stand-ins, so the service and
    // journal tools have units to act on (the nodes share this machine's init otherwise).
    const lab: Lab = await labUp({ nodes: options.nodes, dir: join(dir, 'lab'), redisUrl: redis.url, dieWithParent: true, nodeBinDirs: true });
    started.push({ name: 'lab', stop: () => lab.down() });
    for (const node of lab.nodes) await installLabUnits(dirname(nodeBinDir(lab.dir, node.name)), node.name);
    const clientSecret = randomBytes(24).toString('base64url');
    await writeFile(join(dir, 'oidc-client-secret'), clientSecret, { mode: 0o600 });
    const dashboardSecret = randomBytes(24).toString('base64url');
    await writeFile(join(dir, 'oidc-dashboard-secret'), dashboardSecret, { mode: 0o600 });
    const oidc = await startOidcOnRememberedPort(previous?.oidcPort, { resource: publicUrl, accessTokenFormat: 'opaque', castellanClientSecret: clientSecret, dashboardClientSecret: dashboardSecret });
    started.push({ name: 'oidc', stop: () => oidc.stop() });
    await writeUpRecord(dir, { pid: process.pid, startedAt: new Date().toISOString(), oidcPort: Number(new URL(oidc.issuer).port), serverPort: port });
    await mkdir(join(dir, 'files'), { recursive: true });

    const configFile = join(dir, 'castellan.yaml');
    await writeFile(configFile, embeddedConfig({ lab, redisUrl: redis.url, publicUrl, port, issuer: oidc.issuer }), { mode: 0o600 });
    const config = await loadConfig(configFile);
    const runtime: Runtime = await createRuntime(config, { mode: 'all' });
    started.push({ name: 'castellan', stop: () => runtime.close() });
    const { startServer } = await import('../server.js');
    const server = await startServer(runtime, {});
    started.splice(started.length - 1, 0, { name: 'server', stop: () => server.close() });
    await runtime.startWorker();

    process.stdout.write(banner({ configFile, server: server.url, issuer: oidc.issuer, redis: redis.url, lab, dir }));
    const sig = await untilSignal();
    process.stderr.write(`\n» ${sig}: stopping everything castellan up started\n`);
  } finally {
    await stopAll();
  }
  process.stderr.write('» stopped\n');
}

/**
 * The lab issuer on the port it had last time on this dir, so MCP clients that remember the
 * issuer (and `castellan login`) keep working across restarts; a new port only when taken.
 */
async function startOidcOnRememberedPort(port: number | undefined, options: LabOidcOptions): Promise<LabOidc> {
  if (port !== undefined) {
    try {
      return await startLabOidc({ ...options, port });
    } catch (error) {
      process.stderr.write(`» the lab issuer's previous port ${port} is taken (${errorMessage(error)}): using a new one; clients must log in again\n`);
    }
  }
  return startLabOidc(options);
}

function embeddedConfig(p: { lab: Lab; redisUrl: string; publicUrl: string; port: number; issuer: string }): string {
  const doc = {
    inventory: './lab/inventory.yaml',
    known_hosts: './lab/known_hosts',
    ssh: { user: p.lab.loginUser, private_key_file: './lab/id_ed25519', connect_timeout: '5s', command_timeout: '5m', window: 64 },
    redis: { url: p.redisUrl, prefix: 'castellan' },
    // The MCP Inspector's web UI calls /mcp from its own origin.
    server: { listen: `127.0.0.1:${p.port}`, public_url: p.publicUrl, allowed_origins: [MCP_INSPECTOR_ORIGIN] },
    auth: {
      oidc: { issuer: p.issuer, client_id: 'castellan', client_secret_file: './oidc-client-secret', token_format: 'auto' },
      dashboard: { client_id: DASHBOARD_CLIENT_ID, client_secret_file: './oidc-dashboard-secret' },
      roles: LAB_ROLES,
      local_identity: { subject: 'local-admin', display_name: 'Local admin', groups: ['admins'] },
    },
    // A single-operator lab: the local admin may approve their own CLI requests. Approvals
    // through an AI client (MCP) stay refused whatever this says.
    policy: { read_only: false, approvals: { required: 1, allow_self_approval: true, expiry: '15m' } },
    jobs: { wait_budget: '45s', files_root: './files' },
    audit: { file: './audit.jsonl' },
    log: { level: 'info' },
    ...slackFromEnvironment(),
  };
  return `# Written by 'castellan up' for its embedded lab. Regenerated on every start.\n${stringify(doc)}`;
}

/** A fixed callback port for Claude Code, so its redirect URI is predictable (any loopback port is registered). */
const CLAUDE_CODE_CALLBACK_PORT = 33418;

/**
 * A real Slack app attaches to the lab through the environment (the config is regenerated on
 * every start): SLACK_BOT_TOKEN plus SLACK_APP_TOKEN (Socket Mode, no public URL needed) or
 * SLACK_SIGNING_SECRET (HTTP); SLACK_APPROVALS_CHANNEL and SLACK_CHANNELS (comma-separated IDs).
 */
function slackFromEnvironment(env: NodeJS.ProcessEnv = process.env): { slack?: Record<string, unknown> } {
  if (!env.SLACK_BOT_TOKEN || !(env.SLACK_APP_TOKEN || env.SLACK_SIGNING_SECRET)) return {};
  const socket = Boolean(env.SLACK_APP_TOKEN);
  const channels = (env.SLACK_CHANNELS ?? '').split(',').map((c) => c.trim()).filter(Boolean);
  return {
    slack: {
      socket_mode: socket,
      bot_token_env: 'SLACK_BOT_TOKEN',
      ...(socket ? { app_token_env: 'SLACK_APP_TOKEN' } : { signing_secret_env: 'SLACK_SIGNING_SECRET' }),
      ...(env.SLACK_APPROVALS_CHANNEL ? { approvals_channel: env.SLACK_APPROVALS_CHANNEL } : {}),
      ...(channels.length > 0 ? { channels } : {}),
    },
  };
}

function slackLines(server: string): string[] {
  if (process.env.SLACK_BOT_TOKEN && (process.env.SLACK_APP_TOKEN || process.env.SLACK_SIGNING_SECRET)) {
    return [`  slack       attached (${process.env.SLACK_APP_TOKEN ? 'Socket Mode' : `HTTP at ${server}/slack/events`}); try /castellan help in your workspace`];
  }
  return [
    '  slack       not attached. To attach a real Slack app (Socket Mode: no public URL needed):',
    '                castellan slack manifest > slack-app.yaml   # create the app from it at https://api.slack.com/apps',
    '                install it, then restart with SLACK_BOT_TOKEN=xoxb-… SLACK_APP_TOKEN=xapp-… [SLACK_APPROVALS_CHANNEL=C…]',
    "                (README → Slack; people link their account with '/castellan link' as a demo user)",
  ];
}

function banner(p: { configFile: string; server: string; issuer: string; redis: string; lab: Lab; dir: string }): string {
  const users = LAB_USERS.map((u) => `${u.username} (${u.groups.join(', ') || 'no groups'})`).join(', ');
  const mcp = `${p.server}/mcp`;
  return [
    '',
    'Castellan is up (embedded default, loopback only).',
    `  server      ${p.server}   (/mcp, /api/v1, /healthz, /metrics)`,
    `  dashboard   ${p.server}/ui   (sign in as a demo user below)`,
    `  lab OIDC    ${p.issuer}`,
    `  redis       ${p.redis}   (data in ${p.dir}/redis)`,
    `  lab nodes   ${p.lab.nodes.map((n) => `${n.name}=${n.address}:${n.port}`).join(' ')}`,
    `  config      ${p.configFile}`,
    ...slackLines(p.server),
    '',
    'CLI, in another terminal (local mode: as auth.local_identity, straight to Redis):',
    `  export CASTELLAN_CONFIG=${p.configFile}`,
    '  castellan ping all',
    '  castellan uptime odd',
    '  castellan exec odd -- uname -a        # destructive: waits for approval',
    '  castellan approve <job id>            # in a third terminal (the lab allows self-approval)',
    '  castellan jobs',
    '  castellan doctor                      # checks config, pins, SSH, Redis, OIDC: what a real deployment gets wrong',
    '',
    `Log in as a demo user (remote mode, through the API): ${users}; password <user>-lab-password`,
    `  castellan login --server ${p.server}        # prints a URL: open it, sign in, accept`,
    `  castellan login --server ${p.server} --device   # no browser here: type the code it prints at the issuer's /device page`,
    `  castellan whoami --server ${p.server}`,
    `  castellan --server ${p.server} ping all`,
    '',
    'MCP clients (sign in as a demo user when the browser opens):',
    `  Claude Code:    claude mcp add --transport http --client-id claude-code --callback-port ${CLAUDE_CODE_CALLBACK_PORT} castellan ${mcp}`,
    '                  then /mcp in Claude Code to authenticate',
    `  Inspector UI:   npx @modelcontextprotocol/inspector   (Node 22+), open ${MCP_INSPECTOR_ORIGIN},`,
    `                  Streamable HTTP, URL ${mcp}, OAuth client id mcp-inspector, then Connect`,
    '  Inspector CLI:  (after castellan login) npx @modelcontextprotocol/inspector --cli ' + mcp + ' --transport http \\',
    `                    --header "Authorization: Bearer $(castellan token --server ${p.server})" --method tools/list`,
    '',
    'Stop with Ctrl-C (or close the terminal): everything started here is stopped.',
    '',
  ].join('\n');
}
