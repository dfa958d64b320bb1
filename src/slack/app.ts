// The Slack front end: a Bolt app in one of two connection modes, chosen in castellan.yaml.
//  - Socket Mode (slack.socket_mode, app-level token): Castellan dials out to Slack; no public
//    URL needed. Slack hands each event to one of the connected servers, so every instance
//    handles any command or button: all state is in Redis.
//  - HTTP (signing secret): Bolt's ExpressReceiver mounted on Castellan's own HTTP server at
//    /slack/events. Bolt checks the signature on the raw body and refuses requests older than
//    5 minutes; Castellan adds the refusal of timestamps more than 1 minute in the future.
// Both use slack.api_url for the Web API and for apps.connections.open.
//
// Every listener acks first and only then does the work, so the 3-second ack never waits on
// Redis, the IdP or planning.
import { App, ExpressReceiver, SocketModeReceiver, LogLevel, type AllMiddlewareArgs, type BlockAction, type Logger as BoltLogger, type SlackActionMiddlewareArgs } from '@slack/bolt';
import express, { type RequestHandler } from 'express';
import { CastellanError, errorMessage } from '../../config/errors.js';
import { isRedisUnavailable } from '../../queues/connections.js';
import type { Logger } from '../log.js';
import type { Runtime } from '../runtime.js';
import type { ReplyAddress } from '../../queues/records.js';
import type { Requester } from '../../auth/types.js';
import { ACTION_APPROVE, ACTION_DENY } from '../present/render/slack.js';
import { AfterAck } from './after-ack.js';
import { errorReply, handleSlash, SLASH_COMMAND } from './commands.js';
import { CommandInbox, type InboxEntry, type RecordedClick, type RecordedCommand } from './inbox.js';
import { slackKeys } from './keys.js';
import { linkRouter, linkUrl } from './link-page.js';
import { SlackLinks } from './links.js';
import { ACTION_LINK, denyReasonModal, ephemeral, linkPrompt, VIEW_DENY, type SlackMessage } from './messages.js';
import { SlackNotifier } from './notifier.js';

export const SLACK_EVENTS_PATH = '/slack/events';
/** Slack's own limit is 5 minutes in the past (checked by Bolt); a post-dated request is as suspect as a stale one. */
const MAX_FUTURE_SKEW_S = 60;
/** Commands worked on at once after their ack (see after-ack.ts). */
const AFTER_ACK_CONCURRENCY = 2;
/** How long the ack waits for the command to be recorded in Redis before it goes out anyway. */
const RECORD_BUDGET_MS = 2000;

export interface SlackFrontEndOptions {
  /** Run the notifier in this process (default true). */
  readonly notifier?: boolean;
  /** How often the notifier looks for jobs whose owner instance is gone (default 1 s). */
  readonly sweepMs?: number;
  /** Notifier heartbeat lifetime: how soon another instance takes over (default 5 s). */
  readonly leaseMs?: number;
  readonly editIntervalMs?: number;
  /** A recorded command untouched this long is taken up by another instance's recoverer (default 30 s). */
  readonly commandStaleMs?: number;
  /** How often the recoverer looks (default 5 s). */
  readonly recoverEveryMs?: number;
  /** Observes every Slack Web API call the notifier makes (benchmarks). */
  readonly onCall?: (method: string) => void;
}

