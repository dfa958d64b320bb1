// `npm run bench:dashboard`: the web dashboard at 100,000 retained jobs. Seeds a private
// Redis with 100k job records, serves the dashboard, and measures (1) server time of the Jobs
// page and its JSON (first page, deep page, filtered pages from the job indexes) over loopback, and (2) time from
// a job event to the change showing in Chromium (a new job row on the Jobs page, a state change
// of a shown row, and an output line on a running job's page). Writes
// bench/results/dashboard-latest.{md,json}.
//
//   node dist/bench/dashboard.js [--jobs 100000] [--runs 20]
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { parseConfig } from '../config/load.js';
import { startRedis } from '../src/lab/redis.js';
import { findFreePort } from '../src/lab/net.js';
import { createLogger } from '../src/log.js';
import { Redactor } from '../queues/redact.js';
import { createRuntime } from '../src/runtime.js';
import { startServer } from '../src/server.js';
import { SessionStore } from '../src/dashboard/session.js';
import { newJobId, type JobDoc } from '../queues/records.js';
import { percentile } from './stats.js';

const RESULTS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

interface Figure {
  readonly what: string;
  readonly p50: number;
  readonly p95: number;
  readonly n: number;
}

function summarize(what: string, samples: number[]): Figure {
  return { what, p50: percentile(samples, 50), p95: percentile(samples, 95), n: samples.length };
}

