import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  authorizeApproval,
  authorizeCancel,
  authorizeRequest,
  checkRecordedApprovals,
  effectiveOrigin,
  jobAccess,
  originForClient,
  visibleRisks,
  type CastVote,
  type RecordedVote,
  type Vote,
} from '../../auth/policy.js';
import { rolesForGroups } from '../../auth/roles.js';
import { parseAuthConfig, type AuthConfig } from '../../auth/settings.js';
import { ORIGINS, type Origin, type Requester } from '../../auth/types.js';
import { RISKS, type Risk } from '../../tools/types.js';

const roles = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const base = parseAuthConfig({ roles });

function person(name: string, groups: string[], origin: Origin = 'cli', config: AuthConfig = base): Requester {
  return { subject: name, displayName: name, groups, roles: rolesForGroups(groups, config.roles), origin };
}

const groupsOf = {
  alice: ['admins'],
  oscar: ['ops'],
  april: ['leads'],
  victor: ['everyone'],
  mallory: ['guests'],
} as const;
type Who = keyof typeof groupsOf;
const who = (name: Who, origin: Origin = 'cli') => person(name, [...groupsOf[name]], origin);

describe('authorizeRequest with the default policy', () => {
  // [who, risk, origin, expected]: a number is approvalsRequired, a string is the refusal code.
  const table: [Who, Risk, Origin, number | string][] = [];
  for (const origin of ORIGINS) {
    table.push(['mallory', 'read', origin, 'no_role'], ['mallory', 'change', origin, 'no_role'], ['mallory', 'destructive', origin, 'no_role']);
    for (const reader of ['victor', 'april'] as const) {
      table.push([reader, 'read', origin, 0], [reader, 'change', origin, 'insufficient_role'], [reader, 'destructive', origin, 'insufficient_role']);
    }
    for (const doer of ['oscar', 'alice'] as const) {
      table.push([doer, 'read', origin, 0], [doer, 'change', origin, origin === 'mcp' ? 1 : 0], [doer, 'destructive', origin, 1]);
    }
  }

  it.each(table)('%s asking for a %s tool via %s -> %s', (name, risk, origin, expected) => {
    const decision = authorizeRequest({ risk, tool: 'restart_service', requester: who(name, origin), config: base });
    if (typeof expected === 'number') expect(decision).toEqual({ ok: true, approvalsRequired: expected });
    else expect(decision).toMatchObject({ ok: false, code: expected });
  });

  it('explains a missing role with the groups and where to fix it', () => {
    const decision = authorizeRequest({ risk: 'read', tool: 'list_hosts', requester: person('m', ['guests', 'interns']), config: base });
    expect(decision).toEqual({
      ok: false,
      code: 'no_role',
      reason: 'no Castellan role: your groups [guests, interns] map to none; ask an admin to add one to roles.*',
    });
  });

  it('names the tool, its risk and the role needed when a viewer asks for a change', () => {
    const decision = authorizeRequest({ risk: 'change', tool: 'restart_service', requester: who('victor'), config: base });
    expect(decision.ok).toBe(false);
    if (!decision.ok) expect(decision.reason).toBe('restart_service is a change tool and needs the operator role; you have viewer');
  });
});

