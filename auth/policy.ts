// Who may run what, and who may approve it: pure functions over risk x role x origin.
// No I/O and no clock, so every cell of the table is a unit test. Front ends and the job
// queue call these; they never re-implement a rule.
import { isPersonOrigin, MOST_RESTRICTED_ORIGIN, type Identity, type Origin, type Requester, type Role } from './types.js';
import type { AuthConfig, ClientOrigins } from './settings.js';
import type { Risk } from '../config/vocabulary.js';
import { hasRole, noRoleReason } from './roles.js';

/**
 * The origin of a bearer token: the OIDC client it was issued to (`client_id`, `azp`, or the
 * introspection answer's `client_id`), looked up in `auth.clients`. A client Castellan does not
 * know is treated as an AI client, the most restricted origin. Nothing the caller sends besides
 * the verified token (no header, no parameter) takes part, so no request can raise its origin.
 */
export function originForClient(clientId: string | undefined, clients: ClientOrigins): Origin {
  if (clientId === undefined || clientId === '' || !Object.hasOwn(clients, clientId)) return MOST_RESTRICTED_ORIGIN;
  return clients[clientId] ?? MOST_RESTRICTED_ORIGIN;
}

/**
 * The origin a request through one endpoint carries: the credential's origin, lowered to the
 * endpoint's own when the endpoint is an AI protocol (a CLI token used on /mcp is still MCP).
 * An endpoint can lower an origin, never raise it.
 */
export function effectiveOrigin(credential: Origin, endpoint?: Origin): Origin {
  if (endpoint === undefined) return credential;
  return isPersonOrigin(endpoint) ? credential : endpoint;
}

export type RequestRefusal = 'no_role' | 'read_only' | 'insufficient_role';

export type RequestDecision =
  | { readonly ok: true; readonly approvalsRequired: number }
  | { readonly ok: false; readonly code: RequestRefusal; readonly reason: string };

/** The least role that may ask for a tool of each risk. */
const MINIMUM_ROLE: Readonly<Record<Risk, Role>> = { read: 'viewer', change: 'operator', destructive: 'operator' };

const READ_ONLY_REASON = 'Castellan is in read-only mode (policy.read_only): only read tools run';

/** May `requester` run `tool` (of `risk`) from their origin, and how many approvals must it collect? */
export function authorizeRequest(args: {
  risk: Risk;
  tool: string;
  requester: Requester;
  config: AuthConfig;
}): RequestDecision {
  const { risk, tool, requester, config } = args;
  if (requester.roles.length === 0) return { ok: false, code: 'no_role', reason: noRoleReason(requester) };
  if (config.policy.readOnly && risk !== 'read') {
    return { ok: false, code: 'read_only', reason: `${READ_ONLY_REASON}; ${tool} is a ${risk} tool` };
  }
  const needed = MINIMUM_ROLE[risk];
  if (!hasRole(requester, needed)) {
    return {
      ok: false,
      code: 'insufficient_role',
      reason: `${tool} is a ${risk} tool and needs the ${needed} role; you have ${requester.roles.join(', ')}`,
    };
  }
  // Skipping an approval is a decision only a person may make: whatever require_approval says,
  // anything an AI client asks for beyond reading waits for a human.
  const waits = config.policy.requireApproval[risk].includes(requester.origin) || (risk !== 'read' && !isPersonOrigin(requester.origin));
  return { ok: true, approvalsRequired: waits ? config.policy.approvalsRequired : 0 };
}

export type Vote = 'approve' | 'deny';

export interface CastVote {
  readonly subject: string;
  readonly vote: Vote;
}

export interface PendingRequest {
  readonly requester: Identity;
  readonly risk: Risk;
  readonly tool: string;
  /** Where the original request came from (shown to approvers; not a rule input today). */
  readonly origin: Origin;
}

export type ApprovalRefusal =
  | 'no_role'
  | 'not_approver'
  | 'ai_client'
  | 'self_approval'
  | 'duplicate_vote'
  | 'already_decided'
  | 'read_only';

/** Where the request stands once this vote is counted. */
export type ApprovalOutcome = 'pending' | 'approved' | 'denied';

export type ApprovalDecision =
  | { readonly ok: true; readonly outcome: ApprovalOutcome; readonly approvals: number; readonly required: number }
  | { readonly ok: false; readonly code: ApprovalRefusal; readonly reason: string };

/**
 * May `approver` cast `vote` on `request`, given the votes already counted? On success,
 * returns the request's outcome with this vote included. One denial by an eligible
 * approver denies; M distinct approvals approve.
 */