function jobDoc(i: number, at: number): JobDoc {
  const id = newJobId();
  return {
    id,
    tool: i % 7 === 0 ? 'uptime' : 'ping',
    risk: 'read',
    input: { targets: 'all' },
    plan: { tool: 'ping', hosts: ['node01', 'node02'], batches: [{ steps: [{ id: 's1', description: 'ping', hosts: ['node01', 'node02'], action: { kind: 'exec', argv: ['true'] }, timeoutMs: 1000 }] }], failureBudget: 2 } as unknown as JobDoc['plan'],
    planHash: 'bench',
    requester: { subject: i % 3 === 0 ? 'alice' : 'oscar', displayName: i % 3 === 0 ? 'Alice Admin' : 'Oscar Operator', groups: ['ops'], roles: ['viewer', 'operator'], origin: i % 2 === 0 ? 'cli' : 'mcp' },
    replyTo: { kind: 'cli' },
    createdAt: new Date(at).toISOString(),
    approvalsRequired: 0,
    timeoutMs: 60_000,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { jobs: { type: 'string', default: '100000' }, runs: { type: 'string', default: '20' } } });
  const jobs = Number(values.jobs);
  const runs = Number(values.runs);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-bench-ui-'));
  const redis = await startRedis({ dir: path.join(dir, 'redis') });
  const log = (line: string): void => void process.stderr.write(`» ${line}\n`);
  try {
    await writeFile(path.join(dir, 'inventory.yaml'), 'all:\n  hosts:\n    node01: {ansible_host: 127.0.0.2}\n    node02: {ansible_host: 127.0.0.3}\n');
    await writeFile(path.join(dir, 'known_hosts'), '');
    const port = await findFreePort();
    const base = `http://127.0.0.1:${port}`;
    const yaml = [
      'inventory: ./inventory.yaml',
      'known_hosts: ./known_hosts',
      `redis: {url: "${redis.url}", prefix: bench}`,
      `server: {listen: "127.0.0.1:${port}", public_url: "${base}"}`,
      'auth:',
      // Never contacted: the bench creates its session directly, as the callback would.
      '  oidc: {issuer: "http://127.0.0.1:9", client_id: castellan, client_secret_env: BENCH_SECRET}',
      '  dashboard: {client_id: castellan-dashboard, client_secret_env: BENCH_SECRET}',
      '  roles: {admin: [admins], operator: [ops], approver: [leads], viewer: [everyone]}',
      'jobs: {retention: {completed_count: 200000}}',
      'log: {level: warn}',
    ].join('\n');
    const config = await parseConfig(yaml, path.join(dir, 'castellan.yaml'), { env: { ...process.env, BENCH_SECRET: 'bench-secret-value' } });
    const logger = createLogger({ level: 'warn', redactor: new Redactor([]) });
    const runtime = await createRuntime(config, { mode: 'server', logger });
    const server = await startServer(runtime);
    try {
      log(`seeding ${jobs} job records`);
      const start = Date.now() - jobs * 1000;
      for (let i = 0; i < jobs; i += 1000) {
        await Promise.all(Array.from({ length: Math.min(1000, jobs - i) }, (_, k) => {
          const doc = jobDoc(i + k, start + (i + k) * 1000);
          return runtime.ctx.store.create(doc, (i + k) % 50 === 0 ? 'failed' : 'succeeded', { finishedAt: doc.createdAt, startedAt: doc.createdAt });
        }));
      }
      const sessions = new SessionStore(runtime.redis, 'bench', { idleMs: 3_600_000, absoluteMs: 3_600_000 });
      const { id: session } = await sessions.create({ subject: 'alice', displayName: 'Alice Admin', groups: ['admins'], idToken: undefined });
      const cookie = `castellan_session=${session}`;

      const timed = async (url: string, accept: string): Promise<number[]> => {
        const samples: number[] = [];
        for (let r = 0; r < runs + 2; r++) {
          const t0 = performance.now();
          const response = await fetch(`${base}${url}`, { headers: { cookie, accept } });
          await response.text();
          if (response.status !== 200) throw new Error(`${url}: HTTP ${response.status}`);
          if (r >= 2) samples.push(performance.now() - t0);
        }
        return samples;
      };
      const server_figures = [
        summarize('Jobs page, newest 50 (HTML)', await timed('/ui/jobs', 'text/html')),
        summarize('Jobs JSON, newest 50', await timed('/ui/jobs.json', 'application/json')),
        summarize(`Jobs page at offset ${Math.floor(jobs / 2)} (HTML)`, await timed(`/ui/jobs?offset=${Math.floor(jobs / 2)}`, 'text/html')),
        summarize('Jobs page filtered state=failed (HTML, index)', await timed('/ui/jobs?state=failed', 'text/html')),
        summarize('Jobs JSON filtered state=failed & tool=uptime & origin=cli', await timed('/ui/jobs.json?state=failed&tool=uptime&origin=cli', 'application/json')),
        summarize(`Jobs page filtered requester=alice at offset ${Math.floor(jobs / 6)} (HTML)`, await timed(`/ui/jobs?requester=alice&offset=${Math.floor(jobs / 6)}`, 'text/html')),
        summarize('Hosts page (last jobs per host from the host index)', await timed('/ui/hosts', 'text/html')),
      ];
      log('server figures done; measuring event → browser');

      const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'] });
      const live: number[] = [];
      const change: number[] = [];
      const output: number[] = [];
      try {
        const context = await browser.newContext();
        await context.addCookies([{ name: 'castellan_session', value: session, url: `${base}/ui/` }]);
        const page = await context.newPage();
        await page.goto(`${base}/ui/jobs`);
        await page.waitForFunction(() => (globalThis as unknown as { document: { querySelector: (s: string) => { textContent: string } | null } }).document.querySelector('[data-live-status]')?.textContent?.startsWith('Live') === true);
        for (let r = 0; r < runs; r++) {
          const doc = jobDoc(r, Date.now());
          const t0 = performance.now();
          // As the service and worker do: the record, then its state event (which also goes to the all-jobs feed).
          await runtime.ctx.store.create(doc, 'running', { startedAt: doc.createdAt });
          await runtime.ctx.events.publish(doc.id, { type: 'state', state: 'running' });
          await page.waitForSelector(`#row-${doc.id}`, { timeout: 10_000 });
          live.push(performance.now() - t0);
          const t1 = performance.now();
          await runtime.ctx.store.transition(doc.id, 'succeeded', { finishedAt: new Date().toISOString() }, ['running']);
          await runtime.ctx.events.publish(doc.id, { type: 'state', state: 'succeeded' });
          await page.waitForSelector(`#row-${doc.id} [data-state="succeeded"]`, { timeout: 10_000 });
          change.push(performance.now() - t1);
        }
        const doc = jobDoc(0, Date.now());
        await runtime.ctx.store.create(doc, 'running', { startedAt: doc.createdAt });
        await page.goto(`${base}/ui/jobs/${doc.id}`);
        await page.waitForTimeout(500);
        for (let r = 0; r < runs; r++) {
          const marker = `line-${r}-${Date.now()}`;
          const t0 = performance.now();
          await runtime.ctx.events.publish(doc.id, { type: 'output', step: 's1', host: 'node01', stream: 'stdout', text: `${marker}\n` });
          await page.waitForSelector(`[data-live-log]:has-text("${marker}")`, { timeout: 10_000 });
          output.push(performance.now() - t0);
        }
      } finally {
        await browser.close();
        // Let the SSE followers notice the closed pages (their blocking reads last up to 1 s).
        await new Promise((resolve) => setTimeout(resolve, 1500));
      }
      const browser_figures = [
        summarize('New job → its row on the Jobs page', live),
        summarize('State change → row updated', change),
        summarize('Output event → line in the job page live log', output),
      ];
      const report = { at: new Date().toISOString(), jobs, runs, server: server_figures, browser: browser_figures, machine: { cpus: os.cpus().length, node: process.version } };
      const row = (f: Figure): string => `| ${f.what} | ${f.p50.toFixed(1)} | ${f.p95.toFixed(1)} | ${f.n} |`;
      const md = [
        `# Dashboard benchmark (${report.at})`,
        '',
        `${jobs.toLocaleString('en')} retained job records in a private Redis; ${os.cpus().length} CPUs, Node ${process.version}; loopback.`,
        '',
        '## Server time (request → full response), ms',
        '',
        '| Request | p50 | p95 | n |',
        '|---|---:|---:|---:|',
        ...server_figures.map(row),
        '',
        '## Job event → browser update (Chromium), ms',
        '',
        '| Event | p50 | p95 | n |',
        '|---|---:|---:|---:|',
        ...browser_figures.map(row),
        '',
        'The Jobs page follows the all-jobs feed (queues/feed.ts): one blocking XREAD per server process wakes every open page, which reads the entries after its own position and re-renders the rows they name; a job page follows the job\'s event stream through the shared JobEventHub. Neither polls.',
        '',
      ].join('\n');
      await mkdir(RESULTS_DIR, { recursive: true });
      await writeFile(path.join(RESULTS_DIR, 'dashboard-latest.md'), md);
      await writeFile(path.join(RESULTS_DIR, 'dashboard-latest.json'), JSON.stringify(report, null, 2));
      process.stdout.write(md);
    } finally {
      await server.close();
      await runtime.close();
    }
  } finally {
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
