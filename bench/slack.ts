// `npm run bench:slack`: the Slack front end's figures, as ratios measured in one run, against
// the local Slack stand-in (real Bolt, real signatures), a private Redis and a fake-node farm:
//   1. ack latency of `/castellan` under 50 concurrent commands (p50/p99), next to the same
//      server's /healthz at the same concurrency and to Slack's 3-second budget; the longest
//      event-loop stall meanwhile; how long parsing the inventory stalls the loop (the cause
//      of the ~10 s p99 seen before the inventory was read at start-up), and one round right
//      after the inventory file changed (it is parsed again, in a worker thread: the event loop
//      stays free; the same round with the parse on the event loop is shown next to it);
//   2. Slack Web API calls for a 1000-host fan-out (`ping all`), next to the host events the
//      job produced (what an edit-per-event front end would send);
//   3. job state change → Slack edit: an approval recorded → its card edited (p50/p99); the
//      notifier follows the job's events live (pub/sub wake-up), so no tick is involved.
//
//   node dist/bench/slack.js [--hosts 1000] [--commands 50] [--rounds 5] [--approvals 20]
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile, mkdir, utimes } from 'node:fs/promises';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { loadConfig } from '../config/load.js';
import { loadInventory } from '../config/inventory.js';
import { startRedis } from '../src/lab/redis.js';
import { createLogger } from '../src/log.js';
import { Redactor } from '../queues/redact.js';
import { createRuntime } from '../src/runtime.js';
import { startServer } from '../src/server.js';
import { isFinal } from '../queues/states.js';
import { formBody, signedRequest, slashCommandPayload, startSlackStandIn } from '../test/support/slack-standin.js';
import { startFarmProcess } from './fleet.js';
import { percentile } from './stats.js';

const RESULTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results', 'slack-latest.md');
const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'castellan.js');
const OPS = 'CBENCHOPS';
const APPROVALS = 'CBENCHAPPR';
const SWEEP_MS = 250;

const { values } = parseArgs({ options: { hosts: { type: 'string' }, commands: { type: 'string' }, rounds: { type: 'string' }, approvals: { type: 'string' } } });
const HOSTS = Number(values.hosts ?? 1000);
const COMMANDS = Number(values.commands ?? 50);
const ROUNDS = Number(values.rounds ?? 5);
const APPROVAL_RUNS = Number(values.approvals ?? 20);

const log = (line: string): void => {
  process.stderr.write(`» ${line}\n`);
};
const round = (n: number): number => Math.round(n * 10) / 10;