export function authorizeApproval(args: {
  approver: Requester;
  vote: Vote;
  request: PendingRequest;
  votes: readonly CastVote[];
  config: AuthConfig;
}): ApprovalDecision {
  const { approver, vote, request, votes, config } = args;
  const required = config.policy.approvalsRequired;
  if (approver.roles.length === 0) return { ok: false, code: 'no_role', reason: noRoleReason(approver) };
  // An approval is the human check on what an AI client (or anyone) asked for; letting an
  // MCP client cast it would let the model approve its own plan.
  if (!isPersonOrigin(approver.origin)) return { ok: false, code: 'ai_client', reason: aiClientReason(vote) };
  if (!hasRole(approver, 'approver')) {
    return { ok: false, code: 'not_approver', reason: `approving needs the approver role; you have ${approver.roles.join(', ')}` };
  }
  if (approver.subject === request.requester.subject && !config.policy.allowSelfApproval) {
    return {
      ok: false,
      code: 'self_approval',
      reason: 'you asked for this run, so someone else must approve it (policy.approvals.allow_self_approval is off)',
    };
  }
  if (config.policy.readOnly && request.risk !== 'read') {
    return { ok: false, code: 'read_only', reason: `${READ_ONLY_REASON}; ${request.tool} cannot be approved` };
  }
  if (votes.some((cast) => cast.vote === 'deny')) {
    return { ok: false, code: 'already_decided', reason: `this ${request.tool} request was already denied` };
  }
  const approvals = new Set(votes.filter((cast) => cast.vote === 'approve').map((cast) => cast.subject));
  if (approvals.size >= required) {
    return { ok: false, code: 'already_decided', reason: `this ${request.tool} request was already approved` };
  }
  if (votes.some((cast) => cast.subject === approver.subject)) {
    return { ok: false, code: 'duplicate_vote', reason: 'you already voted on this request; each person votes once' };
  }
  if (vote === 'deny') return { ok: true, outcome: 'denied', approvals: approvals.size, required };
  const count = approvals.size + 1;
  return { ok: true, outcome: count >= required ? 'approved' : 'pending', approvals: count, required };
}

/** Which tool risks to list for this identity (MCP `tools/list`, CLI help, Slack help). */
export function visibleRisks(identity: Pick<Identity, 'roles'>, config: AuthConfig): Risk[] {
  if (identity.roles.length === 0) return [];
  if (config.policy.readOnly || !hasRole(identity, 'operator')) return ['read'];
  return ['read', 'change', 'destructive'];
}

/** Why an AI-client credential cannot vote; the same words on every endpoint. */
export function aiClientReason(vote: Vote): string {
  const verb = vote === 'approve' ? 'approvals' : 'denials';
  return (
    `${verb} cannot be given by an AI client (through MCP, or with a token issued to an OIDC client that auth.clients ` +
    'does not map to cli, slack or dashboard): a person decides, in Slack, the dashboard or the CLI'
  );
}

export type CancelDecision = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * May `by` cancel a job requested by `requester`? Anyone may stop their own job. A person
 * with the operator, approver or admin role may stop anyone's (stopping is safer than running,
 * and the approver may be the one who notices); an AI client only its own user's jobs.
 */
export function authorizeCancel(args: { by: Requester; requester: Pick<Identity, 'subject'> }): CancelDecision {
  const { by, requester } = args;
  if (by.roles.length === 0) return { ok: false, reason: noRoleReason(by) };
  if (by.subject === requester.subject) return { ok: true };
  if (!isPersonOrigin(by.origin)) {
    return { ok: false, reason: "an AI client may cancel only its own user's jobs; a person can cancel this one from the CLI, Slack or the dashboard" };
  }
  if (!by.roles.some((r) => r === 'operator' || r === 'approver' || r === 'admin')) {
    return { ok: false, reason: "cancelling someone else's job needs the operator or approver role" };
  }
  return { ok: true };
}

/** The facts about a job that visibility and the vote re-check depend on. */
export interface JobFacts {
  readonly risk: Risk;
  readonly requester: Pick<Identity, 'subject'>;
  readonly approvalsRequired: number;
  readonly votes: readonly { readonly subject: string }[];
}

/**
 * What a viewer may see of one job. `details`: the input, the exact commands and scripts of
 * the plan, votes' reasons. `output`: what the hosts printed and the structured result.
 * Someone who sees neither still sees the summary: tool, state, requester, hosts, times.
 */
