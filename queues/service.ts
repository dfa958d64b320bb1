// The front-end side of the job layer. Every front end (CLI, MCP, HTTP API, Slack,
// dashboard) calls these methods and nothing else: validate → authorize → plan → record +
// BullMQ job (delayed until the approval deadline when approvals are needed) → audit.
// Approvals, denials and cancellations go through here too, so the rules live once.
import { auditScope, authorizeApproval, authorizeCancel, authorizeRequest } from '../auth/policy.js';
import type { AuthConfig } from '../auth/settings.js';
import type { Identity, Requester } from '../auth/types.js';
import { CastellanError, errorMessage } from '../config/errors.js';
import { metrics } from './metrics.js';
import type { Plan, ToolDefinition } from '../tools/types.js';
import { findTool, UnknownToolError, validateInput } from '../tools/registry.js';
import { noRoleReason } from '../auth/roles.js';
import { sleep } from './sleep.js';
import { isRedisUnavailable, redisUnavailable } from './connections.js';
import { claimValue, confirmSubmission, createRecord, type InFlightLimit, hashPart, NEVER_QUEUED, parseClaim, reconcileOne, requestFingerprint, settled } from './submission.js';
import { bindingUsers, planCommands, type LoginUserOf } from './plan-commands.js';
import { jobAuditFacts, type AuditPage, type AuditQuery } from './audit.js';
import { windowDecision } from './maintenance.js';
import { planShapeProblems } from '../tools/steps/walk.js';
import type { QueueContext } from './context.js';
import { bullRetention } from './retention.js';
import { decisionMarker, decisionRecord } from './decisions.js';
import { endJob } from './endings.js';
import type { Condition } from './durable.js';
import { wakeIfDelayed } from './wake.js';
import type { StampedEvent } from './events.js';
import { bindPlan, boundPlanHash } from './plan-binding.js';
import type { FollowOptions } from './follow.js';
import { accessOf, eventsFor, recordFor } from './visibility.js';
import { activeJobsKey, capReadPlan, DEFAULT_LIMITS, takeTokens, type LimitSettings } from './limits.js';
import { isPersonOrigin } from '../auth/types.js';
import { checkEventId } from './events.js';
import { JOB_ID_PATTERN, newJobId, recordFields, type JobDoc, type JobQuery, type JobRecord, type QueuedJob, type ReplyAddress, type Vote } from './records.js';
import { isFinal, type JobState } from './states.js';

export interface SubmitRequest {
  readonly tool: string;
  readonly input: unknown;
  readonly requester: Requester;
  readonly replyTo: ReplyAddress;
  /** Same key from the same subject → the same job (client retries, double clicks). */
  readonly idempotencyKey?: string | undefined;
}

export interface SubmitResult {
  readonly job: JobRecord;
  /** True when the idempotency key matched an earlier request: no new job was made. */
  readonly duplicate: boolean;
}

const IDEMPOTENCY_TTL_S = 24 * 3600;
const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:@-]{1,200}$/;

/** Filters of a job listing (the store's query), plus one `state` as a shorthand for `states`. */
export interface JobListOptions extends JobQuery {
  readonly state?: JobState | undefined;
}

export interface JobPage {
  readonly jobs: JobRecord[];
  /** Jobs matching the filters in all. */
  readonly total: number;
  readonly offset: number;
  /** Offset of the next page, absent on the last one. */
  readonly next?: number | undefined;
}

export class JobService {
  constructor(
    private readonly ctx: QueueContext,
    private readonly auth: AuthConfig,
  ) {}

  tool(name: string): ToolDefinition {
    try {
      return findTool(this.ctx.tools.list(), name);
    } catch (err) {
      if (err instanceof UnknownToolError) throw new CastellanError('unknown_tool', `${err.message}; run 'castellan help' for the list`, 'tool');
      throw err;
    }
  }

  /**
   * Validate, authorize, plan and record a request, then queue it. The answer is the job, or
   * an error; when Redis cannot be reached it is `unavailable … nothing was run`, never a
   * half-made job (see queues/submission.ts).
   */
  async submit(request: SubmitRequest): Promise<SubmitResult> {
    try {
      return await this.submitOnce(request);
    } catch (err) {
      if (!(err instanceof CastellanError) && isRedisUnavailable(err)) throw redisUnavailable(err, 'nothing was run');
      throw err;
    }
  }