export interface SlackFrontEnd {
  readonly app: App;
  /** Routes to mount on Castellan's HTTP app: /slack/events (HTTP mode) and the link page. */
  readonly router: express.Router;
  readonly notifier: SlackNotifier | undefined;
  readonly links: SlackLinks;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createSlackFrontEnd(runtime: Runtime, options: SlackFrontEndOptions = {}): SlackFrontEnd {
  const { config } = runtime;
  const settings = config.slack;
  if (!settings) throw new CastellanError('unavailable', 'slack is not configured in castellan.yaml');
  const botToken = config.secrets.slackBotToken;
  if (!botToken) throw new CastellanError('unavailable', 'slack.bot_token_env / bot_token_file is empty');
  const logger = runtime.logger.child({ component: 'slack' });
  const boltLogger = toBoltLogger(logger);
  const clientOptions = {
    slackApiUrl: settings.apiUrl,
    // The notifier coalesces and honours Retry-After itself; a sleeping client would hide it.
    rejectRateLimitedCalls: true,
    retryConfig: { retries: 2, factor: 2, minTimeout: 200, maxTimeout: 2000 },
  };
  const router = express.Router();
  const publicUrl = config.server.publicUrl;

  let receiver: ExpressReceiver | SocketModeReceiver;
  if (settings.socketMode) {
    const appToken = config.secrets.slackAppToken;
    if (!appToken) throw new CastellanError('unavailable', 'slack.socket_mode needs app_token_env / app_token_file');
    receiver = new SocketModeReceiver({ appToken, logger: boltLogger, installerOptions: { clientOptions: { slackApiUrl: settings.apiUrl } } });
  } else {
    const signingSecret = config.secrets.slackSigningSecret;
    if (!signingSecret) throw new CastellanError('unavailable', 'slack HTTP mode needs signing_secret_env / signing_secret_file');
    router.post(SLACK_EVENTS_PATH, refuseFutureTimestamps(logger));
    receiver = new ExpressReceiver({ signingSecret, router, endpoints: SLACK_EVENTS_PATH, logger: boltLogger, processBeforeResponse: false });
  }

  const app = new App({ token: botToken, receiver, logger: boltLogger, clientOptions, deferInitialization: true });
  const keys = slackKeys(runtime.ctx.keys.prefix);
  const oidc = config.auth.oidc;
  const links = new SlackLinks(runtime.redis, keys, {
    roles: config.auth.roles,
    ttlMs: settings.linkTtlMs,
    issuer: oidc?.issuer,
    clientId: oidc?.clientId,
    clientSecret: config.secrets.oidcClientSecret,
    scopes: [...new Set(['openid', ...(oidc?.scopes ?? []), 'offline_access'])],
    logger,
  });
  const places = { ...runtime.places, publicUrl, slackChannel: settings.approvalsChannel };
  const notifier =
    options.notifier === false
      ? undefined
      : new SlackNotifier({
          redis: runtime.redis,
          ctx: runtime.ctx,
          keys,
          client: app.client,
          publicUrl,
          approvalsChannel: settings.approvalsChannel,
          places,
          logger,
          sweepMs: options.sweepMs,
          leaseMs: options.leaseMs,
          editIntervalMs: options.editIntervalMs,
          onCall: options.onCall,
        });
  const deps = {
    service: runtime.service,
    tools: () => runtime.ctx.tools.list(),
    auth: runtime.auth,
    links,
    publicUrl,
    channels: settings.channels,
    places,
    onSubmitted: notifier ? (jobId: string) => notifier.track(jobId) : undefined,
    logger,
  };

  router.use(
    linkRouter({
      links,
      publicUrl,
      logger,
      onLinked: async (pending, link) => {
        if (pending.channel === undefined) return;
        await app.client.chat.postEphemeral({ channel: pending.channel, user: pending.user, text: `Linked: Castellan now acts for you as ${link.displayName} (${link.subject}).` });
      },
    }),
  );

  const afterAck = new AfterAck(AFTER_ACK_CONCURRENCY, logger);
  const inbox = new CommandInbox(runtime.redis, keys);

  /** Inbox entries this process took and has not finished (queued behind others, or at work). */
  const local = new Set<string>();
  /** Handle a recorded entry, then forget it. `recovered`: taken up after its instance died. */
  const work = async (entry: InboxEntry, recovered: boolean): Promise<void> => {
    try {
      if (entry.kind === 'approve') {
        if (!(await approveClick(entry, recovered))) return; // left for a recoverer to try again
      } else {
        await handleSlash(deps, entry, async (message) => {
          await answer(entry.responseUrl, recovered ? withRecoveryNote(message) : message);
        });
      }
      await inbox.done(entry.id);
    } finally {
      local.delete(entry.id);
    }
  };
  /** Take an entry here: it is kept away from the recoverers while it waits its turn and runs. */
  const take = (entry: InboxEntry, recovered: boolean): void => {
    local.add(entry.id);
    void afterAck.run(() => work(entry, recovered));
  };

  /**
   * Record an interaction before its ack (inbox.ts), then ack and handle it. The ack waits for
   * Redis at most RECORD_BUDGET_MS, so Slack's 3 s are kept even when Redis is slow; `ack` gets
   * the refusal to show when Redis does not answer (nothing will happen), `tell` answers later.
   */
  const receive = async (entry: InboxEntry, ack: (refusal?: SlackMessage) => Promise<void>, tell: (message: SlackMessage) => Promise<void>): Promise<void> => {
    const what = entry.kind === 'approve' ? 'your approval' : 'this command';
    const recording = inbox.record(entry);
    const outcome = await Promise.race([
      recording.then((fresh) => (fresh ? ('fresh' as const) : ('again' as const)), () => 'failed' as const),
      new Promise<'slow'>((resolve) => setTimeout(() => resolve('slow'), RECORD_BUDGET_MS).unref()),
    ]);
    if (outcome === 'failed') {
      await ack(ephemeral(`:warning: Castellan could not take ${what}: its Redis is not answering. Nothing was recorded; try again in a moment.`));
      return;
    }
    await ack();
    // A redelivery of an entry already recorded: its first delivery (or a recoverer) handles it.
    if (outcome === 'again') return;
    if (outcome === 'fresh') {
      take(entry, false);
      return;
    }
    // Slow Redis: the ack went out first; the entry is handled once its record is in.
    local.add(entry.id);
    void afterAck.run(async () => {
      const fresh = await recording.catch(() => undefined);
      if (fresh === undefined) {
        local.delete(entry.id);
        await tell(ephemeral(`:warning: Castellan could not record ${what} (Redis is not answering). Nothing was recorded; try again in a moment.`));
        return;
      }
      if (!fresh) {
        local.delete(entry.id);
        return;
      }
      await work(entry, false);
    });
  };
  // Still ours: refreshed well within the recoverers' stale time (a large plan or a backlog of
  // fifty commands can keep one waiting for many seconds).
  const touching = setInterval(() => {
    if (local.size > 0) void inbox.touch(local).catch(() => undefined);
  }, Math.max(500, Math.floor((options.commandStaleMs ?? 30_000) / 3)));
  touching.unref();

  /** Ephemeral answer through the command's response_url; a failure is logged, not retried. */
  const answer = async (responseUrl: string, message: SlackMessage): Promise<void> => {
    try {
      const res = await fetch(responseUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ response_type: 'ephemeral', replace_original: false, text: message.text, blocks: message.blocks }),
        signal: AbortSignal.timeout(10_000),
      });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
    } catch (error) {
      logger.warn({ err: errorMessage(error) }, 'could not answer a Slack command through its response_url');
    }
  };

  app.command(SLASH_COMMAND, async ({ ack, command }) => {
    const recorded: RecordedCommand = {
      kind: 'command',
      id: `${command.team_id}:${command.trigger_id}`,
      team: command.team_id,
      user: command.user_id,
      channel: command.channel_id,
      triggerId: command.trigger_id,
      text: command.text,
      responseUrl: command.response_url,
      at: Date.now(),
    };
    await receive(
      recorded,
      (refusal) => (refusal ? ack({ response_type: 'ephemeral', text: refusal.text }) : ack()),
      (message) => answer(recorded.responseUrl, message),
    );
  });

  /** Take up commands and clicks whose instance died between the ack and their end (inbox.ts). */
  const recover = async (): Promise<void> => {
    for (const entry of await inbox.takeStale(options.commandStaleMs ?? 30_000)) {
      if (local.has(entry.id)) continue; // ours, late in refreshing its stamp
      const what = entry.kind === 'approve' ? `an Approve click on job ${entry.jobId}` : 'a Slack command';
      logger.warn({ team: entry.team, slackUser: entry.user, channel: entry.channel, ageMs: Date.now() - entry.at }, `taking up ${what} its instance acknowledged but did not finish`);
      take(entry, true);
    }
  };
  let recoverer: NodeJS.Timeout | undefined;

  /** Who pressed a button, as the linked identity; undefined (and a link prompt sent) when not linked. */
  const clicker = async (team: string, user: string, channel: string | undefined, tell: (m: SlackMessage) => Promise<void>) => {
    const who = await links.lookup(team, user);
    if (who.kind === 'linked') return who.requester;
    const state = await links.begin(team, user, channel);
    await tell(linkPrompt(linkUrl(publicUrl, state), who.kind === 'expired' ? 'Your link expired.' : 'You are not linked yet.'));
    return undefined;
  };

  /**
   * A button press: ack at once, then act as the clicker's linked identity (a link prompt when
   * there is none); refusals from the job service come back to the clicker as ephemerals.
   */
  const onButton =
    (act: (press: { jobId: string; requester: Requester; via: ReplyAddress & { kind: 'slack' }; triggerId: string; tell: (m: SlackMessage) => Promise<void> }) => Promise<void>) =>
    async ({ ack, body, client }: SlackActionMiddlewareArgs<BlockAction> & AllMiddlewareArgs) => {
      await ack();
      const action = body.actions[0];
      const jobId = action && 'value' in action ? String(action.value) : '';
      const team = str(body.team?.id) ?? str(body.user.team_id) ?? '';
      const channel = str(body.channel?.id) ?? str((body.container as Record<string, unknown> | undefined)?.channel_id);
      const tell = ephemeralTo(client, channel, body.user.id);
      try {
        const requester = await clicker(team, body.user.id, channel, tell);
        if (!requester) return;
        await act({ jobId, requester, via: { kind: 'slack', channel: channel ?? '', user: body.user.id, team }, triggerId: str(body.trigger_id) ?? '', tell });
      } catch (error) {
        await tell(errorReply(error)).catch(() => undefined);
      }
    };

  // An Approve click is a vote: recorded before its ack like a command, so an instance that
  // dies after the ack loses no approval (another instance records it); a click Slack was not
  // acked for shows the approver Slack's own failure mark.
  app.action<BlockAction>(ACTION_APPROVE, async ({ ack, body, client }) => {
    const action = body.actions[0];
    const team = str(body.team?.id) ?? str(body.user.team_id) ?? '';
    const click: RecordedClick = {
      kind: 'approve',
      id: `${team}:${str(body.trigger_id) ?? `${body.user.id}:${action?.action_ts ?? Date.now()}`}`,
      team,
      user: body.user.id,
      channel: str(body.channel?.id) ?? str((body.container as Record<string, unknown> | undefined)?.channel_id) ?? '',
      jobId: action && 'value' in action ? String(action.value) : '',
      at: Date.now(),
    };
    const tell = ephemeralTo(client, click.channel, click.user);
    await receive(
      click,
      async (refusal) => {
        await ack();
        if (refusal) await tell(refusal).catch(() => undefined);
      },
      tell,
    );
  });

  /**
   * Record an approval as the clicker's linked identity and tell them the outcome (refusals
   * too). False when Redis did not answer: the entry stays for a recoverer to try again.
   */
  const approveClick = async (click: RecordedClick, recovered: boolean): Promise<boolean> => {
    const tell = ephemeralTo(app.client, click.channel, click.user);
    const note = (m: SlackMessage) => (recovered ? withRecoveryNote(m, 'your click') : m);
    let requester: Requester | undefined;
    try {
      requester = await clicker(click.team, click.user, click.channel, tell);
      if (!requester) return true;
      const via: ReplyAddress = { kind: 'slack', channel: click.channel, user: click.user, team: click.team };
      const job = await runtime.service.approve(click.jobId, requester, undefined, via);
      await tell(note(approvalRecorded(job)));
    } catch (error) {
      if (isRedisUnavailable(error)) {
        await tell(ephemeral(`:hourglass: Castellan's Redis is not answering; your approval of job \`${click.jobId}\` will be recorded when it is back.`)).catch(() => undefined);
        return false;
      }
      // Taken up again after a crash that came after the vote: the vote is there, say so.
      const voted = recovered && requester ? await runtime.service.get(click.jobId, requester).catch(() => undefined) : undefined;
      const mine = voted?.votes.some((v) => v.subject === requester?.subject && v.decision === 'approve');
      await tell(note(mine && voted ? approvalRecorded(voted) : errorReply(error))).catch(() => undefined);
    }
    return true;
  };

  app.action<BlockAction>(
    ACTION_DENY,
    onButton(async ({ jobId, requester, via, triggerId }) => {
      const job = await runtime.service.get(jobId, requester);
      const view = { ...denyReasonModal(job.id, job.tool), private_metadata: JSON.stringify({ jobId: job.id, channel: via.channel }) };
      await app.client.views.open({ trigger_id: triggerId, view: view as never });
    }),
  );

  app.action(ACTION_LINK, async ({ ack }) => {
    await ack(); // a URL button: the browser does the rest
  });

  app.view(VIEW_DENY, async ({ ack, body, view }) => {
    const meta = JSON.parse(view.private_metadata || '{}') as { jobId?: string; channel?: string };
    const reason = view.state.values.reason?.reason?.value ?? '';
    const team = str(body.team?.id) ?? str(body.user.team_id) ?? '';
    try {
      const who = await links.lookup(team, body.user.id);
      if (who.kind !== 'linked') {
        await ack({ response_action: 'errors', errors: { reason: 'You are not linked to Castellan: run /castellan link first.' } });
        return;
      }
      const via: ReplyAddress = { kind: 'slack', channel: meta.channel ?? '', user: body.user.id, team };
      await runtime.service.deny(meta.jobId ?? '', who.requester, reason.trim() || undefined, via);
      await ack();
    } catch (error) {
      // Shown in the modal, under the reason field.
      await ack({ response_action: 'errors', errors: { reason: errorMessage(error).slice(0, 240) } });
    }
  });

  app.event('app_mention', async ({ event, client }) => {
    await client.chat.postMessage({
      channel: event.channel,
      thread_ts: event.ts,
      text: `Hi! I take slash commands: \`${SLASH_COMMAND} help\` lists what I can do, \`${SLASH_COMMAND} link\` links your account.`,
    });
  });

  app.error(async (error) => {
    logger.warn({ err: errorMessage(error) }, 'Slack listener failed');
  });

  return {
    app,
    router,
    notifier,
    links,
    async start() {
      // Read the inventory now: a large one takes seconds of parsing that would otherwise block
      // the event loop, and every ack in flight with it, on the first command (bench/slack.ts).
      await runtime.ctx.inventory.current().catch((error: unknown) => logger.warn({ err: errorMessage(error) }, 'could not read the inventory yet'));
      await app.init();
      if (settings.socketMode) await app.start();
      await notifier?.start();
      await recover().catch((error: unknown) => logger.warn({ err: errorMessage(error) }, 'could not look for unfinished Slack commands'));
      recoverer = setInterval(() => void recover().catch((error: unknown) => logger.warn({ err: errorMessage(error) }, 'could not look for unfinished Slack commands')), options.recoverEveryMs ?? 5000);
      recoverer.unref();
      logger.info({ mode: settings.socketMode ? 'socket' : 'http', apiUrl: settings.apiUrl, approvalsChannel: settings.approvalsChannel }, `Slack front end ready${settings.socketMode ? '' : ` at ${SLACK_EVENTS_PATH}`}`);
    },
    async stop() {
      clearInterval(recoverer);
      clearInterval(touching);
      await notifier?.stop();
      // Commands already acked are finished, not dropped: Slack will not send them again.
      for (let i = 0; i < 100 && afterAck.pending > 0; i++) await new Promise((r) => setTimeout(r, 50));
      if (settings.socketMode) await app.stop().catch(() => undefined);
    },
  };
}

