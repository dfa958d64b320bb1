// The Slack front end over HTTP, end to end: real Bolt (ExpressReceiver) on Castellan's HTTP
// server, real signatures, the local Slack stand-in for the Web API, the lab OIDC provider for
// linking, real sshd nodes and the real job pipeline.
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { isFinal } from '../../queues/states.js';
import { LAB_ROLES, startLabOidc, type LabOidc } from '../../src/lab/oidc.js';
import { jobView } from '../../src/present/job-view.js';
import { planText } from '../../src/present/render/text.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { useCastellan } from '../support/castellan.js';
import { linkInBrowser } from '../support/slack-link.js';
import {
  blockActionsPayload,
  formBody,
  interactiveBody,
  signedRequest,
  slashCommandPayload,
  startSlackStandIn,
  viewSubmissionPayload,
  type SlackStandIn,
  type StoredMessage,
} from '../support/slack-standin.js';

const PUBLIC_URL = 'http://127.0.0.1:8080';
const SIGNING_SECRET = `lab-signing-${randomBytes(8).toString('hex')}`;
const OPS = 'COPS0001';
const APPROVALS = 'CAPPROVALS';
const ELSEWHERE = 'CRANDOM01';

let slack: SlackStandIn;
let oidc: LabOidc;
let server: RunningServer;
const dynamic: Record<string, unknown> = {};

beforeAll(async () => {
  slack = await startSlackStandIn();
  const castellanSecret = randomBytes(18).toString('base64url');
  // The lab's own clients: `castellan` may sign people in at <public_url>/slack/link/callback.
  oidc = await startLabOidc({ resource: PUBLIC_URL, accessTokenFormat: 'opaque', castellanClientSecret: castellanSecret });
  process.env.T_SLACK_SIGNING = SIGNING_SECRET;
  process.env.T_SLACK_BOT = slack.botToken;
  process.env.T_OIDC_SECRET = castellanSecret;
  Object.assign(dynamic, {
    slack: { socket_mode: false, signing_secret_env: 'T_SLACK_SIGNING', bot_token_env: 'T_SLACK_BOT', approvals_channel: APPROVALS, channels: [OPS, APPROVALS], api_url: slack.apiUrl, link_ttl: '1h' },
    auth: { oidc: { issuer: oidc.issuer, client_id: 'castellan', client_secret_env: 'T_OIDC_SECRET' }, roles: LAB_ROLES },
    policy: { approvals: { required: 1, allow_self_approval: false, expiry: '15m' } },
  });
});

const c = useCastellan({ nodes: 2, config: dynamic });

beforeAll(async () => {
  server = await startServer(c.runtime, { port: 0, slack: { sweepMs: 200, editIntervalMs: 400 } });
  // Seed links for the people whose browser sign-in is not the point of a test (the link flow
  // itself is tested below through the lab provider).
  const now = Date.now();
  const seed = async (user: string, username: string) => {
    const u = oidc.users.find((x) => x.username === username);
    if (!u) throw new Error(username);
    await server.slack?.links.store(slack.teamId, user, { subject: u.username, displayName: u.name, groups: u.groups, linkedAt: now, checkedAt: now });
  };
  await seed('UOSCAR', 'oscar');
  await seed('UAPRIL', 'april');
  await seed('UVICTOR', 'victor');
});

afterAll(async () => {
  await server?.close();
  await oidc?.stop();
  await slack?.stop();
});

const events = () => `${server.url}/slack/events`;

async function slash(text: string, user: string, channel = OPS, o: { triggerId?: string; retryNum?: number } = {}) {
  const responseUrl = slack.responseUrl();
  const payload = slashCommandPayload({ text, user, channel, responseUrl, triggerId: o.triggerId, team: slack.teamId });
  const res = await signedRequest(events(), formBody(payload), SIGNING_SECRET, { retryNum: o.retryNum });
  return { ...res, responseId: responseUrl.split('/').pop() ?? '', payload };
}