  private async submitOnce(request: SubmitRequest): Promise<SubmitResult> {
    const { requester } = request;
    const tool = this.tool(request.tool);
    let decision = authorizeRequest({ risk: tool.risk, tool: tool.name, requester, config: this.auth });
    if (!decision.ok) {
      await this.ctx.audit.append({ kind: 'refused', subject: requester.subject, displayName: requester.displayName, origin: requester.origin, tool: tool.name, reason: decision.reason });
      throw new CastellanError(decision.code === 'read_only' ? 'read_only' : 'forbidden', decision.reason);
    }
    await this.takeRateToken(requester, tool.name);
    const input = validate(tool, request.input);
    // A configured secret typed into a command would have to travel through Redis to the
    // worker; refuse it rather than store it.
    const serialized = JSON.stringify(input);
    if (this.ctx.redactor.scrub(serialized) !== serialized) {
      throw new CastellanError('invalid_input', `invalid input for ${tool.name}: it contains one of Castellan's own configured secrets; Castellan never stores or sends them`);
    }
    const inventory = await this.ctx.inventory.current();
    const planCtx = this.ctx.planContext(inventory);
    const built = buildPlan(tool, input, planCtx);
    // A plan may carry more risk than its tool's floor (a configured playbook's): decide again.
    const risk = effectiveRisk(tool.risk, built.risk);
    // A read cannot hold a worker for long, whatever timeout it was asked for (limits.read_timeout).
    const plan = risk === 'read' ? capReadPlan(built, this.limits.readTimeoutMs) : built;
    if (risk !== tool.risk) {
      const again = authorizeRequest({ risk, tool: tool.name, requester, config: this.auth });
      if (!again.ok) {
        await this.ctx.audit.append({ kind: 'refused', subject: requester.subject, displayName: requester.displayName, origin: requester.origin, tool: tool.name, reason: again.reason });
        throw new CastellanError(again.code === 'read_only' ? 'read_only' : 'forbidden', again.reason);
      }
      decision = again;
    }
    const window = risk === 'destructive' ? windowDecision(plan.hosts, this.ctx.settings.maintenance.windows, (e) => planCtx.resolve(e), (this.ctx.settings.clock ?? Date.now)()) : undefined;
    if (window?.kind === 'closed' && (this.ctx.settings.maintenance.outside === 'refuse' || window.opensAt === undefined)) {
      const reason = `refused: ${window.detail}. Submit it again inside the window.`;
      await this.ctx.audit.append({ kind: 'refused', subject: requester.subject, displayName: requester.displayName, origin: requester.origin, tool: tool.name, reason });
      throw new CastellanError('conflict', reason);
    }
    const binding = await bindPlan(plan, inventory, (inv, host) => this.ctx.targetFor(inv, host), this.ctx.executor);

    const fingerprint = requestFingerprint(tool.name, input);
    const idemKey = request.idempotencyKey === undefined ? undefined : this.idempotencyKeyOf(requester.subject, request.idempotencyKey);
    const now = Date.now();
    const needsApproval = decision.approvalsRequired > 0;
    const expiresAt = needsApproval ? now + this.ctx.settings.approvals.expiryMs : undefined;
    const doc: JobDoc = {
      id: newJobId(),
      tool: tool.name,
      risk,
      input: this.ctx.redactor.scrubDeep(input),
      plan,
      binding,
      planHash: boundPlanHash(plan, binding),
      requester: { subject: requester.subject, displayName: requester.displayName, groups: [...requester.groups], roles: [...requester.roles], origin: requester.origin },
      replyTo: request.replyTo,
      idempotencyKey: request.idempotencyKey,
      createdAt: new Date(now).toISOString(),
      approvalsRequired: decision.approvalsRequired,
      expiresAt,
      timeoutMs: risk === 'read' ? Math.min(this.ctx.settings.defaultTimeoutMs, this.limits.readTimeoutMs) : this.ctx.settings.defaultTimeoutMs,
      ...(window?.kind === 'closed'
        ? { maintenance: { windows: [...window.windows], opensAt: window.opensAt === undefined ? undefined : new Date(window.opensAt).toISOString(), detail: `${window.detail}; it will wait for that` } }
        : {}),
    };
    const initial: JobState = needsApproval ? 'awaiting_approval' : 'queued';

    // Record, idempotency claim, in-flight slot and "being submitted" marker in one atomic step.
    // From here on the caller gets either this job's id or "unavailable, nothing was run" (see
    // submission.ts). An idempotent retry is answered with its job even at the in-flight limit.
    const inFlight = this.inFlightLimit(requester);
    let fields: Record<string, string>;
    for (let attempt = 0; ; attempt++) {
      fields = recordFields(doc, initial, needsApproval ? {} : { queuedAt: doc.createdAt });
      const claim = idemKey === undefined ? undefined : { key: idemKey, value: claimValue(doc.id, fingerprint), ttlS: IDEMPOTENCY_TTL_S };
      const created = await createRecord(this.ctx, doc, fields, claim, inFlight);
      if (created.created) break;
      if ('inFlight' in created) return this.refuseInFlight(requester, tool.name, created.inFlight, created.example);
      const earlier = await this.earlierRequest(created.claim, fingerprint, request.idempotencyKey ?? '');
      if (earlier) return { job: earlier, duplicate: true };
      // The earlier request with this key never completed and was reconciled (its key freed):
      // this one is the real submission. Twice means something else keeps taking the key.
      if (attempt >= 1) throw new CastellanError('conflict', 'the idempotency key is being used by another request right now; retry in a moment');
    }
    const jobId = doc.id;
    let confirmedAs: JobState | undefined;
    try {
      // The request's audit record, the `queued` event and the BullMQ job are independent:
      // sent together, in that order on one connection (one wait for Redis, not two). The job
      // is added without waiting for the other two's answers: no worker starts it before it is
      // confirmed (below, submission.ts `settled`), and it is confirmed only once all three are
      // written; a failed one ends the record "never queued" and removes the job (catch below).
      const audited = this.ctx.audit.append({
        kind: 'request',
        jobId,
        subject: requester.subject,
        displayName: requester.displayName,
        origin: requester.origin,
        tool: tool.name,
        hosts: plan.hosts,
        commands: planCommands(plan, bindingUsers(binding)),
        planHash: doc.planHash,
        input: doc.input,
        state: initial,
        via: request.replyTo.kind === 'slack' ? request.replyTo : undefined,
        ...jobAuditFacts(doc),
      });
      // Before the job is confirmed, so a fast worker's `running` always comes after it.
      const announced = this.ctx.events.publish(jobId, { type: 'state', state: initial, reason: needsApproval ? `waiting for ${decision.approvalsRequired} approval(s)` : undefined });
      const added = this.ctx.queue.add(tool.name, { id: doc.id } satisfies QueuedJob, {
        jobId,
        // Awaiting approval: the job sleeps until the deadline; approval promotes it, and if
        // nobody decides, the worker wakes up at the deadline and marks it expired.
        delay: needsApproval ? this.ctx.settings.approvals.expiryMs : 0,
        attempts: 1,
        ...bullRetention(this.ctx.settings.retention),
      });
      // All three settled before a failure is reported: none is left in flight.
      const [audit, announce, queued] = await Promise.allSettled([audited, announced, added]);
      if (audit.status === 'rejected') throw audit.reason;
      if (announce.status === 'rejected') throw announce.reason;
      if (queued.status === 'rejected') throw queued.reason;
      // Not confirmed before a replica holds it: a failover would lose a job whose id the
      // caller already has (queues/durable.ts). Unconfirmed, it is still ours to end. Checked
      // and WAITed on the durable connection, so a slow WAIT holds up no other request.
      const stored = await this.ctx.durable.round(this.submitted(jobId, true));
      if (stored.kind !== 'durable') throw new CastellanError('unavailable', stored.kind === 'unconfirmed' ? stored.problem : 'the current Redis primary does not hold the submission (a failover under way)');
      confirmedAs = await confirmSubmission(this.ctx, jobId);
      if (confirmedAs === undefined) throw new CastellanError('unavailable', 'the submission took too long and was given up');
    } catch (err) {
      // Not confirmed, so no worker will start it: end the record now if Redis lets us (else
      // the reconcile of any long-lived process will), and tell the caller nothing ran.
      const ended = await reconcileOne(this.ctx, jobId, `${NEVER_QUEUED} (${errorMessage(err)})`).catch(() => false);
      this.ctx.logger.warn({ jobId, err: errorMessage(err), ended }, 'submission failed; nothing was run');
      const outcome = `nothing was run${ended ? ` (job ${jobId} is recorded as failed)` : ''}`;
      if (isRedisUnavailable(err)) throw redisUnavailable(err, outcome);
      throw new CastellanError('unavailable', `unavailable: the job could not be queued (${errorMessage(err)}); ${outcome}. Retry in a few seconds.`);
    }
    // The confirmation itself, replicated too; past this point a worker may have started the
    // job, so a failure here is only logged: the record is on a replica already (above); if
    // the confirmation is lost, the record ends "never queued … nothing was run".
    const confirmed = await this.ctx.durable.round(this.submitted(jobId, false));
    if (confirmed.kind !== 'durable') this.ctx.logger.warn({ jobId, problem: confirmed.kind === 'unconfirmed' ? confirmed.problem : 'not on the current primary' }, 'submission confirmed, but its confirmation is not on a replica yet');
    metrics().jobsSubmitted.inc({ tool: tool.name, origin: requester.origin, risk: tool.risk });
    if (needsApproval) await this.startPreview(tool, input, doc, inventory);
    // Confirmed as written (the usual case, with no preview attached since): the record is
    // what was written, not read back. Cancelled or denied meanwhile: the caller sees that.
    const job = confirmedAs === initial && !needsApproval ? this.ctx.store.fromFields(fields) : await this.ctx.store.get(jobId);
    if (!job) throw new CastellanError('internal', `job ${jobId} vanished right after it was recorded`);
    return { job, duplicate: false };
  }

