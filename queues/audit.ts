// Append-only audit trail: who asked for what, from where, on which hosts, with which exact
// commands, who decided, and what happened. Written to a Redis stream (always) and to a
// JSON-lines file (when configured, mode 0600). Every record passes the Redactor first.
import { appendFile, open } from 'node:fs/promises';
import type { Redis } from 'ioredis';
import type { Origin } from '../auth/types.js';
import type { Redactor } from './redact.js';
import type { Keys } from './keys.js';
import type { ReplyAddress } from './records.js';

export type AuditKind = 'request' | 'decision' | 'execution' | 'outcome' | 'cancel' | 'refused';

export interface AuditRecord {
  readonly kind: AuditKind;
  readonly jobId?: string | undefined;
  readonly subject: string;
  readonly displayName?: string | undefined;
  readonly origin: Origin | 'worker';
  readonly tool?: string | undefined;
  readonly hosts?: readonly string[] | undefined;
  /** Exact commands of the plan (request) or of the host execution. */
  readonly commands?: readonly (readonly string[])[] | undefined;
  readonly host?: string | undefined;
  readonly step?: string | undefined;
  readonly argv?: readonly string[] | undefined;
  readonly status?: string | undefined;
  readonly exitCode?: number | null | undefined;
  readonly durationMs?: number | undefined;
  readonly state?: string | undefined;
  readonly decision?: 'approve' | 'deny' | undefined;
  readonly reason?: string | undefined;
  readonly planHash?: string | undefined;
  readonly input?: unknown;
  /** Where the person acted from, when the front end knows more than the origin (Slack team/user/channel). */
  readonly via?: ReplyAddress | undefined;
}

export interface StoredAudit extends AuditRecord {
  readonly id: string;
  readonly at: string;
}

const STREAM_MAXLEN = 1_000_000;

export class AuditLog {
  private fileReady: Promise<void> | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly redactor: Redactor,
    private readonly file?: string | undefined,
  ) {}

  async append(record: AuditRecord): Promise<void> {
    const at = new Date().toISOString();
    const clean = this.redactor.scrubDeep({ at, ...record });
    const json = JSON.stringify(clean);
    await this.redis.xadd(this.keys.audit(), 'MAXLEN', '~', STREAM_MAXLEN, '*', 'r', json);
    if (this.file) {
      this.fileReady ??= ensureFile(this.file);
      await this.fileReady;
      await appendFile(this.file, json + '\n', { mode: 0o600 });
    }
  }

  /** One stream entry per record, written in one round trip (and one file append). */
  async appendMany(records: readonly AuditRecord[]): Promise<void> {
    if (records.length === 0) return;
    const at = new Date().toISOString();
    const lines = records.map((record) => JSON.stringify(this.redactor.scrubDeep({ at, ...record })));
    const pipeline = this.redis.pipeline();
    for (const json of lines) pipeline.xadd(this.keys.audit(), 'MAXLEN', '~', STREAM_MAXLEN, '*', 'r', json);
    const replies = (await pipeline.exec()) ?? [];
    const failed = replies.find(([error]) => error);
    if (failed?.[0]) throw failed[0];
    if (this.file) {
      this.fileReady ??= ensureFile(this.file);
      await this.fileReady;
      await appendFile(this.file, lines.map((json) => json + '\n').join(''), { mode: 0o600 });
    }
  }

  /** Newest last. `jobId` filters. */
  async read(options: { jobId?: string; count?: number } = {}): Promise<StoredAudit[]> {
    const entries = await this.redis.xrevrange(this.keys.audit(), '+', '-', 'COUNT', options.count ?? 10_000);
    const out: StoredAudit[] = [];
    for (const [id, fields] of entries.reverse()) {
      const rec = JSON.parse(fields[fields.indexOf('r') + 1] ?? '{}') as StoredAudit;
      if (options.jobId === undefined || rec.jobId === options.jobId) out.push({ ...rec, id });
    }
    return out;
  }
}

async function ensureFile(path: string): Promise<void> {
  const handle = await open(path, 'a', 0o600);
  await handle.chmod(0o600);
  await handle.close();
}