async function until<T>(probe: () => T | undefined | Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-bench-slack-'));
  const stops: (() => Promise<void>)[] = [];
  try {
    const redis = await startRedis({ dir: path.join(dir, 'redis') });
    stops.push(() => redis.stop());
    log(`starting ${HOSTS} fake nodes`);
    const farm = await startFarmProcess(HOSTS, path.join(dir, 'farm'));
    stops.push(() => farm.stop());
    const slack = await startSlackStandIn();
    stops.push(() => slack.stop());
    const signing = randomBytes(16).toString('hex');
    process.env.BENCH_SLACK_SIGNING = signing;
    process.env.BENCH_SLACK_BOT = slack.botToken;
    await mkdir(path.join(dir, 'files'), { recursive: true });
    const configFile = path.join(dir, 'castellan.yaml');
    await writeFile(
      configFile,
      stringify({
        inventory: farm.inventoryFile,
        known_hosts: farm.knownHostsFile,
        ssh: { user: farm.user, private_key_file: farm.clientKeyFile, window: 64 },
        redis: { url: redis.url },
        server: { listen: '127.0.0.1:0', public_url: 'http://127.0.0.1:8080' },
        slack: { signing_secret_env: 'BENCH_SLACK_SIGNING', bot_token_env: 'BENCH_SLACK_BOT', approvals_channel: APPROVALS, api_url: slack.apiUrl },
        auth: { roles: { admin: ['admins'] }, local_identity: { subject: 'bench', display_name: 'Bench', groups: ['admins'] } },
        policy: { approvals: { required: 1, allow_self_approval: true, expiry: '15m' } },
        jobs: { files_root: path.join(dir, 'files') },
        log: { level: 'warn' },
      }),
    );
    const config = await loadConfig(configFile);
    const runtime = await createRuntime(config, { mode: 'all', logger: createLogger({ level: 'warn', redactor: new Redactor(config.secrets.values()) }) });
    stops.push(() => runtime.close());
    const server = await startServer(runtime, { port: 0, slack: { sweepMs: SWEEP_MS } });
    stops.push(() => server.close());
    const now = Date.now();
    await server.slack?.links.store(slack.teamId, 'UBENCH', { subject: 'bench', displayName: 'Bench', groups: ['admins'], linkedAt: now, checkedAt: now });
    const events = `${server.url}/slack/events`;
    const slash = (text: string) => signedRequest(events, formBody(slashCommandPayload({ text, user: 'UBENCH', channel: OPS, responseUrl: slack.responseUrl(), team: slack.teamId })), signing);

    // How long one parse of this inventory takes on the event loop, where every ack in flight
    // would wait for it. (Before the Slack front end read the inventory at start-up, the first
    // command of the bench paid for it and all 50 acks of round 1 waited: the ~10 s p99.) A
    // running server parses a changed inventory in a worker thread (config/yaml-tree.ts).
    const parses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      await loadInventory([farm.inventoryFile]);
      parses.push(Math.round(performance.now() - t));
    }

    // 1. Ack under concurrency (list_nodes: no SSH, so every command also becomes a job).
    log(`ack latency: ${ROUNDS} rounds of ${COMMANDS} concurrent commands`);
    const acks: number[] = [];
    const health: number[] = [];
    const stall = monitorEventLoopDelay({ resolution: 10 });
    stall.enable();
    // The first command pays for Bolt's token check, JIT warm-up and the first inventory read.
    const cold = (await slash('list_nodes')).ms;
    for (let r = 0; r < ROUNDS; r++) {
      const sent = await Promise.all(Array.from({ length: COMMANDS }, () => slash('list_nodes')));
      for (const s of sent) {
        if (s.status !== 200) throw new Error(`a command was answered ${s.status}`);
        acks.push(s.ms);
      }
      const probes = await Promise.all(
        Array.from({ length: COMMANDS }, async () => {
          const started = Date.now();
          await (await fetch(`${server.url}/healthz`)).text();
          return Date.now() - started;
        }),
      );
      health.push(...probes);
    }
    stall.disable();
    const stallMaxMs = Math.round(stall.max / 1e6);

    // One more round right after the inventory file changed: the first command re-reads it.
    await utimes(farm.inventoryFile, new Date(), new Date());
    const changed = (await Promise.all(Array.from({ length: COMMANDS }, () => slash('list_nodes')))).map((s) => s.ms);
    // For comparison: the same round while this thread parses the inventory itself (as the
    // server did before a change was parsed off the event loop).
    const [onLoop] = await Promise.all([
      Promise.all(Array.from({ length: COMMANDS }, () => slash('list_nodes'))).then((sent) => sent.map((s) => s.ms)),
      loadInventory([farm.inventoryFile]),
    ]);

    // The worker runs as its own process (`castellan worker`, as deployed next to `serve`): in
    // this process it would starve the notifier and the acks of the event loop during a
    // 1000-host fan-out, which measures the bench layout, not the front end. It starts after
    // the ack phase so the acks compete with the after-ack work only.
    const worker = spawn(process.execPath, [CLI, '--config', configFile, 'worker'], { stdio: ['ignore', 'ignore', 'pipe'], env: process.env });
    stops.push(
      () =>
        new Promise<void>((resolve) => {
          worker.once('exit', () => resolve());
          worker.kill('SIGTERM');
        }),
    );
    await until(async () => ((await runtime.ctx.store.list(COMMANDS * ROUNDS + 10)).every((j) => isFinal(j.state)) ? true : undefined), 5 * 60_000, 'the ack phase jobs');
    // …and their Slack messages: posted and edited until Slack has heard nothing for 2 s.
    await until(() => (Date.now() - (slack.calls[slack.calls.length - 1]?.at ?? 0) > 2000 ? true : undefined), 5 * 60_000, 'their Slack messages');

    // 2. A 1000-host fan-out: Slack calls for its message.
    log(`fan-out: ping on ${HOSTS} hosts`);
    const callsBefore = slack.calls.length;
    const started = Date.now();
    await slash('ping all');
    const message = await until(() => slack.messages(OPS).find((m) => m.threadTs === undefined && /ping/.test(m.text)), 60_000, 'the fan-out message');
    await until(() => (/succeeded|failed/.test(message.text) ? true : undefined), 10 * 60_000, 'the fan-out to finish');
    await new Promise((r) => setTimeout(r, 3 * SWEEP_MS));
    const jobId = /job `(j[a-z0-9]+)`/.exec(JSON.stringify(message.blocks))?.[1] ?? '';
    const fanoutCalls = slack.calls
      .slice(callsBefore)
      .filter((c) => (c.method === 'chat.update' && c.args.ts === message.ts) || (c.method === 'chat.postMessage' && (c.args.thread_ts === message.ts || JSON.stringify(c.args.blocks ?? '').includes(jobId))));
    log(`fan-out message ${message.ts}: ${message.history.length} versions, first after ${(message.history[0]?.at ?? 0) - started} ms; calls after the command: ${slack.calls.length - callsBefore}`);
    const jobEvents = await runtime.ctx.events.read(jobId, '0', 100_000);
    const hostEvents = jobEvents.filter((e) => e.event.type === 'host_finished').length;
    const fanoutSeconds = (Date.now() - started) / 1000;

    // 3. State change → edit: approve a waiting job; time from the vote event to the card edit.
    log(`state change → edit: ${APPROVAL_RUNS} approvals`);
    const latencies: number[] = [];
    const requester = runtime.localRequester('cli');
    for (let i = 0; i < APPROVAL_RUNS; i++) {
      const { job } = await runtime.service.submit({ tool: 'exec', input: { targets: farm.nodes[0]?.name ?? '', argv: ['true'] }, requester, replyTo: { kind: 'cli' } });
      const card = await until(() => slack.messages(APPROVALS).find((m) => JSON.stringify(m.blocks).includes(job.id)), 30_000, 'the card');
      // Past the coalescing window of the card's first post, so the figure is the notifier's reaction.
      await new Promise((r) => setTimeout(r, 1200));
      await runtime.service.approve(job.id, requester, undefined);
      const vote = (await runtime.ctx.events.read(job.id, '0', 100)).find((e) => e.event.type === 'vote');
      const edit = await until(
        () => slack.calls.find((c) => c.method === 'chat.update' && c.args.ts === card.ts && /Approved/.test(JSON.stringify(c.args.blocks))),
        30_000,
        'the card edit',
      );
      if (vote) latencies.push(edit.at - vote.at);
      const done = await runtime.service.wait(job.id, requester, 60_000);
      if (!isFinal(done.state)) throw new Error(`approval job ${job.id} did not finish`);
    }

    const ack = { p50: percentile(acks, 50), p99: percentile(acks, 99), max: Math.max(...acks) };
    const hp99 = percentile(health, 99);
    const lines = [
      `# Slack front end benchmark (${new Date().toISOString().slice(0, 16)} UTC, ${os.cpus().length} cores)`,
      '',
      'Local Slack stand-in on loopback; real Bolt (ExpressReceiver) with signed requests; private Redis; fake-node farm.',
      '',
      '| figure | value | compared with | ratio |',
      '|---|---|---|---|',
      `| slash command ack, ${COMMANDS} concurrent × ${ROUNDS} (p50 / p99 / max) | ${ack.p50} / ${ack.p99} / ${ack.max} ms | Slack's ack budget 3000 ms | p99 = ${round((ack.p99 / 3000) * 100)} % of budget |`,
      `| longest event-loop stall during the ack rounds | ${stallMaxMs} ms | ack p99 | ${round(stallMaxMs / Math.max(1, ack.p99) * 100)} % of p99 |`,
      `| parsing the ${HOSTS}-host inventory (blocks the event loop; min of 3) | ${Math.min(...parses)} ms | Slack's ack budget 3000 ms | ${round(Math.min(...parses) / 3000 * 100)} % of budget |`,
      `| ack p99 / max, ${COMMANDS} concurrent, right after the inventory file changed (parsed in a worker thread) | ${percentile(changed, 99)} / ${Math.max(...changed)} ms | the same round while the event loop parses it: ${percentile(onLoop, 99)} / ${Math.max(...onLoop)} ms | ${round(percentile(changed, 99) / Math.max(1, percentile(onLoop, 99)))} × |`,
      `| first slash command after start (cold) | ${cold} ms | warm p50 | ${round(cold / Math.max(1, ack.p50))} × |`,
      `| same server's /healthz, ${COMMANDS} concurrent (p99) | ${hp99} ms | slash ack p99 | ack / health = ${round(ack.p99 / Math.max(1, hp99))} |`,
      `| Slack API calls for one ${HOSTS}-host ping (post + edits) | ${fanoutCalls.length} calls over ${round(fanoutSeconds)} s | ${hostEvents} host events (edit per event) | ${round(fanoutCalls.length / Math.max(1, hostEvents) * 100)} % of per-event |`,
      `| approval → card edited (p50 / p99, n=${latencies.length}) | ${percentile(latencies, 50)} / ${percentile(latencies, 99)} ms | the 250 ms tick of the polling notifier before | p50 = ${round(percentile(latencies, 50) / 250 * 100)} % of a tick |`,
      '',
    ];
    process.stdout.write(lines.join('\n'));
    await mkdir(path.dirname(RESULTS), { recursive: true });
    await writeFile(RESULTS, lines.join('\n'));
    log(`written ${RESULTS}`);
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
