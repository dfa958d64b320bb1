// The Slack front end survives a real process kill (SIGKILL, no shutdown code runs):
//  - a `castellan serve` process that posted a job's messages dies; another instance takes the
//    job over once the dead one's heartbeat is gone and edits the same messages to the outcome
//    (nothing reposted, nothing missed: the approval given meanwhile shows);
//  - a process that acknowledged a slash command dies before submitting it (a Redis tap stops
//    its traffic right after the command's record, so the kill lands exactly between the ack
//    and the submit); another instance takes the recorded command up and runs it, once;
//  - a process that acknowledged an Approve click dies before it recorded the vote; another
//    instance records it, the job runs, the card shows who approved, the approver is told.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { rolesForGroups } from '../../auth/roles.js';
import { LAB_ROLES } from '../../src/lab/oidc.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { CommandInbox } from '../../src/slack/inbox.js';
import { slackKeys } from '../../src/slack/keys.js';
import { SlackLinks } from '../../src/slack/links.js';
import { CLI, useCastellan } from '../support/castellan.js';
import { startRedisTap, type RedisTap } from '../support/redis-tap.js';
import { ACTION_APPROVE } from '../../src/present/render/slack.js';
import { blockActionsPayload, formBody, interactiveBody, signedRequest, slashCommandPayload, startSlackStandIn, type SlackStandIn } from '../support/slack-standin.js';

const OPS = 'COPSCRASH';
const APPROVALS = 'CAPPCRASH';
const SIGNING = randomBytes(16).toString('hex');

let slack: SlackStandIn;
const taps: RedisTap[] = [];
let survivor: RunningServer | undefined;
const children: ChildProcess[] = [];
const dynamic: Record<string, unknown> = {};

beforeAll(async () => {
  slack = await startSlackStandIn();
  process.env.T_CRASH_SIGNING = SIGNING;
  process.env.T_CRASH_BOT = slack.botToken;
  Object.assign(dynamic, {
    slack: { socket_mode: false, signing_secret_env: 'T_CRASH_SIGNING', bot_token_env: 'T_CRASH_BOT', approvals_channel: APPROVALS, api_url: slack.apiUrl },
    auth: { roles: LAB_ROLES },
  });
});

const c = useCastellan({ nodes: 2, config: dynamic });

beforeAll(async () => {
  const links = new SlackLinks(c.runtime.redis, slackKeys('castellan'), { roles: LAB_ROLES, ttlMs: 3_600_000, issuer: undefined, clientId: undefined, clientSecret: undefined, scopes: [], logger: c.runtime.logger });
  const now = Date.now();
  await links.store(slack.teamId, 'UOSCAR', { subject: 'oscar', displayName: 'Oscar Operator', groups: ['ops'], linkedAt: now, checkedAt: now });
  await links.store(slack.teamId, 'UAPRIL', { subject: 'april', displayName: 'April Approver', groups: ['leads'], linkedAt: now, checkedAt: now });
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await survivor?.close();
  for (const tap of taps) await tap.stop();
  await slack?.stop();
});