  /**
   * What a submission's confirmation checks on the current primary: the record and its BullMQ
   * job, with the "being submitted" marker still on (before confirming) or off (after).
   */
  private submitted(jobId: string, marker: boolean): Condition[] {
    return [
      { exists: this.ctx.keys.job(jobId) },
      { exists: this.ctx.queue.toKey(jobId) },
      { zset: this.ctx.keys.submitting(), member: jobId, present: marker },
    ];
  }

  private get limits(): LimitSettings {
    return this.ctx.settings.limits ?? DEFAULT_LIMITS;
  }

  /** The local identity acting from the CLI holds the config and Redis already: limits protect nothing there. */
  private exempt(requester: Requester): boolean {
    return requester.subject === this.ctx.settings.localSubject && isPersonOrigin(requester.origin);
  }

  /** limits.rate: one token per job created, per subject and origin; refused with when to retry. */
  private async takeRateToken(requester: Requester, tool: string, cost = 1): Promise<void> {
    if (this.exempt(requester)) return;
    const rate = this.limits.rate;
    const taken = await takeTokens(this.ctx.redis, this.ctx.keys.prefix, requester.subject, requester.origin, rate, cost);
    if (taken.ok) return;
    const seconds = Math.ceil(taken.retryAfterMs / 1000);
    const reason = `rate limit: at most ${rate.perMinute} jobs a minute (bursts of ${rate.burst}) per person and origin (limits.rate); try again in ${seconds} s`;
    metrics().rateLimited.inc({ origin: requester.origin });
    await this.ctx.audit.append({ kind: 'refused', subject: requester.subject, displayName: requester.displayName, origin: requester.origin, tool, reason });
    throw new CastellanError('rate_limited', reason, undefined, seconds);
  }