describe('authorizeRequest with policy overrides', () => {
  it('read-only mode refuses every non-read tool, for everyone, with a clear reason', () => {
    const config = parseAuthConfig({ roles, policy: { read_only: true } });
    for (const name of ['alice', 'oscar', 'victor'] as const) {
      for (const risk of ['change', 'destructive'] as const) {
        const decision = authorizeRequest({ risk, tool: 'reboot_nodes', requester: who(name), config });
        expect(decision).toMatchObject({ ok: false, code: 'read_only' });
        if (!decision.ok) expect(decision.reason).toContain('Castellan is in read-only mode');
      }
      expect(authorizeRequest({ risk: 'read', tool: 'list_hosts', requester: who(name), config })).toEqual({ ok: true, approvalsRequired: 0 });
    }
  });

  it('approvals.required sets M for every request that waits', () => {
    const config = parseAuthConfig({ roles, policy: { approvals: { required: 2 } } });
    expect(authorizeRequest({ risk: 'destructive', tool: 'wipe', requester: who('alice', 'slack'), config })).toEqual({ ok: true, approvalsRequired: 2 });
    expect(authorizeRequest({ risk: 'change', tool: 'restart', requester: who('oscar', 'mcp'), config })).toEqual({ ok: true, approvalsRequired: 2 });
    expect(authorizeRequest({ risk: 'change', tool: 'restart', requester: who('oscar', 'cli'), config })).toEqual({ ok: true, approvalsRequired: 0 });
  });

  it.each<[Record<string, unknown>, Risk, Origin, number]>([
    [{ change: ['mcp', 'slack'] }, 'change', 'slack', 1],
    [{ change: ['mcp', 'slack'] }, 'change', 'cli', 0],
    // An AI client never skips approval for anything beyond reading, whatever the config says.
    [{ change: [] }, 'change', 'mcp', 1],
    [{ change: [] }, 'change', 'cli', 0],
    [{ read: ['mcp'] }, 'read', 'mcp', 1],
    [{ read: ['mcp'] }, 'read', 'cli', 0],
    [{ destructive: ['mcp'] }, 'destructive', 'cli', 0],
    [{ destructive: ['mcp'] }, 'destructive', 'mcp', 1],
    [{ change: ['slack'] }, 'destructive', 'dashboard', 1],
  ])('require_approval %j: %s via %s waits for %i approvals', (requireApproval, risk, origin, expected) => {
    const config = parseAuthConfig({ roles, policy: { require_approval: requireApproval } });
    expect(authorizeRequest({ risk, tool: 't', requester: who('oscar', origin), config })).toEqual({ ok: true, approvalsRequired: expected });
  });

  it('refuses a config that lets destructive tools skip approval entirely', () => {
    expect(() => parseAuthConfig({ roles, policy: { require_approval: { destructive: [] } } })).toThrow(/destructive/);
  });

  it('refuses unknown policy keys and origins instead of ignoring them', () => {
    expect(() => parseAuthConfig({ roles, policy: { readonly: true } })).toThrow();
    expect(() => parseAuthConfig({ roles, policy: { require_approval: { change: ['email'] } } })).toThrow();
  });

  it('holds its invariants for every role set, risk and origin', () => {
    const roleNames = ['admin', 'operator', 'approver', 'viewer'] as const;
    fc.assert(
      fc.property(
        fc.subarray([...roleNames]),
        fc.constantFrom(...RISKS),
        fc.constantFrom(...ORIGINS),
        fc.boolean(),
        (held, risk, origin, readOnly) => {
          const config = parseAuthConfig({ roles, policy: { read_only: readOnly } });
          const groups = held.map((role) => roles[role][0]!);
          const decision = authorizeRequest({ risk, tool: 't', requester: person('p', groups, origin, config), config });
          if (decision.ok) {
            if (risk !== 'read') expect(held.some((r) => r === 'operator' || r === 'admin')).toBe(true);
            if (risk !== 'read') expect(readOnly).toBe(false);
            if (risk === 'destructive') expect(decision.approvalsRequired).toBeGreaterThanOrEqual(1);
          } else if (held.length === 0) {
            expect(decision.code).toBe('no_role');
          }
          // Everything a role may run is visible to it, and nothing it may not.
          expect(visibleRisks(person('p', groups, origin, config), config).includes(risk)).toBe(decision.ok);
        },
      ),
    );
  });
});

describe('authorizeApproval', () => {
  const request = { requester: who('oscar'), risk: 'destructive' as const, tool: 'reboot_nodes', origin: 'mcp' as const };
  const selfOk = parseAuthConfig({ roles, policy: { approvals: { allow_self_approval: true } } });
  const twoNeeded = parseAuthConfig({ roles, policy: { approvals: { required: 2 } } });

  // [approver, origin, vote, prior votes, config, expected outcome or refusal code]
  const table: [string, Requester, Vote, CastVote[], AuthConfig, string][] = [
    ['an approver via slack approves', who('april', 'slack'), 'approve', [], base, 'approved'],
    ['an admin via the dashboard approves', who('alice', 'dashboard'), 'approve', [], base, 'approved'],
    ['an approver via the CLI denies', who('april', 'cli'), 'deny', [], base, 'denied'],
    ['an approver via MCP is refused', who('april', 'mcp'), 'approve', [], base, 'ai_client'],
    ['an admin via MCP is refused', who('alice', 'mcp'), 'approve', [], base, 'ai_client'],
    ['an operator without approver role is refused', person('otto', ['ops'], 'slack'), 'approve', [], base, 'not_approver'],
    ['a viewer is refused', who('victor', 'slack'), 'approve', [], base, 'not_approver'],
    ['someone without a role is refused', who('mallory', 'slack'), 'approve', [], base, 'no_role'],
    ['the requester cannot approve their own request', person('oscar', ['ops', 'leads'], 'slack'), 'approve', [], base, 'self_approval'],
    ['the requester cannot deny as an approver either', person('oscar', ['ops', 'leads'], 'slack'), 'deny', [], base, 'self_approval'],
    ['self-approval when allowed', person('oscar', ['ops', 'leads'], 'slack'), 'approve', [], selfOk, 'approved'],
    ['self-approval via MCP, even when allowed', person('oscar', ['ops', 'leads'], 'mcp'), 'approve', [], selfOk, 'ai_client'],
    ['first of two approvals', who('april', 'slack'), 'approve', [], twoNeeded, 'pending'],
    ['second of two approvals', who('alice', 'slack'), 'approve', [{ subject: 'april', vote: 'approve' }], twoNeeded, 'approved'],
    ['the same person approving twice', who('april', 'slack'), 'approve', [{ subject: 'april', vote: 'approve' }], twoNeeded, 'duplicate_vote'],
    ['the same person switching to deny', who('april', 'slack'), 'deny', [{ subject: 'april', vote: 'approve' }], twoNeeded, 'duplicate_vote'],
    ['a denial after one approval of two', who('alice', 'slack'), 'deny', [{ subject: 'april', vote: 'approve' }], twoNeeded, 'denied'],
    ['a vote after a denial', who('alice', 'slack'), 'approve', [{ subject: 'april', vote: 'deny' }], twoNeeded, 'already_decided'],
    ['a vote after the quorum', who('alice', 'slack'), 'approve', [{ subject: 'april', vote: 'approve' }], base, 'already_decided'],
    ['an approval in read-only mode', who('april', 'slack'), 'approve', [], parseAuthConfig({ roles, policy: { read_only: true } }), 'read_only'],
  ];

  it.each(table)('%s', (_label, approver, vote, votes, config, expected) => {
    const decision = authorizeApproval({ approver, vote, request, votes, config });
    if (['approved', 'denied', 'pending'].includes(expected)) expect(decision).toMatchObject({ ok: true, outcome: expected });
    else expect(decision).toMatchObject({ ok: false, code: expected });
    if (!decision.ok) expect(decision.reason.length).toBeGreaterThan(10);
  });

  it('counts approvals and the quorum', () => {
    expect(
      authorizeApproval({ approver: who('april', 'slack'), vote: 'approve', request, votes: [], config: twoNeeded }),
    ).toEqual({ ok: true, outcome: 'pending', approvals: 1, required: 2 });
  });
});

