// A local stand-in for Slack, speaking its wire format, for tests and benchmarks: the Web API
// methods Castellan calls (form or JSON bodies, `{ok, error}` answers, 429 + Retry-After when
// told to), `response_url` endpoints, and a Socket Mode WebSocket endpoint handed out by
// apps.connections.open that delivers envelopes and records the acks. Every call is recorded
// so that tests assert on what a Slack workspace would actually have seen.
//
// The other direction (Slack → Castellan over HTTP) is `signedRequest()`: it signs the body the
// way Slack does (v0 HMAC over `v0:timestamp:body`), and can forge, age or post-date it.
import { createHmac, randomBytes } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

export interface ApiCall {
  readonly method: string;
  readonly args: Record<string, unknown>;
  /** The bearer token the caller used (xoxb- bot token, xapp- app token). */
  readonly token: string | undefined;
  readonly at: number;
  /** HTTP status answered (200, or 429 when rate limited). */
  readonly status: number;
}

export interface StoredMessage {
  readonly channel: string;
  readonly ts: string;
  readonly threadTs: string | undefined;
  text: string;
  blocks: unknown[];
  /** Every version of the message, oldest first (post, then each update). */
  readonly history: { text: string; blocks: unknown[]; at: number }[];
}

export interface Envelope {
  readonly envelope_id: string;
  readonly type: 'slash_commands' | 'interactive' | 'events_api';
  readonly payload: Record<string, unknown>;
  readonly accepts_response_payload: boolean;
  readonly retry_attempt?: number;
  readonly retry_reason?: string;
}

export interface Ack {
  readonly envelopeId: string;
  readonly payload: unknown;
  /** Milliseconds from sending the envelope to receiving its ack. */
  readonly afterMs: number;
}