/** `castellan serve --no-worker` as its own process; resolves with its URL once it listens. */
async function serve(configFile: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [CLI, '--config', configFile, 'serve', '--no-worker'], { stdio: ['ignore', 'ignore', 'pipe'], env: process.env });
  children.push(child);
  const url = await new Promise<string>((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${err}`)), 180_000);
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /castellan serving on (http:\/\/\S+)/.exec(err);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
  return { child, url };
}

/** `serve` whose Redis traffic goes through a tap that can freeze it at an exact point. */
async function tappedServe(): Promise<{ child: ChildProcess; url: string; tap: RedisTap }> {
  const tap = await startRedisTap(c.redis.url);
  taps.push(tap);
  const doc = parse(await readFile(c.configFile, 'utf8')) as { redis: { url: string } };
  doc.redis.url = tap.url;
  const tappedConfig = path.join(c.dir, `castellan-tapped-${taps.length}.yaml`);
  await writeFile(tappedConfig, stringify(doc));
  return { ...(await serve(tappedConfig)), tap };
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

async function slash(url: string, text: string, triggerId?: string) {
  const payload = slashCommandPayload({ text, user: 'UOSCAR', channel: OPS, responseUrl: slack.responseUrl(), team: slack.teamId, triggerId });
  return signedRequest(`${url}/slack/events`, formBody(payload), SIGNING);
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const blocksText = (m: { blocks: unknown[] }) => JSON.stringify(m.blocks);
const jobCount = () => c.runtime.redis.zcard(c.runtime.ctx.keys.jobIndex());
const april = { subject: 'april', displayName: 'April Approver', groups: ['leads'], roles: rolesForGroups(['leads'], LAB_ROLES), origin: 'cli' as const };

/** The survivor: an instance in this process that looks for dead owners and stale commands often. */
async function startSurvivor(): Promise<RunningServer> {
  survivor ??= await startServer(c.runtime, { port: 0, slack: { sweepMs: 200, editIntervalMs: 300, commandStaleMs: 2000, recoverEveryMs: 300 } });
  return survivor;
}

// Each test starts a `castellan serve` process and waits out heartbeats and stale times: on a
// loaded 2-core machine that takes minutes, not the default minute.
const CRASH_TEST_MS = 240_000;

describe('Slack after a SIGKILL', () => {
  it('another instance takes over the messages of a killed one and shows what happened meanwhile', async () => {
    const a = await serve(c.configFile);
    expect((await slash(a.url, 'exec all -- hostname')).status).toBe(200);
    const card = await until('the approval card', () => slack.messages(APPROVALS).find((m) => /hostname/.test(blocksText(m))));
    const jobId = /job `(j[a-z0-9]+)`/.exec(blocksText(card))?.[1] ?? '';
    const request = await until('the request message', () => slack.messages(OPS).find((m) => m.threadTs === undefined && blocksText(m).includes(jobId)));
    // The killed process owned the job's messages.
    expect(await c.runtime.redis.get(`castellan:slack:owner:${jobId}`)).toMatch(new RegExp(`:${a.child.pid}:`));
    await kill(a.child);

    // Decided while no Slack instance runs; the job runs on this file's worker.
    await c.runtime.service.approve(jobId, april);
    await startSurvivor();
    for (const m of [card, request]) {
      await until(`${m.channel} edited to the outcome`, () => (/succeeded/.test(m.text) ? true : undefined));
      expect(blocksText(m)).toContain('Approved by April Approver');
      expect(m.blocks.some((b) => (b as { type?: string }).type === 'actions')).toBe(false);
    }
    // The same two messages, edited in place: nothing posted twice by the new owner.
    expect(slack.messages(OPS).filter((m) => m.threadTs === undefined && blocksText(m).includes(jobId))).toHaveLength(1);
    expect(slack.messages(APPROVALS).filter((m) => m.threadTs === undefined && blocksText(m).includes(jobId))).toHaveLength(1);
    expect(survivor?.slack?.notifier?.instance).toBeDefined();
  }, CRASH_TEST_MS);

  it('a command acknowledged by a process killed before it submitted runs once, on another instance', async () => {
    await startSurvivor();
    const a = await tappedServe();
    const tap = a.tap;
    const before = await jobCount();

    const triggerId = `${Date.now()}.1.${randomBytes(8).toString('hex')}`;
    tap.freezeAfter(triggerId);
    const ack = await slash(a.url, 'uptime all', triggerId);
    expect(ack.status).toBe(200);
    // The command's record went through, then nothing more from that process reached Redis.
    expect(tap.frozen).toBe(true);
    await kill(a.child);
    expect(await jobCount()).toBe(before);
    const inbox = new CommandInbox(c.runtime.redis, slackKeys('castellan'));
    expect(await inbox.pending()).toBeGreaterThanOrEqual(1);

    // The survivor's recoverer takes it up once it is stale, and the job runs with its message.
    const message = await until('the recovered job message', () => slack.messages(OPS).find((m) => m.threadTs === undefined && /uptime/.test(m.text) && /succeeded/.test(m.text)), 90_000);
    expect(blocksText(message)).toContain('Oscar Operator');
    expect(await jobCount()).toBe(before + 1);
    expect(await inbox.pending()).toBe(0);

    // Slack retrying the same command later makes no second job.
    const survivorUrl = survivor?.url ?? '';
    expect((await slash(survivorUrl, 'uptime all', triggerId)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await jobCount()).toBe(before + 1);
  }, CRASH_TEST_MS);

  it('an Approve click acknowledged by a process killed before it voted is recorded by another instance', async () => {
    await startSurvivor();
    const oscar = { subject: 'oscar', displayName: 'Oscar Operator', groups: ['ops'], roles: rolesForGroups(['ops'], LAB_ROLES), origin: 'cli' as const };
    const { job } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'node01', argv: ['true'] }, requester: oscar, replyTo: { kind: 'cli' } });
    expect(job.state).toBe('awaiting_approval');
    const card = await until('the approval card', () => slack.messages(APPROVALS).find((m) => m.threadTs === undefined && blocksText(m).includes(job.id) && blocksText(m).includes(ACTION_APPROVE)));
    const a = await tappedServe();

    const triggerId = `${Date.now()}.2.${randomBytes(8).toString('hex')}`;
    a.tap.freezeAfter(triggerId);
    const payload = blockActionsPayload({ actionId: ACTION_APPROVE, value: job.id, user: 'UAPRIL', channel: APPROVALS, messageTs: card.ts, responseUrl: slack.responseUrl(), team: slack.teamId, triggerId });
    const ack = await signedRequest(`${a.url}/slack/events`, interactiveBody(payload), SIGNING);
    expect(ack.status).toBe(200);
    // The click's record went through, then nothing more from that process reached Redis: no vote.
    expect(a.tap.frozen).toBe(true);
    await kill(a.child);
    expect((await c.runtime.ctx.store.get(job.id))?.votes).toEqual([]);

    // The survivor records April's approval; the job runs; the card shows the outcome.
    await until('the card edited to the outcome', () => (/succeeded/.test(card.text) ? true : undefined), 90_000);
    expect(blocksText(card)).toContain('Approved by April Approver');
    expect(card.blocks.some((b) => (b as { type?: string }).type === 'actions')).toBe(false);
    const done = await c.runtime.ctx.store.get(job.id);
    expect(done?.votes.map((v) => [v.subject, v.decision])).toEqual([['april', 'approve']]);
    // April is told, with why it came late.
    const told = await until('the approver told', () => slack.callsOf('chat.postEphemeral').find((call) => call.args.user === 'UAPRIL' && /approval is recorded/.test(JSON.stringify(call.args))));
    expect(JSON.stringify(told.args)).toMatch(/restarted after taking your click/);
    expect(await new CommandInbox(c.runtime.redis, slackKeys('castellan')).pending()).toBe(0);
  }, CRASH_TEST_MS);
});