  /**
   * For front ends that take several requests in one message (JSON-RPC batches on /mcp): count
   * them all against the caller's rate limit at once, or refuse the whole message.
   */
  async chargeRequests(requester: Requester, count: number): Promise<void> {
    if (count > 0) await this.takeRateToken(requester, 'batch', count);
  }

  /** limits.jobs_per_requester: jobs one person may have queued or running at once (counted and claimed atomically, submission.ts). */
  private inFlightLimit(requester: Requester): InFlightLimit | undefined {
    const limit = this.limits.jobsPerRequester;
    if (limit <= 0 || this.exempt(requester)) return undefined;
    return { key: activeJobsKey(this.ctx.keys.prefix, requester.subject), limit };
  }

  private async refuseInFlight(requester: Requester, tool: string, active: number, example: string): Promise<never> {
    const limit = this.limits.jobsPerRequester;
    const reason = `you already have ${active} jobs queued or running (limits.jobs_per_requester is ${limit}); wait for one to finish or cancel one (e.g. castellan cancel ${example || '<id>'})`;
    metrics().rateLimited.inc({ origin: requester.origin });
    await this.ctx.audit.append({ kind: 'refused', subject: requester.subject, displayName: requester.displayName, origin: requester.origin, tool, reason });
    throw new CastellanError('rate_limited', reason, undefined, 5);
  }

  private idempotencyKeyOf(subject: string, idempotencyKey: string): string {
    if (!IDEMPOTENCY_KEY.test(idempotencyKey)) throw new CastellanError('invalid_input', 'idempotency key: 1-200 characters of [A-Za-z0-9._:@-]', 'idempotency_key');
    return this.ctx.keys.idempotency(hashPart(subject), hashPart(idempotencyKey));
  }

  /**
   * The job an idempotency key was claimed for. The same request again → that job; a different
   * request under the same key → `conflict` naming the job. While the earlier submission is
   * still in progress, wait for its outcome; one that never completed is reconciled (its key
   * freed) and undefined returned, so the caller records this request instead.
   */
  private async earlierRequest(claim: string, fingerprint: string, key: string): Promise<JobRecord | undefined> {
    const { jobId, fingerprint: earlierFingerprint } = parseClaim(claim);
    const earlier = await this.ctx.store.get(jobId);
    if (!earlier) {
      throw new CastellanError('conflict', `idempotency key '${key}' was used for job ${jobId}, which is no longer kept; use a new key`);
    }
    if (earlierFingerprint !== undefined && earlierFingerprint !== fingerprint) {
      throw new CastellanError('conflict', `idempotency key '${key}' was already used for a different request: job ${jobId} (${earlier.tool}, ${earlier.state}); use a new key for a new request`, 'idempotency_key');
    }
    // The same request racing the first one: its answer is the first one's answer.
    if (!(await settled(this.ctx, jobId, this.ctx.settings.submitGraceMs))) return undefined;
    const current = await this.ctx.store.get(jobId);
    if (current?.state === 'failed' && current.reason?.startsWith('never queued')) return undefined;
    return current ?? earlier;
  }

