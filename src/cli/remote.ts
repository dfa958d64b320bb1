// The CLI's remote mode: the same job operations as the local JobService, over Castellan's
// HTTP API (`castellan --server URL …`). Requests carry the operator's OIDC access token; the
// server derives the origin from the client that token was issued to (auth.clients), so a
// token from the castellan-cli client is recorded with origin `cli`. Errors come back as
// CastellanErrors with the server's code and message, so the CLI prints and exits the same
// way in both modes.
import { FINAL_STATES } from '../../queues/states.js';
import { sleep } from '../../queues/sleep.js';
import { readFile } from 'node:fs/promises';
import type { Requester, Role } from '../../auth/types.js';
import type { StampedEvent, JobEvent } from '../../queues/events.js';
import type { JobState } from '../../queues/states.js';
import { CastellanError, ERROR_CODES, type ErrorCode } from '../../config/errors.js';
import type { EventView, JobView, OutputPage } from '../present/job-view.js';
import type { JobClient } from './local.js';
import type { LinesOptions as LinesRequest, OutputLines } from '../present/output-lines.js';
import type { JobListPage as ListPage, JobListRequest } from '../present/job-list.js';
import type { AuditListAnswer, AuditListRequest } from '../present/audit-list.js';

export const TOKEN_ENV = 'CASTELLAN_TOKEN';

/** How long the server may hold one events request open. */
const LONG_POLL_MS = 10_000;

export interface RemoteClientOptions {
  /** Castellan's base URL, e.g. https://castellan.example (the API is under /api/v1). */
  readonly server: string;
  /** OIDC access token for Castellan's audience. Sent only to `server`. */
  readonly token: string;
  /** Per-request time limit (default 30 s). */
  readonly timeoutMs?: number;
  /** Plain http to a non-loopback host would expose the token; refused unless set. */
  readonly allowInsecure?: boolean;
  readonly fetch?: typeof fetch;
}

/** One tool as the server lists it for this caller. */
export interface RemoteTool {
  readonly name: string;
  readonly title: string;
  readonly description: string;
  readonly risk: 'read' | 'change' | 'destructive';
  readonly approval_required: boolean;
  readonly annotations: Record<string, unknown>;
  readonly input_schema: Record<string, unknown>;
  readonly output_schema?: Record<string, unknown>;
}

/** The caller as the server sees them (GET /api/v1/whoami). */
export interface RemoteIdentity {
  readonly subject: string;
  readonly display_name: string;
  readonly groups: readonly string[];
  readonly roles: readonly Role[];
  readonly origin: Requester['origin'];
}

export interface EventPage {
  readonly job_id: string;
  readonly state: JobState;
  readonly events: readonly EventView[];
  /** Pass as `after` to get the next page. */
  readonly next_after: string;
  readonly more: boolean;
}