export interface JobAccess {
  readonly details: boolean;
  readonly output: boolean;
  /** Why details or output are hidden (shown in place of them). */
  readonly hidden?: string | undefined;
}

/**
 * Who may see what: admins see everything; the requester and anyone who voted see their jobs;
 * an approver sees every job that asks for approval (they must see what they would approve);
 * everyone else with a role sees summaries, and output for read jobs only (or per
 * policy.visibility.output_for_others). Without a role: nothing (callers refuse first).
 */
export function jobAccess(viewer: Pick<Identity, 'subject' | 'roles'>, job: JobFacts, config: AuthConfig): JobAccess {
  if (viewer.roles.length === 0) return { details: false, output: false, hidden: 'no Castellan role' };
  const involved =
    hasRole(viewer, 'admin') ||
    viewer.subject === job.requester.subject ||
    job.votes.some((v) => v.subject === viewer.subject) ||
    (job.approvalsRequired > 0 && hasRole(viewer, 'approver'));
  if (involved) return { details: true, output: true };
  const rule = config.policy.outputForOthers;
  const output = rule === 'all' || (rule === 'read' && job.risk === 'read');
  return {
    details: false,
    output,
    hidden: `only the requester, its approvers and admins see this job's input${output ? '' : ' and output'} (policy.visibility)`,
  };
}

/** One recorded vote as the worker re-reads it from the job record. */
export interface RecordedVote {
  readonly subject: string;
  readonly decision: Vote;
  readonly origin: Origin;
  /** Roles the voter held when voting; absent on records written before roles were kept. */
  readonly roles?: readonly Role[] | undefined;
  readonly planHash: string;
  /** ISO time of the vote. */
  readonly at: string;
}

export type RecordedApprovalCheck = { readonly ok: true; readonly approvers: readonly string[] } | { readonly ok: false; readonly reason: string };

/**
 * The worker's own check, before it runs a job that needed approval: are the approvals really
 * there in the vote records (not just a state field saying so)? Counts distinct approvers who
 * voted from a person-driven origin, held the approver role, were not the requester (unless
 * allowed), approved this exact plan, and voted before the deadline; any denial refuses.
 */
export function checkRecordedApprovals(args: {
  job: JobFacts & { readonly planHash: string; readonly expiresAt?: number | undefined };
  votes: readonly RecordedVote[];
  /** policy.approvals.allow_self_approval */
  allowSelfApproval: boolean;
}): RecordedApprovalCheck {
  const { job, votes, allowSelfApproval } = args;
  if (job.approvalsRequired <= 0) return { ok: true, approvers: [] };
  const denial = votes.find((v) => v.decision === 'deny');
  if (denial) return { ok: false, reason: `the vote records hold a denial by ${denial.subject}` };
  const valid = new Set<string>();
  const problems: string[] = [];
  for (const v of votes) {
    if (!isPersonOrigin(v.origin)) problems.push(`${v.subject} voted via ${v.origin}`);
    else if (v.roles === undefined || !hasRole({ roles: v.roles }, 'approver')) problems.push(`${v.subject} did not hold the approver role`);
    else if (v.subject === job.requester.subject && !allowSelfApproval) problems.push(`${v.subject} is the requester`);
    else if (v.planHash !== job.planHash) problems.push(`${v.subject} approved a different plan`);
    else if (job.expiresAt !== undefined && Date.parse(v.at) > job.expiresAt) problems.push(`${v.subject} voted after the deadline`);
    else valid.add(v.subject);
  }
  if (valid.size >= job.approvalsRequired) return { ok: true, approvers: [...valid] };
  const detail = problems.length > 0 ? ` (${problems.join('; ')})` : '';
  return { ok: false, reason: `the vote records hold ${valid.size} valid approval(s) of the ${job.approvalsRequired} required${detail}` };
}

/**
 * Which audit entries a viewer may read. Every entry listed is shown whole, so the rule lists
 * only entries of jobs where jobAccess counts the viewer as involved: admins read everything;
 * everyone else with a role reads what they did themselves and what was done on jobs they
 * requested; approvers also read everything about jobs that asked for approval (they see
 * those jobs whole too). Without a role: nothing (callers refuse first).
 */
export type AuditScope = { readonly all: true } | { readonly all: false; readonly subject: string; readonly gated: boolean };

export function auditScope(viewer: Pick<Identity, 'subject' | 'roles'>): AuditScope {
  if (hasRole(viewer, 'admin')) return { all: true };
  return { all: false, subject: viewer.subject, gated: hasRole(viewer, 'approver') };
}
