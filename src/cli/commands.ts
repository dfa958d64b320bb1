// Long-running and administrative commands: serve, worker, up, lab, hosts trust, mcp.
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { loadConfig } from '../../config/load.js';
import { loadInventory } from '../../config/inventory.js';
import { resolveTargets } from '../../config/targets.js';
import { labDown, labUp } from '../lab/sshd-lab.js';
import { createRuntime, targetFor, type Runtime } from '../runtime.js';
import { scanHostKeys, trustHosts } from '../ssh/trust.js';
import { CastellanError } from '../../config/errors.js';
import { parseSites } from '../../config/sites.js';
import { findConfig } from './config-path.js';
import type { JobClient } from './local.js';

export interface CliContext {
  globals(): { config?: string; verbose?: boolean };
  withClient<T>(fn: (client: JobClient) => Promise<T>): Promise<T>;
  runTool(client: JobClient, tool: string, input: unknown): Promise<number>;
}

/** The signals that mean "stop now, cleanly": Ctrl-C, kill, and a closed terminal. */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Resolves on SIGINT, SIGTERM or SIGHUP (a closed terminal stops a foreground server too). */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals): void => {
      for (const s of STOP_SIGNALS) process.off(s, on);
      resolve(sig);
    };
    for (const s of STOP_SIGNALS) process.on(s, on);
  });
}