export interface FollowOptions {
  readonly onEvent?: (event: StampedEvent) => void;
  /** Poll interval while nothing new arrives (default 500 ms). */
  readonly intervalMs?: number;
  /** Give up (returning the job as it is) after this long; default: follow to the end. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  /** Start after this event id (a follower resuming after an outage); default: from the first. */
  readonly after?: string;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/**
 * The token for remote mode: `$CASTELLAN_TOKEN`, else the file given (first line, e.g. written
 * by a login helper). Never taken from a command-line argument, where `ps` would show it.
 */
export async function remoteToken(options: { readonly tokenFile?: string | undefined; readonly env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  const fromEnv = (options.env ?? process.env)[TOKEN_ENV]?.trim();
  if (fromEnv) return fromEnv;
  if (options.tokenFile !== undefined) {
    let text: string;
    try {
      text = await readFile(options.tokenFile, 'utf8');
    } catch (error) {
      throw new CastellanError('unauthenticated', `cannot read the token file ${options.tokenFile} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    const token = text.split('\n')[0]?.trim();
    if (token) return token;
    throw new CastellanError('unauthenticated', `the token file ${options.tokenFile} is empty`);
  }
  throw new CastellanError('unauthenticated', `remote mode needs an access token: set ${TOKEN_ENV} or give a token file`);
}

function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
}

function codeForStatus(status: number): ErrorCode {
  if (status === 401) return 'unauthenticated';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not_found';
  if (status === 409) return 'conflict';
  if (status === 429) return 'rate_limited';
  if (status === 400 || status === 413) return 'invalid_input';
  if (status === 503) return 'unavailable';
  return 'internal';
}

export class RemoteClient {
  private readonly base: URL;
  private readonly token: string;
  private readonly timeoutMs: number;
  private readonly fetch: typeof fetch;

  constructor(options: RemoteClientOptions) {
    let base: URL;
    try {
      base = new URL(options.server);
    } catch {
      throw new CastellanError('invalid_input', `--server: '${options.server}' is not a URL (expected e.g. https://castellan.example)`, 'server');
    }
    if (base.protocol !== 'https:' && base.protocol !== 'http:') {
      throw new CastellanError('invalid_input', `--server: expected an http(s) URL, got ${base.protocol}`, 'server');
    }
    if (base.protocol === 'http:' && !LOOPBACK.has(base.hostname) && options.allowInsecure !== true) {
      throw new CastellanError('invalid_input', `--server: refusing to send an access token over plain http to ${base.host}; use https`, 'server');
    }
    if (options.token.trim() === '' || /\s/.test(options.token.trim())) {
      throw new CastellanError('unauthenticated', 'the access token is empty or contains whitespace');
    }
    this.base = new URL(base.pathname.endsWith('/') ? base.href : `${base.href}/`);
    this.token = options.token.trim();
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.fetch = options.fetch ?? fetch;
  }

  private async request<T>(method: 'GET' | 'POST', path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const url = new URL(`api/v1/${path}`, this.base);
    const timeout = AbortSignal.timeout(this.timeoutMs);
    let response: Response;
    try {
      response = await this.fetch(url, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          accept: 'application/json',
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        redirect: 'error',
      });
    } catch (error) {
      const reason = timeout.aborted ? `no answer within ${this.timeoutMs} ms` : (error as Error).message;
      throw new CastellanError('unavailable', `cannot reach Castellan at ${this.base.origin}: ${reason}`);
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (response.ok) return parsed as T;
    throw this.errorFrom(response, parsed);
  }

  private errorFrom(response: Response, body: unknown): CastellanError {
    const apiError = (body as { error?: unknown } | undefined)?.error;
    if (apiError !== null && typeof apiError === 'object') {
      const e = apiError as { code?: unknown; message?: unknown; field?: unknown };
      const code = isErrorCode(e.code) ? e.code : codeForStatus(response.status);
      return new CastellanError(code, typeof e.message === 'string' ? e.message : `HTTP ${response.status}`, typeof e.field === 'string' ? e.field : undefined);
    }
    // The bearer gate answers in RFC 6750 form: { error: "invalid_token", error_description }.
    const description = (body as { error_description?: unknown } | undefined)?.error_description;
    const detail = typeof description === 'string' ? description : `HTTP ${response.status} ${response.statusText}`;
    const hint = response.status === 401 ? ` (log in again and set ${TOKEN_ENV})` : '';
    return new CastellanError(codeForStatus(response.status), `${detail}${hint}`);
  }

  async whoami(): Promise<RemoteIdentity> {
    return this.request('GET', 'whoami');
  }

  async tools(): Promise<RemoteTool[]> {
    return (await this.request<{ tools: RemoteTool[] }>('GET', 'tools')).tools;
  }

  /** Submit a tool call; the job may be awaiting approval, queued or (for retries) already done. */
  async submit(request: { tool: string; input?: Record<string, unknown>; idempotencyKey?: string }): Promise<{ job: JobView; duplicate: boolean }> {
    return this.request('POST', 'jobs', {
      tool: request.tool,
      input: request.input ?? {},
      ...(request.idempotencyKey !== undefined ? { idempotency_key: request.idempotencyKey } : {}),
    });
  }

  async get(jobId: string): Promise<JobView> {
    return (await this.request<{ job: JobView }>('GET', `jobs/${encodeURIComponent(jobId)}`)).job;
  }

  /** A page of jobs; `filter` is passed as the API's query (state, tool, requester, host, origin, since, until). */
  async list(options: JobListRequest = {}): Promise<ListPage<JobView>> {
    const query = new URLSearchParams();
    if (options.limit !== undefined) query.set('limit', String(options.limit));
    if (options.offset !== undefined) query.set('offset', String(options.offset));
    for (const [name, value] of Object.entries(options.filter ?? {})) if (value !== undefined) query.set(name, value);
    const qs = query.toString();
    const page = await this.request<{ jobs: JobView[]; total?: number; next_offset?: number }>('GET', `jobs${qs ? `?${qs}` : ''}`);
    return { jobs: page.jobs, total: page.total ?? page.jobs.length, ...(page.next_offset !== undefined ? { next: page.next_offset } : {}) };
  }

  /** A page of the audit trail; `filter` is passed as the API's query. */
  async audit(options: AuditListRequest = {}): Promise<AuditListAnswer> {
    const query = new URLSearchParams();
    if (options.limit !== undefined) query.set('limit', String(options.limit));
    if (options.cursor !== undefined) query.set('cursor', options.cursor);
    for (const [name, value] of Object.entries(options.filter ?? {})) if (value !== undefined) query.set(name, value);
    const qs = query.toString();
    return this.request('GET', `audit${qs ? `?${qs}` : ''}`);
  }

  /** Events after `after`; with `waitMs`, the server holds the request until one comes (long poll). */
  async events(jobId: string, after = '0', limit = 500, signal?: AbortSignal, waitMs = 0): Promise<EventPage> {
    const query = new URLSearchParams({ after, limit: String(limit), ...(waitMs > 0 ? { wait_ms: String(Math.round(waitMs)) } : {}) });
    return this.request('GET', `jobs/${encodeURIComponent(jobId)}/events?${query.toString()}`, undefined, signal);
  }

  async output(jobId: string, options: { offset?: number; limit?: number; maxChars?: number } = {}): Promise<OutputPage> {
    const query = new URLSearchParams();
    if (options.offset !== undefined) query.set('offset', String(options.offset));
    if (options.limit !== undefined) query.set('limit', String(options.limit));
    if (options.maxChars !== undefined) query.set('max_chars', String(options.maxChars));
    const qs = query.toString();
    return this.request('GET', `jobs/${encodeURIComponent(jobId)}/output${qs ? `?${qs}` : ''}`);
  }

  async lines(jobId: string, options: LinesRequest): Promise<OutputLines> {
    const query = new URLSearchParams();
    if (options.hosts !== undefined) query.set('hosts', options.hosts);
    if (options.after !== undefined) query.set('after', options.after);
    query.set('max_lines', String(options.maxLines));
    return this.request('GET', `jobs/${encodeURIComponent(jobId)}/lines?${query.toString()}`);
  }

  async approve(jobId: string, reason?: string): Promise<JobView> {
    return this.decide(jobId, 'approve', reason);
  }

  async deny(jobId: string, reason?: string): Promise<JobView> {
    return this.decide(jobId, 'deny', reason);
  }

  async cancel(jobId: string, reason?: string): Promise<JobView> {
    return this.decide(jobId, 'cancel', reason);
  }

  private async decide(jobId: string, action: 'approve' | 'deny' | 'cancel', reason?: string): Promise<JobView> {
    const body = reason !== undefined ? { reason } : {};
    return (await this.request<{ job: JobView }>('POST', `jobs/${encodeURIComponent(jobId)}/${action}`, body)).job;
  }

  /**
   * Follow the job's events through the API's long poll, handing each to `onEvent` in order,
   * until the job ends (or `timeoutMs` passes, or `signal` aborts). Returns the job view then.
   */
  async follow(jobId: string, options: FollowOptions = {}): Promise<JobView> {
    const deadline = options.timeoutMs !== undefined ? Date.now() + options.timeoutMs : Infinity;
    let after = options.after ?? '0';
    let endedPolls = 0;
    let sawEnd = false;
    let recordFinal = false;
    for (;;) {
      // Hold the request open while the job runs; once the record is final, only a short
      // wait for its last event (written a moment after the record turns final).
      const waitMs = recordFinal ? 1000 : Math.min(LONG_POLL_MS, Math.max(0, deadline - Date.now()));
      const page = await this.events(jobId, after, 500, options.signal, waitMs);
      for (const e of page.events) {
        const event = e.event as unknown as JobEvent;
        if (event.type === 'state' && FINAL_STATES.has(event.state)) sawEnd = true;
        options.onEvent?.({ id: e.id, at: Date.parse(e.at), event });
      }
      after = page.next_after;
      recordFinal = FINAL_STATES.has(page.state);
      if (!page.more && (sawEnd || (recordFinal && ++endedPolls > 1))) break;
      if (options.signal?.aborted || Date.now() >= deadline) break;
      // A server without long poll answers at once: pace the loop.
      if (page.events.length === 0 && options.intervalMs !== undefined) await sleep(options.intervalMs, options.signal);
    }
    return this.get(jobId);
  }
}

/**
 * The CLI's JobClient over the HTTP API (`castellan --server URL …`): the same commands as
 * local mode, run as the token's identity with the origin the server gives that token. Asks the server who that is first,
 * so a bad or expired token fails before anything is submitted.
 */
export async function openRemoteJobClient(options: RemoteClientOptions): Promise<JobClient> {
  const remote = new RemoteClient(options);
  const me = await remote.whoami();
  const requester: Requester = { subject: me.subject, displayName: me.display_name, groups: [...me.groups], roles: [...me.roles], origin: me.origin };
  return {
    requester,
    // Local files cannot be staged on a remote server's files root: `cp` from local paths is local-mode only.
    filesRoot: undefined,
    async submit(tool, input, idempotencyKey) {
      const { job, duplicate } = await remote.submit({
        tool,
        input: (input ?? {}) as Record<string, unknown>,
        ...(idempotencyKey !== undefined ? { idempotencyKey } : {}),
      });
      return { job, duplicate };
    },
    get: (id) => remote.get(id),
    list: (o) => remote.list(o),
    audit: (o) => remote.audit(o),
    async events(id, afterId = '0') {
      const all: StampedEvent[] = [];
      let after = afterId;
      for (;;) {
        const page = await remote.events(id, after);
        for (const e of page.events) all.push({ id: e.id, at: Date.parse(e.at), event: e.event as unknown as JobEvent });
        after = page.next_after;
        if (!page.more) return all;
      }
    },
    lines: (id, options) => remote.lines(id, options),
    wait: (id, timeoutMs, onEvent, signal, after) => remote.follow(id, { onEvent, timeoutMs, ...(signal ? { signal } : {}), ...(after !== undefined ? { after } : {}) }),
    approve: (id, reason) => remote.approve(id, reason),
    deny: (id, reason) => remote.deny(id, reason),
    cancel: (id, reason) => remote.cancel(id, reason),
    close: async () => undefined,
  };
}