async function click(actionId: string, jobId: string, user: string, message: StoredMessage) {
  const payload = blockActionsPayload({ actionId, value: jobId, user, channel: message.channel, messageTs: message.ts, responseUrl: slack.responseUrl(), team: slack.teamId });
  return signedRequest(events(), interactiveBody(payload), SIGNING_SECRET);
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const replyTo = (responseId: string) => until(`the ephemeral reply ${responseId}`, () => slack.responses.find((r) => r.id === responseId)?.body);
const blocksText = (m: { blocks: unknown[] }) => JSON.stringify(m.blocks);
const hasButtons = (m: { blocks: unknown[] }) => m.blocks.some((b) => (b as { type?: string }).type === 'actions');
const jobCount = () => c.runtime.redis.zcard(c.runtime.ctx.keys.jobIndex());
const jobIdIn = (m: StoredMessage) => /job `(j[a-z0-9]+)`/.exec(blocksText(m))?.[1];

describe('Slack over HTTP: signatures', () => {
  it('refuses forged, stale and post-dated requests, and runs nothing', async () => {
    const before = await jobCount();
    const body = formBody(slashCommandPayload({ text: 'uptime all', user: 'UOSCAR', channel: OPS, responseUrl: slack.responseUrl(), team: slack.teamId }));
    const forged = await signedRequest(events(), body, SIGNING_SECRET, { secret: 'not-the-secret' });
    const stale = await signedRequest(events(), body, SIGNING_SECRET, { timestamp: Math.floor(Date.now() / 1000) - 6 * 60 });
    const future = await signedRequest(events(), body, SIGNING_SECRET, { timestamp: Math.floor(Date.now() / 1000) + 2 * 60 });
    const garbage = await signedRequest(events(), body, SIGNING_SECRET, { signature: 'v0=deadbeef' });
    for (const r of [forged, stale, future, garbage]) expect(r.status).toBe(401);
    expect(future.text).toMatch(/future/);
    await new Promise((r) => setTimeout(r, 500));
    expect(await jobCount()).toBe(before);
    expect(slack.responses).toHaveLength(0);
  });
});

describe('Slack over HTTP: linking', () => {
  it('asks an unlinked person to link, then links them through the OIDC provider (PKCE), once', async () => {
    const before = await jobCount();
    const first = await slash('uptime all', 'UALICE');
    expect(first.status).toBe(200);
    const prompt = await replyTo(first.responseId);
    expect(prompt.response_type).toBe('ephemeral');
    const linkUrl = /"url":"([^"]+)"/.exec(JSON.stringify(prompt.blocks))?.[1] ?? '';
    expect(linkUrl).toContain('/slack/link?state=');
    expect(await jobCount()).toBe(before);

    const page = await linkInBrowser({ linkUrl, lab: oidc, username: 'alice', serverUrl: server.url, publicUrl: PUBLIC_URL });
    expect(page.status).toBe(200);
    expect(page.html).toContain('Alice Admin');
    const link = await server.slack?.links.get(slack.teamId, 'UALICE');
    expect(link).toMatchObject({ subject: 'alice', displayName: 'Alice Admin', groups: ['admins'] });
    expect(link?.refreshToken).toBeTypeOf('string');
    const confirm = await until('the link confirmation', () => slack.callsOf('chat.postEphemeral').find((call) => call.args.user === 'UALICE'));
    expect(String(confirm.args.text)).toContain('Alice Admin');

    // The same link URL a second time (someone else who saw it) gets nothing.
    const replay = await linkInBrowser({ linkUrl, lab: oidc, username: 'mallory', serverUrl: server.url, publicUrl: PUBLIC_URL });
    expect(replay.status).toBe(400);
    expect((await server.slack?.links.get(slack.teamId, 'UALICE'))?.subject).toBe('alice');

    const whoami = await slash('whoami', 'UALICE');
    expect(JSON.stringify((await replyTo(whoami.responseId)).blocks)).toContain('Alice Admin');
  });

  it('refreshes groups after link_ttl with the refresh token, and asks to re-link when that fails', async () => {
    const links = server.slack?.links;
    if (!links) throw new Error('slack front end missing');
    const link = await links.get(slack.teamId, 'UALICE');
    if (!link) throw new Error('alice is not linked');
    await links.store(slack.teamId, 'UALICE', { ...link, groups: ['stale-group'], checkedAt: Date.now() - 2 * 3600_000 });
    const refreshed = await links.lookup(slack.teamId, 'UALICE');
    expect(refreshed.kind).toBe('linked');
    expect((await links.get(slack.teamId, 'UALICE'))?.groups).toEqual(['admins']);

    await links.store(slack.teamId, 'UMALLORY', { subject: 'mallory', displayName: 'Mallory', groups: ['admins'], linkedAt: 0, checkedAt: 0, refreshToken: 'not-a-refresh-token' });
    const expired = await slash('uptime all', 'UMALLORY');
    const prompt = await replyTo(expired.responseId);
    expect(JSON.stringify(prompt.blocks)).toMatch(/expired/);
    expect(await links.get(slack.teamId, 'UMALLORY')).toBeUndefined();
  });
});