/** An answer to a command or click another instance acknowledged before it died. */
function withRecoveryNote(message: SlackMessage, what = 'this command'): SlackMessage {
  const note = `:recycle: Castellan restarted after taking ${what}; it has been handled now.`;
  return { text: `${note} ${message.text}`, blocks: [{ type: 'context', elements: [{ type: 'mrkdwn', text: note }] }, ...message.blocks] };
}

function approvalRecorded(job: { id: string; state: string }): SlackMessage {
  return ephemeral(`:ok_hand: Your approval is recorded · job \`${job.id}\` is ${job.state.replaceAll('_', ' ')}.`);
}

/** Answers only this person sees, in the channel they acted in (no channel: nowhere to say it). */
function ephemeralTo(client: App['client'], channel: string | undefined, user: string): (message: SlackMessage) => Promise<void> {
  return async (m) => {
    if (channel) await client.chat.postEphemeral({ channel, user, text: m.text, blocks: m.blocks });
  };
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** Refuse a request whose Slack timestamp lies more than a minute ahead (Bolt checks the past only). */
function refuseFutureTimestamps(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const stamp = Number(req.headers['x-slack-request-timestamp']);
    if (Number.isFinite(stamp) && stamp - Date.now() / 1000 > MAX_FUTURE_SKEW_S) {
      logger.warn({ skewS: Math.round(stamp - Date.now() / 1000) }, 'refused a Slack request timestamped in the future');
      res.status(401).send('x-slack-request-timestamp is in the future');
      return;
    }
    next();
  };
}

/** Bolt's logger interface on top of Castellan's pino logger (so redaction applies). */
function toBoltLogger(logger: Logger): BoltLogger {
  let level = LogLevel.INFO;
  const text = (parts: unknown[]) => parts.map((p) => (typeof p === 'string' ? p : errorMessage(p))).join(' ');
  return {
    debug: (...m: unknown[]) => logger.debug(text(m)),
    info: (...m: unknown[]) => logger.info(text(m)),
    warn: (...m: unknown[]) => logger.warn(text(m)),
    error: (...m: unknown[]) => logger.error(text(m)),
    setLevel: (l: LogLevel) => {
      level = l;
    },
    getLevel: () => level,
    setName: () => undefined,
  };
}