  /**
   * A job waiting for approval whose tool can preview it (ToolDefinition.preview: Ansible's
   * check mode) gets that run as a job of its own, started now, without approval: it changes
   * nothing. Its outcome is attached to this job's record when it ends (queues/endings.ts), so
   * every approval card shows it. A preview that cannot start is said on the card, never hidden,
   * and never stops the request itself.
   */
  private async startPreview(tool: ToolDefinition, input: unknown, main: JobDoc, inventory: Awaited<ReturnType<QueueContext['inventory']['current']>>): Promise<void> {
    const previewInput = tool.preview?.(input as never);
    if (previewInput === undefined) return;
    const id = newJobId();
    let created: JobDoc | undefined;
    try {
      const plan = buildPlan(tool, previewInput, this.ctx.planContext(inventory));
      // A preview carries no risk of its own; one that would is a tool bug, not run.
      if (plan.risk !== undefined && plan.risk !== 'read') throw new Error(`${tool.name}'s preview plan carries risk ${plan.risk}`);
      const binding = await bindPlan(plan, inventory, (inv, host) => this.ctx.targetFor(inv, host), this.ctx.executor);
      const doc: JobDoc = {
        id,
        tool: tool.name,
        risk: 'read',
        input: this.ctx.redactor.scrubDeep(previewInput),
        plan,
        binding,
        planHash: boundPlanHash(plan, binding),
        requester: main.requester,
        replyTo: { kind: 'preview', of: main.id },
        createdAt: new Date().toISOString(),
        approvalsRequired: 0,
        timeoutMs: this.ctx.settings.defaultTimeoutMs,
        previewOf: main.id,
      };
      await this.ctx.store.create(doc, 'queued', { queuedAt: doc.createdAt });
      created = doc;
      await this.ctx.store.setPreview(main.id, { jobId: id, state: 'queued' });
      await this.ctx.audit.append({ kind: 'request', jobId: id, subject: main.requester.subject, displayName: main.requester.displayName, origin: main.requester.origin, tool: tool.name, hosts: plan.hosts, commands: planCommands(plan, bindingUsers(doc.binding)), planHash: doc.planHash, input: doc.input, state: 'queued', reason: `preview of ${main.id}`, ...jobAuditFacts(main) });
      await this.ctx.events.publish(id, { type: 'state', state: 'queued', reason: `preview of job ${main.id}` });
      await this.ctx.queue.add(tool.name, { id: doc.id } satisfies QueuedJob, {
        jobId: id,
        attempts: 1,
        ...bullRetention(this.ctx.settings.retention),
      });
    } catch (err) {
      const reason = `the preview could not start: ${errorMessage(err)}`;
      this.ctx.logger.warn({ jobId: main.id, err: errorMessage(err) }, 'preview not started');
      // Recorded but not enqueued: end it (which attaches the failure to the main job).
      if (created) await endJob(this.ctx, created, 'failed', { reason, from: ['queued'] }).catch(() => undefined);
      else await this.ctx.store.setPreview(main.id, { jobId: id, state: 'failed', reason }).catch(() => undefined);
    }
  }

  /**
   * What `submit` would do, without recording anything: the validated input, the plan and how
   * many approvals it would wait for. The dashboard's plan preview; refusals are the same errors.
   */
  async preview(request: Pick<SubmitRequest, 'tool' | 'input' | 'requester'>): Promise<{ tool: ToolDefinition; input: unknown; plan: Plan; approvalsRequired: number; loginUser: LoginUserOf }> {
    const { requester } = request;
    const tool = this.tool(request.tool);
    const decision = authorizeRequest({ risk: tool.risk, tool: tool.name, requester, config: this.auth });
    if (!decision.ok) throw new CastellanError(decision.code === 'read_only' ? 'read_only' : 'forbidden', decision.reason);
    const input = validate(tool, request.input);
    const inventory = await this.ctx.inventory.current();
    const plan = buildPlan(tool, input, this.ctx.planContext(inventory));
    // Each host's login user, as the submitted job's binding will have it (what `as root` runs as).
    const loginUser: LoginUserOf = (host) => {
      try {
        return this.ctx.targetFor(inventory, host).user;
      } catch {
        return undefined;
      }
    };
    return { tool, input, plan, approvalsRequired: decision.approvalsRequired, loginUser };
  }

  /** The job as `viewer` may see it (queues/visibility.ts: details and output per auth/policy.ts jobAccess). */
  async get(jobId: string, viewer: Identity): Promise<JobRecord> {
    const job = await this.load(jobId, viewer);
    return recordFor(job, accessOf(viewer, job, this.auth));
  }

  /** The whole record, for this service's own decisions; never handed to a front end as is. */
  private async load(jobId: string, viewer: Identity): Promise<JobRecord> {
    requireAnyRole(viewer);
    if (!JOB_ID_PATTERN.test(jobId)) throw new CastellanError('invalid_input', `'${jobId.slice(0, 40)}' is not a job id (they look like j…, see 'castellan jobs')`, 'job_id');
    const job = await this.ctx.store.get(jobId);
    if (!job) throw new CastellanError('not_found', `no job ${jobId} (it may have passed the retention period)`);
    return job;
  }

  /** Recent jobs, newest first, each cut to what `viewer` may see of it. */
  async list(viewer: Identity, options: JobListOptions = {}): Promise<JobRecord[]> {
    return (await this.page(viewer, options)).jobs;
  }