describe('Slack over HTTP: commands', () => {
  it('acks before it enqueues, then edits one channel message through the job to its result', async () => {
    const before = await jobCount();
    // With Redis refusing writes, no job can be recorded, nor the command itself (it is written
    // before the ack, inbox.ts): the ack waits for that record only so long, then comes back.
    const pauser = new Redis(c.redis.url);
    await pauser.call('CLIENT', 'PAUSE', '4000', 'WRITE');
    const sent = await slash('uptime all', 'UOSCAR');
    const countAtAck = await jobCount();
    await pauser.call('CLIENT', 'UNPAUSE');
    pauser.disconnect();
    expect(sent.status).toBe(200);
    expect(sent.text).toBe('');
    expect(countAtAck).toBe(before);

    const message = await until('the job message', () => slack.messages(OPS).find((m) => m.threadTs === undefined && /uptime/.test(m.text)));
    const final = await until('the final edit', () => (/succeeded/.test(message.text) ? message : undefined));
    const text = blocksText(final);
    expect(text).toContain('Succeeded');
    expect(text).toMatch(/2\/2 hosts ok/);
    expect(text).toContain('Oscar Operator');
    // The tool's own table (uptime's result view), not raw output.
    expect(text).toMatch(/Uptime and load|load/);
    expect(text).toContain('node[01-02]');
    expect(hasButtons(final)).toBe(false);
    expect(final.history.length).toBeGreaterThanOrEqual(2);
    expect(final.history.length).toBeLessThan(12);
    const posted = slack.callsOf('chat.postMessage').find((call) => call.args.channel === OPS);
    expect(posted?.token).toBe(slack.botToken);

    const jobId = jobIdIn(final) ?? '';
    // One message per job, though the command handler and the feed both hand the job to the notifier.
    expect(slack.messages(OPS).filter((m) => m.threadTs === undefined && blocksText(m).includes(jobId))).toHaveLength(1);
    const job = await c.runtime.service.get(jobId, c.runtime.localRequester('cli'));
    expect(job.requester).toMatchObject({ subject: 'oscar', origin: 'slack' });
    const audit = (await readFile(`${c.dir}/audit.jsonl`, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(audit.find((r) => r.kind === 'request' && r.jobId === jobId)).toMatchObject({ subject: 'oscar', origin: 'slack', via: { kind: 'slack', team: slack.teamId, user: 'UOSCAR', channel: OPS } });
  });

  it('creates no second job when Slack retries the same command', async () => {
    const triggerId = `${Date.now()}.42.${randomBytes(8).toString('hex')}`;
    const before = await jobCount();
    const first = await slash('uptime all', 'UOSCAR', OPS, { triggerId });
    const retry = await slash('uptime all', 'UOSCAR', OPS, { triggerId, retryNum: 1 });
    expect([first.status, retry.status]).toEqual([200, 200]);
    await until('the job', async () => (await jobCount()) > before);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await jobCount()).toBe(before + 1);
  });

  it('creates one job and one approval card when Slack retries a command while the first delivery is still being handled, on two instances', async () => {
    // Slack retries when the ack is late, so a retry can arrive while the first delivery is in
    // flight, and behind a load balancer at another instance. Both share Redis only. Two layers
    // hold: the inbox records a delivery once (atomic), and the submission's idempotency key is
    // Slack's trigger id (with both removed this test sees four jobs).
    const other = await startServer(c.runtime, { port: 0, slack: { sweepMs: 200, editIntervalMs: 400 } });
    try {
      const triggerId = `${Date.now()}.43.${randomBytes(8).toString('hex')}`;
      const marker = `concurrent-retry-${randomBytes(4).toString('hex')}`;
      const text = `exec node01 -- echo ${marker}`;
      const before = await jobCount();
      const payload = slashCommandPayload({ text, user: 'UOSCAR', channel: OPS, responseUrl: slack.responseUrl(), team: slack.teamId, triggerId });
      const deliveries = await Promise.all([
        signedRequest(events(), formBody(payload), SIGNING_SECRET),
        signedRequest(`${other.url}/slack/events`, formBody(payload), SIGNING_SECRET, { retryNum: 1 }),
        signedRequest(events(), formBody(payload), SIGNING_SECRET, { retryNum: 2 }),
        signedRequest(`${other.url}/slack/events`, formBody(payload), SIGNING_SECRET, { retryNum: 3 }),
      ]);
      expect(deliveries.map((d) => d.status)).toEqual([200, 200, 200, 200]);
      const card = await until('the approval card', () => slack.messages(APPROVALS).find((m) => m.threadTs === undefined && blocksText(m).includes(marker)));
      await new Promise((r) => setTimeout(r, 2000));
      expect(await jobCount()).toBe(before + 1);
      const jobId = jobIdIn(card) ?? '';
      expect((await c.runtime.service.get(jobId, c.runtime.localRequester('cli'))).state).toBe('awaiting_approval');
      // One request message and one card, though two instances' notifiers watch the same jobs.
      expect(slack.messages(OPS).filter((m) => m.threadTs === undefined && blocksText(m).includes(marker))).toHaveLength(1);
      expect(slack.messages(APPROVALS).filter((m) => m.threadTs === undefined && blocksText(m).includes(marker))).toHaveLength(1);
      const audit = (await readFile(`${c.dir}/audit.jsonl`, 'utf8')).split('\n').filter((l) => l.includes(marker));
      expect(audit.filter((l) => (JSON.parse(l) as { kind?: string }).kind === 'request')).toHaveLength(1);
      await c.runtime.service.cancel(jobId, c.runtime.localRequester('cli'));
    } finally {
      await other.close();
    }
  });

  it('answers bad input with an ephemeral error naming the field, and runs nothing', async () => {
    const before = await jobCount();
    const cases: [string, RegExp][] = [
      ['uptme all', /uptime/],
      ['journal all --lines abc', /lines/],
      ['uptime nodee1', /targets/],
      ["exec all --command 'rm -rf /' --timeout soon", /timeout/],
      ['uptime "all', /quote/],
    ];
    for (const [text, field] of cases) {
      const sent = await slash(text, 'UOSCAR');
      const reply = await replyTo(sent.responseId);
      expect(reply.response_type).toBe('ephemeral');
      expect(JSON.stringify(reply.blocks)).toMatch(field);
      expect(JSON.stringify(reply.blocks)).toContain(':warning:');
    }
    expect(await jobCount()).toBe(before);
  });

  it('refuses commands outside slack.channels', async () => {
    const before = await jobCount();
    const sent = await slash('uptime all', 'UOSCAR', ELSEWHERE);
    expect(JSON.stringify((await replyTo(sent.responseId)).blocks)).toMatch(/does not take commands in this channel/);
    expect(await jobCount()).toBe(before);
  });

  it('lists tools, jobs and one job', async () => {
    const help = await replyTo((await slash('help', 'UOSCAR')).responseId);
    expect(JSON.stringify(help.blocks)).toContain('uptime');
    const toolHelp = await replyTo((await slash('help journal', 'UOSCAR')).responseId);
    expect(JSON.stringify(toolHelp.blocks)).toContain('--lines');
    const jobs = await replyTo((await slash('jobs', 'UVICTOR')).responseId);
    expect(JSON.stringify(jobs.blocks)).toContain('uptime');
  });
});

describe('Slack over HTTP: approvals', () => {
  let jobId = '';
  let card: StoredMessage;
  let request: StoredMessage;

  it('posts a request awaiting approval with the exact command, in the channel and the approvals channel', async () => {
    // Alice is an admin (so also an approver): only the no-self-approval rule can stop her.
    await slash('exec all -- seq 1 4000', 'UALICE');
    request = await until('the request message', () => slack.messages(OPS).find((m) => /seq/.test(blocksText(m)) && m.threadTs === undefined));
    jobId = jobIdIn(request) ?? '';
    card = await until('the approval card', () => slack.messages(APPROVALS).find((m) => blocksText(m).includes(jobId)));
    for (const m of [request, card]) {
      expect(hasButtons(m)).toBe(true);
      expect(blocksText(m)).toContain('seq 1 4000');
      expect(blocksText(m)).toMatch(/0 of 1 approval/);
    }
    const buttons = JSON.stringify(card.blocks.find((b) => (b as { type?: string }).type === 'actions'));
    expect(buttons).toContain('"style":"primary"');
    expect(buttons).toContain('"style":"danger"');
    expect(buttons).toContain('"confirm"');
  });

  it('refuses the requester, a viewer and an unlinked person, on the server', async () => {
    const ephemeralsBefore = slack.callsOf('chat.postEphemeral').length;
    for (const user of ['UALICE', 'UOSCAR', 'UVICTOR', 'UNOBODY']) expect((await click('castellan_approve', jobId, user, card)).status).toBe(200);
    const answers = await until('four refusals', () => {
      const calls = slack.callsOf('chat.postEphemeral').slice(ephemeralsBefore);
      return calls.length >= 4 ? calls : undefined;
    });
    const byUser = (u: string) => JSON.stringify(answers.find((a) => a.args.user === u)?.args);
    expect(byUser('UALICE')).toMatch(/someone else must approve/);
    expect(byUser('UOSCAR')).toMatch(/approver role; you have viewer, operator/);
    expect(byUser('UVICTOR')).toMatch(/approver role; you have viewer/);
    expect(byUser('UNOBODY')).toMatch(/Link your account/);
    const job = await c.runtime.service.get(jobId, c.runtime.localRequester('cli'));
    expect(job.state).toBe('awaiting_approval');
    expect(job.votes).toHaveLength(0);
  });

  it('runs the job on an approver\'s click, once, and edits every card to the outcome without buttons', async () => {
    const [a, b] = await Promise.all([click('castellan_approve', jobId, 'UAPRIL', card), click('castellan_approve', jobId, 'UAPRIL', request)]);
    expect([a.status, b.status]).toEqual([200, 200]);
    await until('the final card', () => (/succeeded/.test(card.text) && /succeeded/.test(request.text) ? true : undefined));
    const job = await c.runtime.service.get(jobId, c.runtime.localRequester('cli'));
    expect(job.votes.map((v) => v.subject)).toEqual(['april']);
    for (const m of [card, request]) {
      expect(hasButtons(m)).toBe(false);
      expect(blocksText(m)).toMatch(/Approved by April Approver/);
    }
    // 4000 lines do not fit in a message: a thread reply carries them, cut with a clear marker.
    const reply = await until('the output thread reply', () => slack.messages(OPS).find((m) => m.threadTs === request.ts));
    expect(reply.text).toContain('node[01-02] (2):\n    1\n    2\n    3\n');
    expect(reply.text).toMatch(/truncated: \d+ more characters/);
    expect(reply.text).toContain(`castellan job ${jobId}`);
    expect(reply.text.length).toBeLessThan(40_000);
  });

  it('asks for a reason on Deny and shows who denied and why', async () => {
    await slash("exec all -- echo 'not today'", 'UOSCAR');
    const message = await until('the request', () => slack.messages(OPS).find((m) => /not today/.test(blocksText(m)) && hasButtons(m)));
    const id = jobIdIn(message) ?? '';
    const denyCard = await until('the card', () => slack.messages(APPROVALS).find((m) => blocksText(m).includes(id)));
    await click('castellan_deny', id, 'UAPRIL', denyCard);
    const opened = await until('the reason modal', () => slack.callsOf('views.open').find((call) => JSON.stringify(call.args.view).includes(id)));
    const view = opened.args.view as { callback_id: string; private_metadata: string };
    const submission = viewSubmissionPayload({ user: 'UAPRIL', team: slack.teamId, callbackId: view.callback_id, privateMetadata: view.private_metadata, values: { reason: { reason: { type: 'plain_text_input', value: 'change freeze\u001b[2J' } } } });
    const submitted = await signedRequest(events(), interactiveBody(submission), SIGNING_SECRET);
    expect(submitted.status).toBe(200);
    await until('the denied card', () => (/denied/.test(denyCard.text) && /denied/.test(message.text) ? true : undefined));
    for (const m of [denyCard, message]) {
      expect(hasButtons(m)).toBe(false);
      expect(blocksText(m)).toContain('Denied by April Approver');
      // The reason is shown with its control characters visible, never interpreted.
      expect(blocksText(m)).toContain('change freeze\\\\x1b[2J');
    }
  });

  it('shows requests from other front ends, and edits the card when the CLI decides', async () => {
    const cliJob = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'all', argv: ['true'] }, requester: c.runtime.localRequester('cli'), replyTo: { kind: 'cli' } });
    const cliCard = await until('the card for the CLI request', () => slack.messages(APPROVALS).find((m) => blocksText(m).includes(cliJob.job.id)));
    expect(hasButtons(cliCard)).toBe(true);
    expect(blocksText(cliCard)).toContain('via cli');
    await c.runtime.service.cancel(cliJob.job.id, c.runtime.localRequester('cli'), 'not needed');
    await until('the cancelled card', () => (/cancelled/.test(cliCard.text) ? true : undefined));
    expect(hasButtons(cliCard)).toBe(false);
    expect(blocksText(cliCard)).toContain('not needed');
  });

  it('puts a plan too long for the card whole into the card\'s thread, and shows the buttons only after it', async () => {
    // 40 kB of script with a mention, an escape sequence and a fence in it: an approver must see every byte.
    const script = Array.from({ length: 1200 }, (_, i) => `echo "step ${i} <!channel> \u001b[2J \`\`\` done"`).join('\n');
    const { job } = await c.runtime.service.submit({ tool: 'run_script', input: { targets: 'all', script }, requester: c.runtime.localRequester('cli'), replyTo: { kind: 'cli' } });
    const card = await until('the card', () => slack.messages(APPROVALS).find((m) => m.threadTs === undefined && blocksText(m).includes(job.id)));
    await until('the buttons', () => (hasButtons(card) ? true : undefined));
    // Posted without buttons; the buttons came with the edit after the last plan part.
    expect(hasButtons({ blocks: card.history[0]?.blocks ?? [] })).toBe(false);
    const parts = slack.messages(APPROVALS).filter((m) => m.threadTs === card.ts);
    expect(parts.length).toBeGreaterThan(1);
    const lastPart = slack.callsOf('chat.postMessage').filter((call) => call.args.thread_ts === card.ts).at(-1);
    const buttonsEdit = slack.callsOf('chat.update').find((call) => call.args.ts === card.ts && JSON.stringify(call.args.blocks).includes('castellan_approve'));
    expect(lastPart && buttonsEdit && buttonsEdit.at >= lastPart.at).toBe(true);
    expect(blocksText(card)).toMatch(/shown whole, nothing left out/);
    // Read back as Slack shows it (entities undone): exactly the terminal's plan card and the plan hash.
    const fenced = parts
      .flatMap((m) => m.blocks.map((b) => (b as { text?: { text?: string } }).text?.text ?? ''))
      .flatMap((t) => [...t.matchAll(/```([\s\S]*?)```/g)].map((x) => x[1] ?? ''))
      .join('')
      .replaceAll('\\x60\\x60\\x60', '```')
      .replaceAll('&lt;', '<')
      .replaceAll('&gt;', '>')
      .replaceAll('&amp;', '&');
    const view = jobView(await c.runtime.service.get(job.id, c.runtime.localRequester('cli')));
    expect(fenced).toBe(`${planText(view.plan, { color: false })}\nplan hash: ${view.plan_hash}`);
    expect(fenced).toContain('echo "step 1199 <!channel> \\x1b[2J ``` done"');
    for (const m of [card, ...parts]) expect(blocksText(m)).not.toContain('<!channel>');
    await c.runtime.service.cancel(job.id, c.runtime.localRequester('cli'), 'plan read');
    await until('the cancelled card', () => (/cancelled/.test(card.text) ? true : undefined));
    expect(hasButtons(card)).toBe(false);
  });

  it('honours Retry-After when Slack rate-limits edits', async () => {
    slack.rateLimit('chat.update', 1, 2);
    await slash('uptime all', 'UOSCAR');
    const limited = await until('a 429', () => slack.calls.find((call) => call.method === 'chat.update' && call.status === 429));
    const next = await until('the next call after the 429', () => slack.calls.find((call) => call.at > limited.at && (call.method === 'chat.update' || call.method === 'chat.postMessage')));
    expect(next.at - limited.at).toBeGreaterThanOrEqual(1900);
  });
});

