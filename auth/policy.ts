// Who may run what, and who may approve it: pure functions over risk x role x origin.
// No I/O and no clock, so every cell of the table is a unit test. Front ends and the job
// queue call these; they never re-implement a rule.
import type { Identity, Origin, Requester, Role } from './types.js';
import type { AuthConfig } from './settings.js';
import type { Risk } from '../tools/types.js';
import { hasRole, noRoleReason } from './roles.js';

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
  const waits = config.policy.requireApproval[risk].includes(requester.origin);
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
  if (approver.origin === 'mcp') {
    return {
      ok: false,
      code: 'ai_client',
      reason: 'approvals cannot be given through MCP (an AI client may never approve); use Slack, the dashboard or the CLI',
    };
  }
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