export function register(program: Command, cli: CliContext): void {
  program
    .command('slack')
    .description('Slack app helpers')
    .command('manifest')
    .description('Print a Slack app manifest (YAML) for this server, for "Create New App → From a manifest"')
    .option('--socket-mode', 'Socket Mode (no public URL needed); default: slack.socket_mode, else Socket Mode')
    .option('--http', 'HTTP: Slack calls <public_url>/slack/events (needs a public HTTPS URL)')
    .option('--public-url <url>', 'default: server.public_url from castellan.yaml')
    .action(async (opts: { socketMode?: boolean; http?: boolean; publicUrl?: string }) => {
      const { slackManifest } = await import('../slack/manifest.js');
      // Without a castellan.yaml the flags decide; with one, its slack and server settings do.
      const config = await (async () => loadConfig(findConfig(cli.globals().config)))().catch(() => undefined);
      const socketMode = opts.http ? false : opts.socketMode ? true : (config?.slack?.socketMode ?? true);
      const publicUrl = opts.publicUrl ?? config?.server.publicUrl ?? 'http://127.0.0.1:8080';
      if (!URL.canParse(publicUrl)) throw new CastellanError('invalid_input', `--public-url: expected a URL, got '${publicUrl}'`);
      process.stdout.write(slackManifest({ socketMode, publicUrl }));
    });

  program
    .command('serve')
    .description('Run the HTTP server (MCP, API, health, metrics) and, unless --no-worker, a worker in the same process')
    .option('--no-worker', 'server only; run workers with `castellan worker`')
    .action(async (opts: { worker: boolean }) => {
      const config = await loadConfig(findConfig(cli.globals().config));
      const runtime = await createRuntime(config, { mode: opts.worker ? 'all' : 'server' });
      const { startServer } = await import('../server.js');
      const server = await startServer(runtime, {});
      if (opts.worker) await runtime.startWorker();
      runtime.logger.info({ url: server.url, worker: opts.worker }, 'castellan serving');
      process.stderr.write(`castellan serving on ${server.url}${opts.worker ? ' with a worker' : ''}\n`);
      const sig = await untilSignal();
      runtime.logger.info({ signal: sig }, 'shutting down');
      await server.close();
      await runtime.close();
    });

  program
    .command('worker')
    .description('Run a worker: takes jobs from Redis and executes them over SSH (several may share one Redis)')
    .option('--site <sites...>', 'serve only the hosts of these sites (inventory var castellan_site or label site), e.g. --site rack-a,rack-b; default: hosts without a site')
    .action(async (opts: { site?: string[] }) => {
      const sites = parseSites(opts.site ?? []);
      const config = await loadConfig(findConfig(cli.globals().config));
      const runtime = await createRuntime(config, { mode: 'worker' });
      const worker = await runtime.startWorker({ sites });
      runtime.logger.info({ worker: worker.id, sites }, 'worker started');
      process.stderr.write(`castellan worker ${worker.id} started${sites.length ? ` for site${sites.length > 1 ? 's' : ''} ${sites.join(', ')}` : ''}\n`);
      const sig = await untilSignal();
      runtime.logger.info({ signal: sig }, 'worker shutting down: running jobs get the shutdown grace');
      await runtime.close();
    });

  program
    .command('up')
    .description('Start the embedded default: private Redis, a lab of sshd nodes, a lab OIDC provider, the server and a worker')
    .option('--dir <dir>', 'where everything lives', '.castellan')
    .option('--nodes <n>', 'lab nodes', '5')
    .option('--port <port>', 'HTTP port', '8080')
    .action(async (opts: { dir: string; nodes: string; port: string }) => {
      const { runUp } = await import('./up.js');
      await runUp({ dir: opts.dir, nodes: Number(opts.nodes), port: Number(opts.port) });
    });

  const lab = program.command('lab').description('A local lab of real OpenSSH sshd nodes on 127.0.0.x');
  lab
    .command('up')
    .requiredOption('--dir <dir>', 'lab directory')
    .option('--nodes <n>', 'number of nodes', '5')
    .action(async (opts: { dir: string; nodes: string }) => {
      const nodes = Number(opts.nodes);
      if (!Number.isInteger(nodes) || nodes < 1 || nodes > 200) throw new CastellanError('invalid_input', '--nodes: expected an integer from 1 to 200');
      const l = await labUp({ nodes, dir: opts.dir });
      process.stdout.write(`lab up: ${l.nodes.length} sshd nodes (${l.nodes.map((n) => `${n.name}=${n.address}:${n.port}`).join(', ')})\n`);
      process.stdout.write(`inventory: ${l.inventoryFile}\nknown_hosts: ${l.knownHostsFile}\nconfig: ${l.configFile}\nstop with: castellan lab down --dir ${opts.dir}\n`);
    });
  lab
    .command('down')
    .requiredOption('--dir <dir>', 'lab directory')
    .action(async (opts: { dir: string }) => {
      await labDown(opts.dir);
      process.stdout.write(`lab down: every sshd of ${opts.dir} stopped\n`);
    });

  const hosts = program.command('hosts').description('Pinned SSH host keys');
  hosts
    .command('trust')
    .description('Show the host keys the targets present and pin them in known_hosts (an explicit act: never implicit)')
    .argument('<targets>')
    .option('-y, --yes', 'pin without asking')
    .option('--replace', 'replace a differing pinned key (after you checked the new fingerprint out of band)')
    .action(async (expression: string, opts: { yes?: boolean; replace?: boolean }) => {
      const config = await loadConfig(findConfig(cli.globals().config));
      const inventory = await loadInventory(config.inventory, { defaultPort: config.ssh.port });
      const targets = resolveTargets(expression, inventory).map((h) => targetFor(config, inventory, h));
      const scanned = await scanHostKeys(targets, { connectTimeoutMs: config.ssh.connectTimeoutMs });
      for (const s of scanned) {
        process.stdout.write(s.error ? `${s.host} (${s.address}:${s.port}): ${s.error}\n` : `${s.host} (${s.address}:${s.port}): ${s.keyType} ${s.fingerprint}\n`);
      }
      if (!opts.yes) {
        if (!process.stdin.isTTY) throw new CastellanError('invalid_input', 'not a terminal: check the fingerprints above, then pass --yes to pin them');
        const rl = createInterface({ input: process.stdin, output: process.stderr });
        const answer = await rl.question(`Pin these keys in ${config.knownHosts}? [y/N] `);
        rl.close();
        if (!/^y(es)?$/i.test(answer.trim())) {
          process.stderr.write('nothing pinned\n');
          process.exitCode = 1;
          return;
        }
      }
      const results = await trustHosts(targets, config.knownHosts, { connectTimeoutMs: config.ssh.connectTimeoutMs, replace: Boolean(opts.replace) });
      let bad = 0;
      for (const r of results) {
        if (r.action === 'refused' || r.action === 'failed') bad += 1;
        const previous = r.previous?.length ? ` (was ${r.previous.join(', ')})` : '';
        process.stdout.write(`${r.host}: ${r.action}${r.fingerprint ? ` ${r.fingerprint}` : ''}${previous}${r.error ? `: ${r.error}` : ''}\n`);
      }
      process.exitCode = bad ? 1 : 0;
    });

  program
    .command('mcp')
    .description('Serve MCP over stdio for a local client, as the local identity from config (auth.local_identity)')
    .requiredOption('--stdio', 'use stdin/stdout (the only local transport)')
    .action(async () => {
      const config = await loadConfig(findConfig(cli.globals().config));
      // Logs go to stderr: stdout belongs to the MCP protocol.
      const runtime: Runtime = await createRuntime(config, { mode: 'client' });
      const { runStdio } = await import('../mcp/stdio.js');
      const session = await runStdio(runtime);
      await session.closed;
      await runtime.close();
    });
}
