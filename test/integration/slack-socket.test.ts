// The Slack front end in Socket Mode, end to end: real Bolt (SocketModeReceiver and
// @slack/socket-mode) dialling the local stand-in through apps.connections.open, envelopes
// acknowledged over the WebSocket, two Castellan instances sharing one Redis (Slack gives each
// envelope to one connection, so either must handle anything).
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load.js';
import { rolesForGroups } from '../../auth/roles.js';
import { LAB_ROLES } from '../../src/lab/oidc.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { createSlackFrontEnd, type SlackFrontEnd } from '../../src/slack/app.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { useCastellan } from '../support/castellan.js';
import { blockActionsPayload, slashCommandPayload, startSlackStandIn, type SlackStandIn, type StoredMessage } from '../support/slack-standin.js';

const OPS = 'COPS0002';
const APPROVALS = 'CAPPROVE2';

let slack: SlackStandIn;
let server: RunningServer;
let second: { runtime: Runtime; slack: SlackFrontEnd } | undefined;
const dynamic: Record<string, unknown> = {};

beforeAll(async () => {
  slack = await startSlackStandIn();
  process.env.T_SOCKET_BOT = slack.botToken;
  process.env.T_SOCKET_APP = slack.appToken;
  Object.assign(dynamic, {
    slack: { socket_mode: true, app_token_env: 'T_SOCKET_APP', bot_token_env: 'T_SOCKET_BOT', approvals_channel: APPROVALS, api_url: slack.apiUrl },
    auth: { roles: LAB_ROLES },
  });
});

const c = useCastellan({ nodes: 1, config: dynamic });

beforeAll(async () => {
  server = await startServer(c.runtime, { port: 0, slack: { sweepMs: 200, editIntervalMs: 300 } });
  // A second Castellan server on the same Redis and config: another process in production.
  const runtime = await createRuntime(await loadConfig(c.configFile), { mode: 'server', logger: c.runtime.logger });
  const front = createSlackFrontEnd(runtime, { sweepMs: 200, editIntervalMs: 300 });
  await front.start();
  second = { runtime, slack: front };
  await slack.waitForSockets(2);
  const now = Date.now();
  for (const [user, subject, name, groups] of [
    ['UOSCAR', 'oscar', 'Oscar Operator', ['ops']],
    ['UAPRIL', 'april', 'April Approver', ['leads']],
  ] as const) {
    await front.links.store(slack.teamId, user, { subject, displayName: name, groups: [...groups], linkedAt: now, checkedAt: now });
  }
});

afterAll(async () => {
  await second?.slack.stop();
  await second?.runtime.close();
  await server?.close();
  await slack?.stop();
});