describe('visibleRisks', () => {
  it.each<[Who, boolean, Risk[]]>([
    ['mallory', false, []],
    ['victor', false, ['read']],
    ['april', false, ['read']],
    ['oscar', false, ['read', 'change', 'destructive']],
    ['alice', false, ['read', 'change', 'destructive']],
    ['alice', true, ['read']],
    ['mallory', true, []],
  ])('%s (read-only %s) sees %j', (name, readOnly, expected) => {
    const config = parseAuthConfig({ roles, policy: { read_only: readOnly } });
    expect(visibleRisks(who(name), config)).toEqual(expected);
  });
});

describe('originForClient and effectiveOrigin', () => {
  const clients = { 'castellan-cli': 'cli', 'castellan-dashboard': 'dashboard', 'claude-code': 'mcp' } as const;
  it.each<[string | undefined, Origin]>([
    ['castellan-cli', 'cli'],
    ['castellan-dashboard', 'dashboard'],
    ['claude-code', 'mcp'],
    ['mcp-inspector', 'mcp'],
    ['', 'mcp'],
    [undefined, 'mcp'],
    // Prototype keys are not clients.
    ['__proto__', 'mcp'],
    ['constructor', 'mcp'],
    ['toString', 'mcp'],
  ])('client %j -> %s', (client, origin) => {
    expect(originForClient(client, clients)).toBe(origin);
  });

  it('the default map trusts only the castellan-cli client', () => {
    expect(originForClient('castellan-cli', base.clients)).toBe('cli');
    expect(originForClient('claude-code', base.clients)).toBe('mcp');
    expect(originForClient('castellan-cli', parseAuthConfig({ roles, clients: { 'my-cli': 'cli' } }).clients)).toBe('mcp');
  });

  it('an endpoint can lower an origin, never raise it', () => {
    expect(effectiveOrigin('cli', 'mcp')).toBe('mcp');
    expect(effectiveOrigin('mcp', 'mcp')).toBe('mcp');
    expect(effectiveOrigin('mcp', 'cli')).toBe('mcp');
    expect(effectiveOrigin('mcp', 'dashboard')).toBe('mcp');
    expect(effectiveOrigin('dashboard')).toBe('dashboard');
  });

  it('an AI origin waits for approval on every change and destructive tool, whatever require_approval lists', () => {
    fc.assert(
      fc.property(fc.subarray([...ORIGINS]), fc.constantFrom<Risk>('change', 'destructive'), (listed, risk) => {
        const policy = risk === 'destructive' && listed.length === 0 ? {} : { require_approval: { [risk]: listed } };
        const config = parseAuthConfig({ roles, policy });
        expect(authorizeRequest({ risk, tool: 't', requester: who('alice', 'mcp'), config })).toEqual({ ok: true, approvalsRequired: 1 });
      }),
    );
  });
});