describe('Slack over HTTP: an inventory change', () => {
  it('acks commands while a large changed inventory is read, and plans them on the new one', async () => {
    const original = await readFile(c.lab.inventoryFile, 'utf8');
    const doc = parse(original) as { all: { children: Record<string, unknown> } };
    // Thousands of hosts (never contacted) make the file large enough to be read off the event
    // loop (config/yaml-tree.ts); `fresh` exists only in the new version.
    const bulk: Record<string, unknown> = {};
    for (let i = 1; i <= 2000; i++) bulk[`bulk${String(i).padStart(4, '0')}`] = { ansible_host: '192.0.2.1', castellan_labels: { rack: `r${i % 20}` } };
    doc.all.children.bulk = { hosts: bulk };
    doc.all.children.fresh = { hosts: { node01: null } };
    try {
      await writeFile(c.lab.inventoryFile, stringify(doc, { nullStr: '' }));
      const before = await jobCount();
      const sent = await Promise.all(Array.from({ length: 6 }, () => slash('list_nodes fresh', 'UOSCAR')));
      for (const s of sent) {
        expect(s.status).toBe(200);
        expect(s.text).toBe('');
      }
      // Every command was planned on the new inventory: `fresh` resolved, to node01 alone.
      const keys = new Set(sent.map((s) => `slack:${slack.teamId}:${s.payload.trigger_id}`));
      const jobs = await until('the six jobs, ended', async () => {
        const found = (await c.runtime.ctx.store.list(50)).filter((j) => j.idempotencyKey !== undefined && keys.has(j.idempotencyKey));
        return found.length === keys.size && found.every((j) => isFinal(j.state)) ? found : undefined;
      }, 90_000);
      expect(await jobCount()).toBe(before + 6);
      for (const job of jobs) {
        expect(job.state).toBe('succeeded');
        expect((job.result?.data as { nodes: { name: string }[] }).nodes.map((n) => n.name)).toEqual(['node01']);
      }
    } finally {
      await writeFile(c.lab.inventoryFile, original);
    }
  });
});