  /**
   * One page of jobs by state, tool, requester, host, origin and creation time, from the job
   * indexes (exact at any number of retained jobs), and how many match in all.
   */
  async page(viewer: Identity, options: JobListOptions = {}): Promise<JobPage> {
    requireAnyRole(viewer);
    const limit = Math.min(Math.max(options.limit ?? 20, 1), 200);
    const offset = Math.max(options.offset ?? 0, 0);
    const states = options.states ?? (options.state !== undefined ? [options.state] : undefined);
    const query = { states, tool: options.tool, requester: options.requester, host: options.host, origin: options.origin, since: options.since, until: options.until, offset, limit };
    let found = await this.ctx.store.query(query);
    let jobs = await this.ctx.store.records(found.ids);
    // Records that expired since the last sweep left the indexes just now: read the page again.
    if (jobs.length < found.ids.length) {
      found = await this.ctx.store.query(query);
      jobs = await this.ctx.store.records(found.ids);
    }
    const next = offset + found.ids.length < found.total ? offset + found.ids.length : undefined;
    return { jobs: jobs.map((j) => recordFor(j, accessOf(viewer, j, this.auth))), total: found.total, offset, ...(next !== undefined ? { next } : {}) };
  }

  /**
   * One page of the audit trail, newest first, from the audit indexes: only entries `viewer`
   * may read (auth/policy.ts auditScope), with the total and the cursor of the next page.
   */
  async audit(viewer: Identity, query: AuditQuery = {}): Promise<AuditPage> {
    requireAnyRole(viewer);
    return this.ctx.audit.page(query, auditScope(viewer));
  }

  /**
   * Jobs that asked for approval and were decided (approved, denied, expired), most recently
   * decided first, from the audit index of their decisions and outcomes: exact however many
   * jobs are retained, and only those `viewer` may read about.
   */
  async recentlyDecided(viewer: Identity, count = 20): Promise<JobRecord[]> {
    const page = await this.audit(viewer, { gated: true, kinds: ['decision', 'outcome'], limit: Math.min(count * 10, 1000) });
    const ids = [...new Set(page.entries.flatMap((e) => (e.jobId !== undefined ? [e.jobId] : [])))];
    const records = await Promise.all(ids.map((id) => this.get(id, viewer).catch(() => undefined)));
    return records.filter((r): r is JobRecord => r !== undefined && r.state !== 'awaiting_approval').slice(0, count);
  }

  /** Events after `afterId`; output events only for viewers who may read the job's output. */
  async events(jobId: string, viewer: Identity, afterId = '0', count = 500): Promise<StampedEvent[]> {
    const after = checkEventId(afterId);
    const job = await this.load(jobId, viewer);
    return eventsFor(await this.ctx.events.read(jobId, after, count), accessOf(viewer, job, this.auth));
  }

  /** `via`: where the approver acted (a Slack channel), for the audit record. */
  approve(jobId: string, approver: Requester, reason?: string, via?: ReplyAddress): Promise<JobRecord> {
    return this.decide(jobId, approver, 'approve', reason, via);
  }

  deny(jobId: string, approver: Requester, reason?: string, via?: ReplyAddress): Promise<JobRecord> {
    return this.decide(jobId, approver, 'deny', reason, via);
  }

  private async decide(jobId: string, approver: Requester, decision: 'approve' | 'deny', reason?: string, via?: ReplyAddress): Promise<JobRecord> {
    const job = await this.load(jobId, approver);
    if (job.state !== 'awaiting_approval') throw new CastellanError('conflict', `job ${jobId} is ${job.state}, not awaiting approval`);
    const verdict = authorizeApproval({
      approver,
      vote: decision,
      request: { requester: job.requester, risk: job.risk, tool: job.tool, origin: job.requester.origin },
      votes: job.votes.map((v) => ({ subject: v.subject, vote: v.decision })),
      config: this.auth,
    });
    if (!verdict.ok) {
      await this.ctx.audit.append({ kind: 'refused', jobId, subject: approver.subject, displayName: approver.displayName, origin: approver.origin, tool: job.tool, decision, reason: verdict.reason, via, ...jobAuditFacts(job) });
      throw new CastellanError(verdict.code === 'duplicate_vote' || verdict.code === 'already_decided' ? 'conflict' : 'forbidden', verdict.reason);
    }
    // The voter's roles are kept with the vote so the worker can re-check the approval itself.
    const vote: Vote = { subject: approver.subject, displayName: approver.displayName, origin: approver.origin, roles: [...approver.roles], decision, reason, planHash: job.planHash, at: new Date().toISOString() };
    const denyReason = `denied by ${approver.displayName}${reason ? `: ${reason}` : ''}`;
    const outcome = await this.ctx.store.vote(jobId, vote, job.approvalsRequired, denyReason);
    switch (outcome.kind) {
      case 'duplicate':
        throw new CastellanError('conflict', 'you already voted on this request; each person votes once');
      case 'expired':
        throw new CastellanError('conflict', `the approval window of job ${jobId} has closed`);
      case 'state':
        throw new CastellanError('conflict', `job ${jobId} is ${outcome.state}, not awaiting approval`);
      case 'missing':
        throw new CastellanError('not_found', `no job ${jobId}`);
      default:
        break;
    }
    metrics().approvals.inc({ decision });
    // Its marker is the vote's: a worker that writes a missing one (decisions.ts) writes no second.
    await this.ctx.audit.appendMany([decisionRecord(job, vote, { via })], { markers: [decisionMarker(jobId, approver.subject)] });
    await this.ctx.events.publish(jobId, { type: 'vote', subject: approver.subject, decision, count: outcome.count, required: job.approvalsRequired });
    if (outcome.kind === 'approved') {
      await this.ctx.events.publish(jobId, { type: 'state', state: 'queued', reason: `approved by ${approver.displayName}` });
      await this.promote(jobId);
    } else if (outcome.kind === 'denied') {
      // The vote script wrote `denied` together with the vote (atomic); the rest of the ending here.
      await endJob(this.ctx, job, 'denied', { reason: denyReason, recorded: true });
      await this.promote(jobId);
    }
    // Like a submission, a decision is confirmed only once a replica holds it: a failover
    // right now could lose it, and the approver would believe the job approved.
    const stored = await this.ctx.durable.round([{ votes: this.ctx.keys.job(jobId), subject: approver.subject }]);
    if (stored.kind !== 'durable') {
      const problem = stored.kind === 'unconfirmed' ? stored.problem : 'the current Redis primary does not hold it (a failover under way)';
      throw new CastellanError('unavailable', `unavailable: your ${decision === 'approve' ? 'approval' : 'denial'} of job ${jobId} is not confirmed: ${problem}. Look at the job in a few seconds; if it still awaits approval, decide again.`);
    }
    return this.get(jobId, approver);
  }