describe('authorizeCancel', () => {
  it.each<[string, Requester, string, boolean]>([
    ['the requester via MCP', who('oscar', 'mcp'), 'oscar', true],
    ['the requester via the CLI', who('victor', 'cli'), 'victor', true],
    ['an operator, another person\'s job, via the CLI', who('oscar', 'cli'), 'alice', true],
    ['an approver via Slack', who('april', 'slack'), 'oscar', true],
    ['an admin via MCP, another person\'s job', who('alice', 'mcp'), 'oscar', false],
    ['a viewer, another person\'s job', who('victor', 'dashboard'), 'oscar', false],
    ['someone without a role, even their own', who('mallory', 'cli'), 'mallory', false],
  ])('%s -> %s', (_label, by, requester, allowed) => {
    const decision = authorizeCancel({ by, requester: { subject: requester } });
    expect(decision.ok).toBe(allowed);
    if (!decision.ok) expect(decision.reason.length).toBeGreaterThan(10);
  });
});

describe('jobAccess (who sees what)', () => {
  const job = (risk: Risk, approvalsRequired = 0, votes: { subject: string }[] = []) => ({ risk, requester: { subject: 'oscar' }, approvalsRequired, votes });
  it.each<[string, Who, ReturnType<typeof job>, AuthConfig, boolean, boolean]>([
    ['an admin sees everything', 'alice', job('destructive'), base, true, true],
    ['the requester sees their job', 'oscar', job('destructive', 1), base, true, true],
    ['an approver sees a job asking for approval', 'april', job('destructive', 1), base, true, true],
    ['an approver sees only a summary of a job that asked for none', 'april', job('change'), base, false, false],
    ['a voter sees the job they voted on', 'victor', job('change', 0, [{ subject: 'victor' }]), base, true, true],
    ['a viewer sees output of a read job only', 'victor', job('read'), base, false, true],
    ['a viewer sees no input or output of a change job', 'victor', job('change'), base, false, false],
    ['output_for_others: all', 'victor', job('change'), parseAuthConfig({ roles, policy: { visibility: { output_for_others: 'all' } } }), false, true],
    ['output_for_others: none', 'victor', job('read'), parseAuthConfig({ roles, policy: { visibility: { output_for_others: 'none' } } }), false, false],
    ['no role, nothing', 'mallory', job('read'), base, false, false],
  ])('%s', (_label, name, facts, config, details, output) => {
    const access = jobAccess(who(name), facts, config);
    expect(access).toMatchObject({ details, output });
    if (!details) expect(access.hidden).toBeTruthy();
  });
});

describe('checkRecordedApprovals (the worker re-check)', () => {
  const planHash = 'a'.repeat(64);
  const job = { risk: 'destructive' as const, requester: { subject: 'oscar' }, approvalsRequired: 1, votes: [], planHash, expiresAt: Date.parse('2030-01-01T00:15:00Z') };
  const vote = (over: Partial<RecordedVote> = {}): RecordedVote => ({ subject: 'april', decision: 'approve', origin: 'slack', roles: ['approver', 'viewer'], planHash, at: '2030-01-01T00:05:00Z', ...over });
  it.each<[string, RecordedVote[], number, boolean, RegExp | undefined]>([
    ['one valid approval', [vote()], 1, true, undefined],
    ['no votes at all (a state field set by hand)', [], 1, false, /0 valid approval/],
    ['an approval via MCP', [vote({ origin: 'mcp' })], 1, false, /voted via mcp/],
    ['an approval by someone without the approver role', [vote({ roles: ['operator', 'viewer'] })], 1, false, /approver role/],
    ['a vote recorded without roles', [vote({ roles: undefined })], 1, false, /approver role/],
    ['the requester approving', [vote({ subject: 'oscar' })], 1, false, /requester/],
    ['an approval of another plan', [vote({ planHash: 'b'.repeat(64) })], 1, false, /different plan/],
    ['an approval after the deadline', [vote({ at: '2030-01-01T00:20:00Z' })], 1, false, /after the deadline/],
    ['the same approver twice for two required', [vote(), vote()], 2, false, /1 valid approval/],
    ['two distinct approvers for two required', [vote(), vote({ subject: 'alice', roles: ['admin', 'approver'] })], 2, true, undefined],
    ['a denial among approvals', [vote(), vote({ subject: 'alice', decision: 'deny' })], 1, false, /denial/],
  ])('%s', (_label, votes, required, ok, reason) => {
    const check = checkRecordedApprovals({ job: { ...job, approvalsRequired: required }, votes, allowSelfApproval: false });
    expect(check.ok).toBe(ok);
    if (!check.ok && reason) expect(check.reason).toMatch(reason);
  });

  it('the requester counts when self-approval is allowed', () => {
    expect(checkRecordedApprovals({ job, votes: [vote({ subject: 'oscar' })], allowSelfApproval: true }).ok).toBe(true);
  });
});