export interface SlackStandIn {
  /** Base URL of the Web API, with the trailing slash (what `slack.api_url` is set to). */
  readonly apiUrl: string;
  readonly teamId: string;
  readonly botToken: string;
  readonly appToken: string;
  readonly calls: ApiCall[];
  /** Bodies POSTed to response URLs, by response URL id. */
  readonly responses: { id: string; body: Record<string, unknown>; at: number }[];
  readonly acks: Ack[];
  /** Every message in the workspace, in posting order. */
  messages(channel?: string): StoredMessage[];
  message(channel: string, ts: string): StoredMessage | undefined;
  callsOf(method: string): ApiCall[];
  /** Answer the next `times` calls of `method` with 429 and `Retry-After: retryAfterS`. */
  rateLimit(method: string, times: number, retryAfterS: number): void;
  /**
   * Hold the next call of `method` whose arguments `match`: it is answered (and applied) only
   * after release(), so calls made meanwhile land before it. `arrived` resolves when it came.
   */
  hold(method: string, match: (args: Record<string, unknown>) => boolean): { readonly arrived: Promise<void>; release(): void };
  /** A fresh response URL (as Slack puts in command and action payloads). */
  responseUrl(): string;
  /** Socket Mode connections currently open. */
  readonly sockets: number;
  /** Resolves once at least `count` Socket Mode clients completed the hello. */
  waitForSockets(count?: number, timeoutMs?: number): Promise<void>;
  /**
   * Send an envelope over Socket Mode (to the first open connection) and resolve with its ack.
   * Rejects when no ack arrives within `timeoutMs`.
   */
  deliver(type: Envelope['type'], payload: Record<string, unknown>, options?: { envelopeId?: string; retryAttempt?: number; timeoutMs?: number; connection?: number }): Promise<Ack>;
  stop(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** The Web API accepts form bodies (values may be JSON-encoded arrays/objects) and JSON bodies. */
function parseArgs(contentType: string | undefined, raw: string): Record<string, unknown> {
  if (raw === '') return {};
  if (contentType?.includes('application/json')) return JSON.parse(raw) as Record<string, unknown>;
  const args: Record<string, unknown> = {};
  for (const [k, v] of new URLSearchParams(raw)) {
    if (['blocks', 'attachments', 'view', 'metadata'].includes(k) && (v.startsWith('[') || v.startsWith('{'))) {
      try {
        args[k] = JSON.parse(v);
        continue;
      } catch {
        // a plain string after all
      }
    }
    args[k] = v;
  }
  return args;
}

export async function startSlackStandIn(options: { teamId?: string } = {}): Promise<SlackStandIn> {
  const teamId = options.teamId ?? 'T0LAB';
  const botToken = `xoxb-lab-${randomBytes(6).toString('hex')}`;
  const appToken = `xapp-1-lab-${randomBytes(6).toString('hex')}`;
  const calls: ApiCall[] = [];
  const responses: SlackStandIn['responses'] = [];
  const acks: Ack[] = [];
  const stored: StoredMessage[] = [];
  const limits = new Map<string, { times: number; retryAfterS: number }>();
  const holds: { method: string; match: (args: Record<string, unknown>) => boolean; arrive: () => void; released: Promise<void> }[] = [];
  const waiting = new Map<string, { sentAt: number; resolve: (ack: Ack) => void }>();
  const open = new Set<WebSocket>();
  let tsCounter = 0;
  const nextTs = (): string => {
    tsCounter += 1;
    return `${Math.floor(Date.now() / 1000)}.${String(tsCounter).padStart(6, '0')}`;
  };

  const server = http.createServer();
  const wss = new WebSocketServer({ noServer: true });
  let base = '';

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
    res.end(JSON.stringify(body));
  };

  /** Slack refuses the whole message when a block breaks its limits; so does the stand-in. */
  const badBlocks = (blocks: unknown[]): boolean =>
    blocks.length > 50 ||
    blocks.some((b) => {
      const block = b as { text?: { text?: unknown }; elements?: { text?: unknown }[] };
      const texts = [block.text?.text, ...(block.elements ?? []).map((e) => e.text)];
      return texts.some((t) => typeof t === 'string' && t.length > 3000);
    });

  const answer = (method: string, args: Record<string, unknown>, token: string | undefined): Record<string, unknown> => {
    const wantsApp = method === 'apps.connections.open';
    if (token === undefined) return { ok: false, error: 'not_authed' };
    if (wantsApp ? token !== appToken : token !== botToken) return { ok: false, error: wantsApp ? 'not_allowed_token_type' : 'invalid_auth' };
    switch (method) {
      case 'auth.test':
        return { ok: true, url: 'https://lab.slack.invalid/', team: 'Lab', user: 'castellan', team_id: teamId, user_id: 'UCASTELLAN', bot_id: 'BCASTELLAN' };
      case 'apps.connections.open':
        return { ok: true, url: `${base.replace(/^http/, 'ws')}/link/?ticket=${randomBytes(8).toString('hex')}` };
      case 'chat.postMessage': {
        const channel = typeof args.channel === 'string' ? args.channel : '';
        if (channel === '') return { ok: false, error: 'channel_not_found' };
        if (typeof args.text !== 'string' && !Array.isArray(args.blocks)) return { ok: false, error: 'no_text' };
        const text = typeof args.text === 'string' ? args.text : '';
        if (text.length > 40_000) return { ok: false, error: 'msg_too_long' };
        const blocks = Array.isArray(args.blocks) ? args.blocks : [];
        if (badBlocks(blocks)) return { ok: false, error: 'invalid_blocks' };
        const ts = nextTs();
        const threadTs = typeof args.thread_ts === 'string' ? args.thread_ts : undefined;
        stored.push({ channel, ts, threadTs, text, blocks, history: [{ text, blocks, at: Date.now() }] });
        return { ok: true, channel, ts, message: { type: 'message', text, blocks, ts, thread_ts: threadTs } };
      }
      case 'chat.update': {
        const channel = typeof args.channel === 'string' ? args.channel : '';
        const ts = typeof args.ts === 'string' ? args.ts : '';
        const found = stored.find((m) => m.channel === channel && m.ts === ts);
        if (!found) return { ok: false, error: 'message_not_found' };
        const blocks = Array.isArray(args.blocks) ? args.blocks : found.blocks;
        if (badBlocks(blocks)) return { ok: false, error: 'invalid_blocks' };
        if (typeof args.text === 'string') found.text = args.text;
        found.blocks = blocks;
        found.history.push({ text: found.text, blocks, at: Date.now() });
        return { ok: true, channel, ts, text: found.text };
      }
      case 'chat.delete': {
        const at = stored.findIndex((m) => m.channel === args.channel && m.ts === args.ts);
        if (at < 0) return { ok: false, error: 'message_not_found' };
        stored.splice(at, 1);
        return { ok: true, channel: args.channel, ts: args.ts };
      }
      case 'chat.postEphemeral':
        if (typeof args.user !== 'string' || typeof args.channel !== 'string') return { ok: false, error: 'user_not_in_channel' };
        return { ok: true, message_ts: nextTs() };
      case 'views.open':
        if (typeof args.trigger_id !== 'string') return { ok: false, error: 'invalid_trigger_id' };
        return { ok: true, view: { id: `V${randomBytes(4).toString('hex').toUpperCase()}`, ...(args.view as object) } };
      default:
        return { ok: false, error: 'unknown_method' };
    }
  };

  server.on('request', (req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://stand-in');
      const raw = await readBody(req);
      if (url.pathname.startsWith('/respond/')) {
        responses.push({ id: url.pathname.slice('/respond/'.length), body: JSON.parse(raw || '{}') as Record<string, unknown>, at: Date.now() });
        send(res, 200, { ok: true });
        return;
      }
      if (!url.pathname.startsWith('/api/') || req.method !== 'POST') {
        send(res, 404, { ok: false, error: 'unknown_method' });
        return;
      }
      const method = url.pathname.slice('/api/'.length);
      const args = parseArgs(req.headers['content-type'], raw);
      const header = req.headers.authorization;
      const token = header?.startsWith('Bearer ') ? header.slice(7) : typeof args.token === 'string' ? args.token : undefined;
      const hold = holds.find((h) => h.method === method && h.match(args));
      if (hold) {
        holds.splice(holds.indexOf(hold), 1);
        hold.arrive();
        await hold.released; // Slack applies it only now: it lands after whatever came meanwhile
      }
      const limit = limits.get(method);
      if (limit && limit.times > 0) {
        limit.times -= 1;
        calls.push({ method, args, token, at: Date.now(), status: 429 });
        send(res, 429, { ok: false, error: 'ratelimited' }, { 'retry-after': String(limit.retryAfterS) });
        return;
      }
      calls.push({ method, args, token, at: Date.now(), status: 200 });
      send(res, 200, answer(method, args, token));
    })().catch((error: unknown) => send(res, 500, { ok: false, error: String(error) }));
  });

  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    if (url.pathname !== '/link/' || !url.searchParams.get('ticket')) {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      open.add(ws);
      ws.on('close', () => open.delete(ws));
      ws.on('message', (data: Buffer) => {
        const message = JSON.parse(data.toString('utf8')) as { envelope_id?: string; payload?: unknown };
        if (typeof message.envelope_id !== 'string') return;
        const pending = waiting.get(message.envelope_id);
        const ack: Ack = { envelopeId: message.envelope_id, payload: message.payload, afterMs: pending ? Date.now() - pending.sentAt : -1 };
        acks.push(ack);
        if (pending) {
          waiting.delete(message.envelope_id);
          pending.resolve(ack);
        }
      });
      ws.send(JSON.stringify({ type: 'hello', num_connections: open.size, debug_info: { host: 'stand-in' }, connection_info: { app_id: 'ALAB' } }));
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    apiUrl: `${base}/api/`,
    teamId,
    botToken,
    appToken,
    calls,
    responses,
    acks,
    messages: (channel) => stored.filter((m) => channel === undefined || m.channel === channel),
    message: (channel, ts) => stored.find((m) => m.channel === channel && m.ts === ts),
    callsOf: (method) => calls.filter((c) => c.method === method),
    hold(method, match) {
      let arrive: () => void = () => undefined;
      let release: () => void = () => undefined;
      const arrived = new Promise<void>((r) => (arrive = r));
      const released = new Promise<void>((r) => (release = r));
      holds.push({ method, match, arrive, released });
      return { arrived, release };
    },
    rateLimit(method, times, retryAfterS) {
      limits.set(method, { times, retryAfterS });
    },
    responseUrl: () => `${base}/respond/${randomBytes(6).toString('hex')}`,
    get sockets() {
      return open.size;
    },
    async waitForSockets(count = 1, timeoutMs = 15_000) {
      const until = Date.now() + timeoutMs;
      while (open.size < count) {
        if (Date.now() > until) throw new Error(`no Socket Mode client connected within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    deliver(type, payload, o = {}) {
      const ws = [...open][o.connection ?? 0];
      if (!ws) return Promise.reject(new Error('no Socket Mode connection to deliver to'));
      const envelopeId = o.envelopeId ?? randomBytes(8).toString('hex');
      const envelope: Envelope = {
        envelope_id: envelopeId,
        type,
        payload,
        accepts_response_payload: type !== 'events_api',
        ...(o.retryAttempt !== undefined ? { retry_attempt: o.retryAttempt, retry_reason: 'timeout' } : {}),
      };
      return new Promise<Ack>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(envelopeId);
          reject(new Error(`envelope ${envelopeId} (${type}) was not acknowledged within ${o.timeoutMs ?? 10_000} ms`));
        }, o.timeoutMs ?? 10_000);
        waiting.set(envelopeId, {
          sentAt: Date.now(),
          resolve: (ack) => {
            clearTimeout(timer);
            resolve(ack);
          },
        });
        ws.send(JSON.stringify(envelope));
      });
    },
    async stop() {
      for (const ws of open) ws.terminate();
      wss.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

// --- Slack → Castellan over HTTP --------------------------------------------------------------

export interface SignOptions {
  /** Seconds since the epoch; default now. */
  readonly timestamp?: number;
  /** Sign with this secret instead (a forged request). */
  readonly secret?: string;
  /** Send this signature verbatim. */
  readonly signature?: string;
  /** X-Slack-Retry-Num (Slack's HTTP redelivery). */
  readonly retryNum?: number;
  readonly contentType?: string;
}

/** POST `body` to Castellan's /slack/events as Slack would, signed with `secret`. */
export async function signedRequest(url: string, body: string, secret: string, o: SignOptions = {}): Promise<{ status: number; text: string; ms: number }> {
  const timestamp = o.timestamp ?? Math.floor(Date.now() / 1000);
  const signature = o.signature ?? `v0=${createHmac('sha256', o.secret ?? secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
  const headers: Record<string, string> = {
    'content-type': o.contentType ?? 'application/x-www-form-urlencoded',
    'x-slack-request-timestamp': String(timestamp),
    'x-slack-signature': signature,
  };
  if (o.retryNum !== undefined) {
    headers['x-slack-retry-num'] = String(o.retryNum);
    headers['x-slack-retry-reason'] = 'http_timeout';
  }
  const started = Date.now();
  const response = await fetch(url, { method: 'POST', headers, body });
  return { status: response.status, text: await response.text(), ms: Date.now() - started };
}

export interface SlashCommand {
  readonly text: string;
  readonly user: string;
  readonly channel: string;
  readonly team?: string;
  readonly triggerId?: string;
  readonly responseUrl: string;
  readonly command?: string;
}

/** The fields of a slash command payload (form-encoded over HTTP, an object over Socket Mode). */
export function slashCommandPayload(c: SlashCommand): Record<string, string> {
  return {
    token: 'deprecated-verification-token',
    team_id: c.team ?? 'T0LAB',
    team_domain: 'lab',
    channel_id: c.channel,
    channel_name: 'ops',
    user_id: c.user,
    user_name: c.user.toLowerCase(),
    command: c.command ?? '/castellan',
    text: c.text,
    api_app_id: 'ALAB',
    is_enterprise_install: 'false',
    response_url: c.responseUrl,
    trigger_id: c.triggerId ?? `${Date.now()}.${randomBytes(4).readUInt32BE()}.${randomBytes(16).toString('hex')}`,
  };
}

export function formBody(fields: Record<string, string>): string {
  return new URLSearchParams(fields).toString();
}

export interface ButtonClick {
  readonly actionId: string;
  readonly value: string;
  readonly user: string;
  readonly channel: string;
  readonly messageTs: string;
  readonly team?: string;
  readonly responseUrl: string;
  /** Slack's id of this interaction (a fresh one when not given). */
  readonly triggerId?: string;
}

/** A block_actions payload as Slack sends it when someone presses a button in a message. */
export function blockActionsPayload(c: ButtonClick): Record<string, unknown> {
  return {
    type: 'block_actions',
    team: { id: c.team ?? 'T0LAB', domain: 'lab' },
    user: { id: c.user, username: c.user.toLowerCase(), name: c.user.toLowerCase(), team_id: c.team ?? 'T0LAB' },
    api_app_id: 'ALAB',
    token: 'deprecated-verification-token',
    container: { type: 'message', message_ts: c.messageTs, channel_id: c.channel, is_ephemeral: false },
    trigger_id: c.triggerId ?? `${Date.now()}.${randomBytes(4).readUInt32BE()}.${randomBytes(16).toString('hex')}`,
    channel: { id: c.channel, name: 'ops' },
    message: { type: 'message', ts: c.messageTs, text: '' },
    response_url: c.responseUrl,
    actions: [{ type: 'button', action_id: c.actionId, block_id: 'decide', value: c.value, action_ts: `${Date.now() / 1000}` }],
  };
}

/** A view_submission payload (the Deny reason modal submitted). */
export function viewSubmissionPayload(c: { user: string; team?: string; callbackId: string; privateMetadata: string; values: Record<string, Record<string, { type: string; value: string }>> }): Record<string, unknown> {
  return {
    type: 'view_submission',
    team: { id: c.team ?? 'T0LAB', domain: 'lab' },
    user: { id: c.user, username: c.user.toLowerCase(), name: c.user.toLowerCase(), team_id: c.team ?? 'T0LAB' },
    api_app_id: 'ALAB',
    token: 'deprecated-verification-token',
    trigger_id: `${Date.now()}.${randomBytes(4).readUInt32BE()}.${randomBytes(16).toString('hex')}`,
    view: {
      id: 'VLAB',
      type: 'modal',
      callback_id: c.callbackId,
      private_metadata: c.privateMetadata,
      state: { values: c.values },
      hash: 'lab',
    },
  };
}

/** Interactive payloads travel over HTTP as `payload=<json>` form bodies. */
export function interactiveBody(payload: Record<string, unknown>): string {
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}