  async cancel(jobId: string, by: Requester, reason?: string, via?: ReplyAddress): Promise<JobRecord> {
    const job = await this.load(jobId, by);
    const allowed = authorizeCancel({ by, requester: job.requester });
    if (!allowed.ok) {
      await this.ctx.audit.append({ kind: 'refused', jobId, subject: by.subject, displayName: by.displayName, origin: by.origin, tool: job.tool, reason: allowed.reason, ...jobAuditFacts(job) });
      throw new CastellanError('forbidden', allowed.reason);
    }
    if (isFinal(job.state)) throw new CastellanError('conflict', `job ${jobId} already ended (${job.state})`);
    const why = `cancelled by ${by.displayName}${reason ? `: ${reason}` : ''}`;
    const cancel = JSON.stringify({ by: by.subject, at: new Date().toISOString(), reason: why });
    await this.ctx.audit.append({ kind: 'cancel', jobId, subject: by.subject, displayName: by.displayName, origin: by.origin, tool: job.tool, reason, via, ...jobAuditFacts(job) });
    // Not yet running: end it here. Running: flag it and tell every worker.
    const early = await endJob(this.ctx, job, 'cancelled', { reason: why, from: ['awaiting_approval', 'queued', 'waiting_window'], fields: { cancel } });
    if (early.ended) {
      await this.promote(jobId);
    } else if (early.current === 'running') {
      await this.ctx.store.update(jobId, { cancel });
      await this.ctx.cancel.announce(jobId, why);
    }
    return this.get(jobId, by);
  }

  /**
   * The one way to follow a job: its events after `after` ('0' for all), then live ones,
   * ending after the event that makes it final (or when the signal aborts).
   */
  async *follow(jobId: string, viewer: Identity, options: FollowOptions = {}): AsyncGenerator<StampedEvent> {
    const after = checkEventId(options.after ?? '0');
    yield* this.followLoaded(await this.load(jobId, viewer), viewer, { ...options, after });
  }

  /** `follow` for a record already loaded (wait has just read it: at 1000 hosts its plan and binding are ~0.2 MB of JSON to decode). */
  private async *followLoaded(job: JobRecord, viewer: Identity, options: FollowOptions & { after: string }): AsyncGenerator<StampedEvent> {
    const access = accessOf(viewer, job, this.auth);
    // Yield the cut events (a step's description withheld when details are hidden), not the originals.
    for await (const e of this.ctx.hub.follow(job.id, options)) yield* eventsFor([e], access);
  }

