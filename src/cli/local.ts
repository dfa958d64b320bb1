// Local mode: the CLI talks to Redis directly, as the local identity from config
// (auth.local_identity). There is deliberately no flag to act as anyone else.
import { loadConfig } from '../../config/load.js';
import type { Requester } from '../../auth/types.js';
import type { JobRecord } from '../../queues/records.js';
import type { StampedEvent } from '../../queues/events.js';
import { createLogger } from '../log.js';
import { Redactor } from '../../queues/redact.js';
import { createRuntime, type Runtime } from '../runtime.js';
import { findConfig } from './config-path.js';

export interface JobClient {
  readonly requester: Requester;
  /** Local mode only: the server's files root, where cp stages local files. */
  readonly filesRoot?: string | undefined;
  submit(tool: string, input: unknown, idempotencyKey?: string): Promise<{ job: JobRecord; duplicate: boolean }>;
  get(id: string): Promise<JobRecord>;
  list(options: { limit?: number; state?: string }): Promise<JobRecord[]>;
  events(id: string, afterId?: string): Promise<StampedEvent[]>;
  wait(id: string, timeoutMs: number, onEvent: (e: StampedEvent) => void, signal?: AbortSignal): Promise<JobRecord>;
  approve(id: string, reason?: string): Promise<JobRecord>;
  deny(id: string, reason?: string): Promise<JobRecord>;
  cancel(id: string, reason?: string): Promise<JobRecord>;
  close(): Promise<void>;
}

export async function openLocal(configFlag: string | undefined, verbose: boolean): Promise<{ client: JobClient; runtime: Runtime }> {
  const config = await loadConfig(findConfig(configFlag));
  const redactor = new Redactor(config.secrets.values());
  // CLI logs stay quiet unless asked: results go to stdout, progress to stderr.
  const logger = createLogger({ level: verbose ? 'debug' : 'warn', redactor });
  const runtime = await createRuntime(config, { mode: 'client', logger });
  const requester = runtime.localRequester('cli');
  const s = runtime.service;
  const client: JobClient = {
    requester,
    filesRoot: config.jobs.filesRoot,
    submit: (tool, input, idempotencyKey) => s.submit({ tool, input, requester, replyTo: { kind: 'cli' }, idempotencyKey }),
    get: (id) => s.get(id, requester),
    list: (o) => s.list(requester, { limit: o.limit, state: o.state as never }),
    events: (id, afterId) => s.events(id, requester, afterId),
    wait: (id, timeoutMs, onEvent, signal) => s.wait(id, requester, timeoutMs, onEvent, signal),
    approve: (id, reason) => s.approve(id, requester, reason),
    deny: (id, reason) => s.deny(id, requester, reason),
    cancel: (id, reason) => s.cancel(id, requester, reason),
    close: () => runtime.close(),
  };
  return { client, runtime };
}
