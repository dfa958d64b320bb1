// bmc_power's plan (argv without the password, risk by action, the inventory vars it needs)
// and how ipmitool's -v diagnostics read as host statuses. The real ipmi_sim runs in
// test/integration/bmc-power.test.ts.
import { describe, expect, it } from 'vitest';
import type { Host, Inventory } from '../../config/types.js';
import { ipmiOutcome, jumpHostOutcome, jumpHostRequest } from '../../src/bmc/ipmitool.js';
import { stepKind } from '../../tools/steps/index.js';
import { annotations, getTool, validateInput } from '../../tools/index.js';
import type { PlanContext } from '../../tools/types.js';

function ctxWith(vars: Record<string, unknown>): PlanContext {
  const host = (name: string, v: Record<string, unknown>): Host => ({ name, address: name, port: 22, user: undefined, privateKeyFile: undefined, groups: ['all'], labels: {}, vars: v });
  const inventory: Inventory = { sources: ['t'], hosts: new Map([['n1', host('n1', vars)], ['jump', host('jump', {})]]), groups: new Map([['all', ['n1', 'jump']]]), children: new Map() };
  return { inventory, resolve: (e) => (e === 'n1' ? ['n1'] : e === 'all' ? ['n1', 'jump'] : []), defaults: { commandTimeoutMs: 30_000, connectTimeoutMs: 5000 }, localRoot: '/srv' };
}

const tool = getTool('bmc_power');
const plan = (input: Record<string, unknown>, vars: Record<string, unknown> = { bmc_host: '10.0.9.1', bmc_user: 'admin', bmc_credential: 'rack-a' }) => {
  const v = validateInput(tool, { targets: 'n1', ...input });
  if (!v.ok) throw new Error(JSON.stringify(v.issues));
  return tool.plan!(v.input, ctxWith(vars));
};