  /**
   * Follow a job until it ends or `timeoutMs` passes, handing each event to `onEvent`.
   * Returns the record as it is at that moment (final or not).
   */
  async wait(jobId: string, viewer: Identity, timeoutMs: number, onEvent?: (e: StampedEvent) => void, signal?: AbortSignal, after = '0'): Promise<JobRecord> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    const onOuterAbort = (): void => controller.abort();
    signal?.addEventListener('abort', onOuterAbort, { once: true });
    // A waiter without an event handler registers for the job's ending before it reads the
    // record: an ending written after that read still wakes it, so the read is also the first
    // look for the ending (one read of the job fewer than registering after it).
    const woken = onEvent ? undefined : await this.ctx.hub.nextEnd(jobId, controller.signal);
    try {
      const loaded = await this.load(jobId, viewer);
      // Ended a while ago: its ending is out. Ended just now: wait for its final event (below).
      if (isFinal(loaded.state) && !onEvent && endingSettled(loaded)) return recordFor(loaded, accessOf(viewer, loaded, this.auth));
      const from = checkEventId(after);
      if (woken) {
        // Not final when read: its ending comes later and wakes us (registered before the read).
        // Final, its event perhaps written before we registered: untilFinal looks at once.
        if (!isFinal(loaded.state)) await woken.promise;
        const ended = await this.untilFinal(jobId, controller.signal);
        if (ended) return recordFor(ended, accessOf(viewer, ended, this.auth));
      } else if (onEvent) {
        for await (const e of this.followLoaded(loaded, viewer, { signal: controller.signal, after: from })) onEvent(e);
      }
    } finally {
      woken?.cancel();
      clearTimeout(timer);
      signal?.removeEventListener('abort', onOuterAbort);
    }
    return this.get(jobId, viewer);
  }

  /**
   * The record once the job's ending is out (undefined: aborted first, or the record is gone).
   * A waiter without an event handler reads no events: woken when the job's final event is
   * written (or by the hub's poll, for a lost message), it reads the state, and the final
   * record in the same round trip. A state already final whose final event is not written yet
   * (the worker is releasing the job's host locks) is waited out, so that a caller told "ended"
   * finds the hosts free and the job's log complete; an event that never comes (its writer
   * died) is waited for ENDING_SETTLE_MS at most.
   */
  private async untilFinal(jobId: string, signal: AbortSignal): Promise<JobRecord | undefined> {
    while (!signal.aborted) {
      // Registered before reading, so an ending written between the read and the wait still wakes us.
      const woken = await this.ctx.hub.nextEnd(jobId, signal);
      const found = await this.ctx.store.ifFinal(jobId);
      if (found === undefined || ('record' in found && (found.announced || endingSettled(found.record)))) {
        woken.cancel();
        return found?.record;
      }
      await woken.promise;
    }
    return undefined;
  }

  /**
   * Wake the delayed BullMQ job so a worker takes it now (approved) or closes it (denied,
   * cancelled). This retries through a Redis blip and, if it still fails, says so in the job's
   * progress and the log; the reconcile rounds (queues/wake.ts wakeDecided) wake it later.
   */
  private async promote(jobId: string): Promise<void> {
    let lastError = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      if (attempt > 0) await sleep(250 * 2 ** attempt);
      try {
        // Woken, or no longer asleep (another server handling a second vote woke it): done.
        await wakeIfDelayed(this.ctx, jobId);
        return;
      } catch (err) {
        lastError = errorMessage(err);
      }
    }
    const record = await this.ctx.store.get(jobId).catch(() => undefined);
    const deadline = record?.expiresAt ? new Date(record.expiresAt).toISOString() : 'its approval deadline';
    this.ctx.logger.error({ jobId, err: lastError }, 'could not wake the job after the decision');
    if (record?.state === 'queued') {
      await this.ctx.events
        .publish(jobId, { type: 'state', state: 'queued', reason: `approved, but the queue could not be woken (${lastError}); the next reconcile round wakes it, ${deadline} at the latest` })
        .catch(() => undefined);
    }
  }
}

function validate(tool: ToolDefinition, input: unknown): unknown {
  const result = validateInput(tool, input ?? {});
  if (result.ok) return result.input;
  throw new CastellanError('invalid_input', `invalid input for ${tool.name}: ${result.message}`, result.issues[0]?.field);
}

const RISK_ORDER = ['read', 'change', 'destructive'] as const;

/** The higher of the tool's risk and the plan's own (never lower than the tool's). */
export function effectiveRisk(toolRisk: (typeof RISK_ORDER)[number], planRisk: (typeof RISK_ORDER)[number] | undefined): (typeof RISK_ORDER)[number] {
  if (planRisk === undefined) return toolRisk;
  return RISK_ORDER.indexOf(planRisk) > RISK_ORDER.indexOf(toolRisk) ? planRisk : toolRisk;
}

function buildPlan(tool: ToolDefinition, input: unknown, ctx: ReturnType<QueueContext['planContext']>): Plan {
  if (!tool.plan) return { tool: tool.name, hosts: [], batches: [], failureBudget: 0 };
  let plan: Plan;
  try {
    plan = tool.plan(input as never, ctx);
  } catch (err) {
    const field = (err as { field?: unknown }).field;
    const isTarget = (err as Error).name === 'TargetError';
    throw new CastellanError(isTarget ? 'bad_target' : 'invalid_input', errorMessage(err), typeof field === 'string' ? field : isTarget ? 'targets' : undefined);
  }
  // A tool bug, not the caller's: a plan the runner could not run safely is never recorded.
  const problems = planShapeProblems(plan);
  if (problems.length) throw new CastellanError('internal', `${tool.name} built an unsound plan: ${problems.join('; ')}`);
  return plan;
}

function requireAnyRole(identity: Identity): void {
  if (identity.roles.length === 0) throw new CastellanError('forbidden', noRoleReason(identity));
}



/** How long after a job's final state its final event may still be on its way (see untilFinal). */
const ENDING_SETTLE_MS = 2_000;

/** The job ended long enough ago that its final event, if any, is written. */
function endingSettled(record: Pick<JobRecord, 'finishedAt' | 'updatedAt'>): boolean {
  const at = Date.parse(record.finishedAt ?? record.updatedAt);
  return !Number.isFinite(at) || Date.now() - at >= ENDING_SETTLE_MS;
}