const jobCount = () => c.runtime.redis.zcard(c.runtime.ctx.keys.jobIndex());
const blocksText = (m: { blocks: unknown[] }) => JSON.stringify(m.blocks);

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('Slack in Socket Mode', () => {
  it('opens its connections through apps.connections.open with the app token, at slack.api_url', () => {
    const opens = slack.callsOf('apps.connections.open');
    expect(opens.length).toBeGreaterThanOrEqual(2);
    for (const call of opens) expect(call.token).toBe(slack.appToken);
    expect(slack.callsOf('auth.test').every((call) => call.token === slack.botToken)).toBe(true);
  });

  it('acks a slash command envelope, then runs it; a redelivery creates no second job', async () => {
    const before = await jobCount();
    const payload = slashCommandPayload({ text: 'uptime all', user: 'UOSCAR', channel: OPS, responseUrl: slack.responseUrl(), team: slack.teamId });
    const ack = await slack.deliver('slash_commands', payload, { envelopeId: 'env-cmd-1', connection: 0 });
    expect(ack.envelopeId).toBe('env-cmd-1');
    // Redelivered (same envelope, retry_attempt 1) to the other instance, as Slack does when an ack is late.
    const again = await slack.deliver('slash_commands', payload, { envelopeId: 'env-cmd-1', retryAttempt: 1, connection: 1 });
    expect(again.envelopeId).toBe('env-cmd-1');
    const message = await until('the job message', () => slack.messages(OPS).find((m) => /succeeded/.test(m.text) && /uptime/.test(m.text)));
    expect(blocksText(message)).toContain('Oscar Operator');
    await new Promise((r) => setTimeout(r, 1000));
    expect(await jobCount()).toBe(before + 1);
    // One notifier writes: one message for the job, whichever instance handled the command.
    expect(slack.messages(OPS).filter((m) => m.threadTs === undefined)).toHaveLength(1);
  });

  it('handles a button pressed on the instance that did not take the command', async () => {
    await slack.deliver('slash_commands', slashCommandPayload({ text: 'exec all -- hostname', user: 'UOSCAR', channel: OPS, responseUrl: slack.responseUrl(), team: slack.teamId }), { connection: 1 });
    const card = await until('the approval card', () => slack.messages(APPROVALS).find((m) => /hostname/.test(blocksText(m))));
    const jobId = /job `(j[a-z0-9]+)`/.exec(blocksText(card))?.[1] ?? '';
    // Exactly one of the two instances owns the job's messages (the only one that edits them).
    const owners = [server.slack?.notifier, second?.slack.notifier].filter((n) => n?.watching.includes(jobId));
    expect(owners).toHaveLength(1);
    expect(await c.runtime.redis.get(`castellan:slack:owner:${jobId}`)).toBe(owners[0]?.instance);
    const click = blockActionsPayload({ actionId: 'castellan_approve', value: jobId, user: 'UAPRIL', channel: card.channel, messageTs: card.ts, responseUrl: slack.responseUrl(), team: slack.teamId });
    const ack = await slack.deliver('interactive', click, { connection: 0 });
    expect(ack.afterMs).toBeGreaterThanOrEqual(0);
    const done = await until('the decided card', (): StoredMessage | undefined => (/succeeded/.test(card.text) ? card : undefined));
    expect(blocksText(done)).toContain('Approved by April Approver');
    expect(done.blocks.some((b) => (b as { type?: string }).type === 'actions')).toBe(false);
  });

  it('edits a card again when an instance that lost the job lands an older edit after the new owner\'s', async () => {
    const oscar = { subject: 'oscar', displayName: 'Oscar Operator', groups: ['ops'], roles: rolesForGroups(['ops'], LAB_ROLES), origin: 'cli' as const };
    const april = { subject: 'april', displayName: 'April Approver', groups: ['leads'], roles: rolesForGroups(['leads'], LAB_ROLES), origin: 'cli' as const };
    // The job runs for a while, so the owner's next edit (held below) still shows it unfinished.
    const { job } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'node01', argv: ['sleep', '5'] }, requester: oscar, replyTo: { kind: 'cli' } });
    const card = await until('the card with its buttons', () => slack.messages(APPROVALS).find((m) => m.threadTs === undefined && blocksText(m).includes(job.id) && blocksText(m).includes('castellan_approve')));
    const ownerKey = `castellan:slack:owner:${job.id}`;
    const owner = await until('the card\'s owner', async () => (await c.runtime.redis.get(ownerKey)) ?? undefined);
    const other = [server.slack?.notifier, second?.slack.notifier].find((n) => n !== undefined && n.instance !== owner);
    // The owner's next edit of the card (the approval) is on its way to Slack, and held there…
    const held = slack.hold('chat.update', (args) => args.ts === card.ts);
    await c.runtime.service.approve(job.id, april);
    await held.arrived;
    // …while the other instance takes the job over (the owner looked gone) and shows its end.
    await c.runtime.redis.set(ownerKey, other?.instance ?? '');
    await until('the card showing the outcome', () => (/succeeded/.test(card.text) ? true : undefined), 60_000);
    const shownEnd = card.history.length;
    held.release();
    // The older edit lands last; its sender finds it lost the job and has the card edited again.
    // (Wait for the older edit itself: the new owner may edit the card again meanwhile.)
    await until('the older edit landed and was undone', () => (card.history.slice(shownEnd).some((h) => !/succeeded/.test(h.text)) && /succeeded/.test(card.text) ? true : undefined), 60_000);
    expect(card.history.slice(shownEnd).some((h) => !/succeeded/.test(h.text))).toBe(true);
    expect(blocksText(card)).toContain('Approved by April Approver');
  }, 120_000);

  it('acks events_api envelopes and answers a mention in its thread', async () => {
    const ack = await slack.deliver('events_api', {
      token: 'deprecated',
      team_id: slack.teamId,
      api_app_id: 'ALAB',
      type: 'event_callback',
      event_id: `Ev${randomBytes(4).toString('hex')}`,
      event_time: Math.floor(Date.now() / 1000),
      event: { type: 'app_mention', user: 'UOSCAR', text: '<@UCASTELLAN> hi', ts: '1700000000.000100', channel: OPS, event_ts: '1700000000.000100' },
    });
    expect(ack.envelopeId).toBeTypeOf('string');
    const reply = await until('the mention reply', () => slack.messages(OPS).find((m) => m.threadTs === '1700000000.000100'));
    expect(reply.text).toContain('/castellan help');
  });
});