describe('bmc_power plans', () => {
  it('status is a read with the password only named, never in argv; on is a change; off, cycle, reset, pxe destructive', () => {
    const status = plan({});
    expect(status.risk).toBeUndefined();
    expect(status.batches[0]?.steps.map((s) => s.action)).toEqual([{ kind: 'ipmi', args: ['-I', 'lanplus', '-H', '10.0.9.1', '-p', '623', '-U', 'admin', '-E', 'chassis', 'power', 'status'], credential: 'rack-a' }]);
    expect(plan({ action: 'on' }).risk).toBe('change');
    for (const action of ['off', 'cycle', 'reset', 'pxe']) expect(plan({ action }).risk).toBe('destructive');
    const cycle = plan({ action: 'cycle' }, { bmc_host: 'bmc1', bmc_user: 'admin', bmc_credential: 'rack-a', bmc_port: 6230, bmc_cipher_suite: 17 });
    expect(cycle.batches[0]?.steps.map((s) => [s.id, s.subject, s.action.kind === 'ipmi' ? s.action.args.slice(4).join(' ') : ''])).toEqual([
      ['cycle-n1', 'n1', '-p 6230 -U admin -E -C 17 chassis power cycle'],
      ['status-n1', 'n1', '-p 6230 -U admin -E -C 17 chassis power status'],
    ]);
    expect(annotations(tool)).toMatchObject({ readOnlyHint: false, destructiveHint: true });
  });

  it('with bmc_via, ipmitool runs on the jump host about the node, the password on stdin (-f /dev/stdin), never argv', () => {
    const vars = { bmc_host: '10.0.9.1', bmc_user: 'admin', bmc_credential: 'rack-a', bmc_via: 'jump' };
    const cycle = plan({ action: 'cycle' }, vars);
    expect(cycle.hosts).toEqual(['n1']);
    const [control, read] = cycle.batches[0]!.steps;
    expect(control).toMatchObject({ id: 'cycle-n1', hosts: ['jump'], subject: 'n1', description: 'power cycle (off, then on) of n1 through its BMC admin@10.0.9.1:623, from jump' });
    expect(control?.action).toEqual({ kind: 'ipmi', args: ['-I', 'lanplus', '-H', '10.0.9.1', '-p', '623', '-U', 'admin', '-f', '/dev/stdin', 'chassis', 'power', 'cycle'], credential: 'rack-a', via: 'jump' });
    expect(read).toMatchObject({ id: 'status-n1', hosts: ['jump'], subject: 'n1' });
    expect(stepKind(control!.action).details?.(control!.action as never)).toEqual({ runs_on: 'jump', password: "on ipmitool's stdin from bmc credential 'rack-a' (never in argv or a file)" });
    expect(() => plan({}, { ...vars, bmc_via: 'nowhere' })).toThrow(/bmc_via of n1 must name an inventory host \(the jump host that runs ipmitool\), not "nowhere"/);
    expect(() => plan({}, { ...vars, bmc_via: 'n1' })).toThrow(/bmc_via of n1 names n1 itself/);
  });

  it('on a jump host the password is one stdin line ipmitool -f reads whole, or refused', () => {
    expect(jumpHostRequest(['-f', '/dev/stdin', 'chassis', 'power', 'status'], 'pw-20-bytes-exactly', 'j.s')).toEqual({ argv: ['ipmitool', '-v', '-f', '/dev/stdin', 'chassis', 'power', 'status'], asRoot: false, stdin: 'pw-20-bytes-exactly\n', runId: 'j.s' });
    expect(jumpHostRequest([], 'x'.repeat(21), 'j.s')).toEqual({ refused: expect.stringMatching(/at most 20 bytes on one line/) });
    expect(jumpHostRequest([], 'two\nlines', 'j.s')).toHaveProperty('refused');
    const over = { host: 'jump', status: 'failed' as const, exitCode: 1, signal: null, stdout: '', stderr: 'Loading IANA PEN Registry...\n> RAKP 2 HMAC is invalid\n', truncated: false, startedAt: '', durationMs: 5, connectMs: 1 };
    expect(jumpHostOutcome('n1', over)).toMatchObject({ host: 'jump', status: 'auth_failed', error: 'the BMC of n1 refused the user or password (RAKP 2 HMAC is invalid)', stderr: 'RAKP 2 HMAC is invalid' });
    expect(jumpHostOutcome('n1', { ...over, status: 'unreachable', exitCode: null, stderr: '', error: 'connect ECONNREFUSED' })).toMatchObject({ status: 'unreachable', error: 'connect ECONNREFUSED' });
  });

  it('names the missing or malformed inventory var', () => {
    expect(() => plan({}, { bmc_host: '10.0.9.1', bmc_credential: 'rack-a' })).toThrow(/n1 needs inventory var bmc_user \(the BMC login\)/);
    expect(() => plan({}, { bmc_host: '-oProxyCommand=x', bmc_user: 'admin', bmc_credential: 'rack-a' })).toThrow(/bmc_host \(the BMC address\), not "-oProxyCommand=x"/);
    expect(() => plan({}, { bmc_host: 'b', bmc_user: 'admin', bmc_credential: 'rack-a', bmc_port: 'x' })).toThrow(/bmc_port of n1 must be a port number/);
    expect(validateInput(tool, { targets: 'n1', action: 'explode' })).toMatchObject({ ok: false, issues: [{ field: 'action' }] });
  });
});

describe('ipmitool outcomes (stderr of ipmitool -v)', () => {
  it('a refused password or user is auth_failed, a silent BMC unreachable, anything else failed', () => {
    expect(ipmiOutcome('n1', 1, null, '', 'Loading IANA PEN Registry...\n> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session\n')).toEqual({ status: 'auth_failed', error: 'the BMC of n1 refused the user or password (RAKP 2 HMAC is invalid)' });
    expect(ipmiOutcome('n1', 1, null, '', 'RAKP 2 message indicates an error : unauthorized name\nError: Unable to establish IPMI v2 / RMCP+ session\n').status).toBe('auth_failed');
    expect(ipmiOutcome('n1', 1, null, '', 'Get Auth Capabilities error\nError issuing Get Channel Authentication Capabilities request\nError: Unable to establish IPMI v2 / RMCP+ session\n')).toMatchObject({ status: 'unreachable', error: expect.stringMatching(/^the BMC of n1 did not answer/) });
    expect(ipmiOutcome('n1', 1, null, '', 'Invalid chassis power command: x\n')).toEqual({ status: 'failed', error: 'ipmitool exited 1: Invalid chassis power command: x' });
    expect(ipmiOutcome('n1', 0, null, 'Chassis Power is on\n', '')).toEqual({ status: 'ok' });
  });
});
