// bmc_power against real BMCs: Debian's ipmi_sim (OpenIPMI's IPMI LAN simulator), one per node
// on loopback, driven by the real ipmitool over lanplus from the Castellan server, and from a
// jump host (node04's inventory says bmc_via: node03, a lab sshd node reached with the pinned
// key like any node). Status is a read; a cycle is destructive (approval), and the simulator's
// chassis sees power go off and on; a wrong password is auth_failed with a clear reason; the
// password (a canary) is never in argv (the jump host's ipmitool records its argv and
// environment), the plan, the job, the audit, the logs or the CLI's output.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { nodeBinDir } from '../../src/lab/sshd-lab.js';
import { bmcPower } from '../../tools/bmc-power.js';
import { validatedOrThrow } from '../../tools/registry.js';
import { gateStep } from '../../tools/steps/index.js';
import { useCastellan } from '../support/castellan.js';
import { planContextOf, planJobId, runPlanOn } from '../support/run-plan.js';
import { startSimBmcs, type SimBmcs } from '../support/ipmi-sim.js';

// IPMI passwords are at most 16 bytes for many BMCs (20 for IPMI 2.0): a short canary.
const CANARY = `cnry${process.pid}Zq7`.slice(0, 16);
const dir = mkdtempSync(path.join(os.tmpdir(), 'castellan-bmc-'));
const varsFile = path.join(dir, 'bmc-vars.yaml');
writeFileSync(varsFile, stringify({ all: { hosts: {} } }));
let sims: SimBmcs;

/** BMC vars per node: node02's credential is stale; node04's BMC is reached from node03. */
function writeVars(credentials: Record<string, string> = {}): void {
  const hosts = Object.fromEntries(
    sims.bmcs.map((b) => [
      b.node,
      { bmc_host: b.address, bmc_port: b.port, bmc_user: b.user, bmc_credential: credentials[b.node] ?? (b.node === 'node02' ? 'stale' : 'rack'), bmc_cipher_suite: 3, ...(b.node === 'node04' ? { bmc_via: 'node03' } : {}) },
    ]),
  );
  writeFileSync(varsFile, stringify({ all: { hosts } }));
}

beforeAll(async () => {
  sims = await startSimBmcs({ dir: path.join(dir, 'sim'), nodes: ['node01', 'node02', 'node04'], user: 'castellan', password: CANARY });
  writeVars();
}, 60_000);

// The jump host's ipmitool (first on node03's PATH) records how it was started, then is the real one.
const RECORDER = `#!/bin/sh
{ printf 'argv:'; printf ' %s' "$@"; printf '\\n'; env | sed 's/^/env: /'; } >> "$(dirname "$0")/../ipmitool-calls.log"
exec /usr/bin/ipmitool "$@"
`;

const c = useCastellan({
  nodes: 4,
  lab: { nodeBinDirs: true },
  prepare: async (lab) => {
    const recorder = path.join(nodeBinDir(lab.dir, 'node03'), 'ipmitool');
    await writeFile(recorder, RECORDER);
    await chmod(recorder, 0o755);
  },
  extraInventory: varsFile,
  env: { CASTELLAN_TEST_BMC_PASSWORD: CANARY, CASTELLAN_TEST_BMC_OLD: 'not-the-password' },
  config: { bmc: { ipmitool: '/usr/bin/ipmitool', credentials: { rack: { password_env: 'CASTELLAN_TEST_BMC_PASSWORD' }, stale: { password_env: 'CASTELLAN_TEST_BMC_OLD' } } } },
});

afterAll(async () => {
  await sims?.stop();
  await rm(dir, { recursive: true, force: true });
});

const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const person = (subject: string, groups: string[]): Requester => ({ subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin: 'cli' });
const vera = person('vera', ['everyone']);
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);

interface BmcData {
  action: string;
  hosts: { host: string; status: string; error?: string; power?: 'on' | 'off' | null; said?: string }[];
}

async function run(input: Record<string, unknown>, who: Requester, approve = false): Promise<{ id: string; state: string; risk: string; data: BmcData; json: string }> {
  const { job } = await c.runtime.service.submit({ tool: 'bmc_power', input, requester: who, replyTo: { kind: 'cli' } });
  if (approve) {
    expect(job.state).toBe('awaiting_approval');
    await c.runtime.service.approve(job.id, april);
  }
  const done = await c.runtime.service.wait(job.id, who, 90_000);
  return { id: done.id, state: done.state, risk: done.risk, data: done.result?.data as BmcData, json: JSON.stringify(done) };
}

describe('bmc_power against ipmi_sim with the real ipmitool', () => {
  it('reads the power state as a read job anyone may run; the password is only in IPMI_PASSWORD', async () => {
    const { state, risk, data, json } = await run({ targets: 'node01' }, vera);
    expect(state, json).toBe('succeeded');
    expect(risk).toBe('read');
    expect(data.hosts).toEqual([{ host: 'node01', status: 'ok', power: 'off', said: 'Chassis Power is off' }]);
    const bmc = sims.bmcs[0]!;
    const job = JSON.parse(json) as { plan: { batches: { steps: { action: { kind: string; args: string[]; credential: string } }[] }[] } };
    expect(job.plan.batches[0]?.steps[0]?.action).toEqual({ kind: 'ipmi', args: ['-I', 'lanplus', '-H', '127.0.0.1', '-p', String(bmc.port), '-U', 'castellan', '-E', '-C', '3', 'chassis', 'power', 'status'], credential: 'rack' });
    expect(await bmc.requests()).toContain('get power');
  }, 120_000);

  it('a power cycle waits for approval, then the simulator sees power go off and on, and the state is read back', async () => {
    const bmc = sims.bmcs[0]!;
    const { job } = await c.runtime.service.submit({ tool: 'bmc_power', input: { targets: 'node01', action: 'on' }, requester: oscar, replyTo: { kind: 'cli' } });
    expect(job.risk).toBe('change');
    expect((await c.runtime.service.wait(job.id, oscar, 90_000)).state).toBe('succeeded');
    expect(await bmc.power()).toBe('on');
    const before = (await bmc.requests()).length;

    const cycled = await run({ targets: 'node01', action: 'cycle' }, oscar, true);
    expect(cycled.risk).toBe('destructive');
    expect(cycled.state).toBe('succeeded');
    // A BMC answers a cycle at once and powers on again a moment later: the read-back may see either.
    expect(cycled.data.hosts[0]).toMatchObject({ host: 'node01', status: 'ok', power: expect.stringMatching(/^(on|off)$/), said: 'Chassis Power Control: Cycle' });
    for (let i = 0; i < 100 && (await bmc.power()) !== 'on'; i++) await new Promise((r) => setTimeout(r, 100));
    expect((await run({ targets: 'node01' }, vera)).data.hosts[0]).toMatchObject({ power: 'on' });
    const seen = (await bmc.requests()).slice(before);
    expect(seen.indexOf('set power 0')).toBeGreaterThanOrEqual(0);
    expect(seen.indexOf('set power 1')).toBeGreaterThan(seen.indexOf('set power 0'));

    const pxe = await run({ targets: 'node01', action: 'pxe' }, oscar, true);
    expect(pxe.data.hosts[0]).toMatchObject({ status: 'ok', said: 'Set Boot Device to pxe' });
    expect(await bmc.requests()).toContain('set boot pxe');

    const off = await run({ targets: 'node01', action: 'off' }, oscar, true);
    expect(off.data.hosts[0]).toMatchObject({ status: 'ok', power: 'off' });
    expect(await bmc.power()).toBe('off');
  }, 240_000);

  it('a wrong password is auth_failed with a clear reason, not a crash; the other node still answers', async () => {
    const { state, data } = await run({ targets: 'node01,node02' }, vera);
    expect(state).toBe('partially_failed');
    expect(data.hosts.find((h) => h.host === 'node01')).toMatchObject({ status: 'ok', power: 'off' });
    expect(data.hosts.find((h) => h.host === 'node02')).toMatchObject({ status: 'auth_failed', error: expect.stringMatching(/^the BMC of node02 refused the user or password \(RAKP 2 HMAC is invalid\)$/) });
  }, 120_000);

  it('through a jump host (bmc_via: node03): status, on, cycle, off reach the simulator; ipmitool there gets the password on stdin only', async () => {
    const bmc = sims.bmcs.find((b) => b.node === 'node04')!;
    const status = await run({ targets: 'node04' }, vera);
    expect(status.state, status.json).toBe('succeeded');
    expect(status.data.hosts).toEqual([{ host: 'node04', status: 'ok', power: 'off', said: 'Chassis Power is off' }]);
    const job = JSON.parse(status.json) as { plan: { hosts: string[]; batches: { steps: { hosts: string[]; subject: string; action: unknown }[] }[] } };
    expect(job.plan.hosts).toEqual(['node04']);
    expect(job.plan.batches[0]?.steps[0]).toMatchObject({
      hosts: ['node03'],
      subject: 'node04',
      action: { kind: 'ipmi', args: ['-I', 'lanplus', '-H', '127.0.0.1', '-p', String(bmc.port), '-U', 'castellan', '-f', '/dev/stdin', '-C', '3', 'chassis', 'power', 'status'], credential: 'rack', via: 'node03' },
    });

    const { job: on } = await c.runtime.service.submit({ tool: 'bmc_power', input: { targets: 'node04', action: 'on' }, requester: oscar, replyTo: { kind: 'cli' } });
    expect((await c.runtime.service.wait(on.id, oscar, 90_000)).state).toBe('succeeded');
    expect(await bmc.power()).toBe('on');
    const before = (await bmc.requests()).length;
    const cycled = await run({ targets: 'node04', action: 'cycle' }, oscar, true);
    expect(cycled.state, cycled.json).toBe('succeeded');
    expect(cycled.data.hosts[0]).toMatchObject({ host: 'node04', status: 'ok', said: 'Chassis Power Control: Cycle' });
    // The simulated BMC powers on again a moment after it answered the cycle.
    for (let i = 0; i < 300 && (await bmc.power()) !== 'on'; i++) await new Promise((r) => setTimeout(r, 100));
    const seen = (await bmc.requests()).slice(before);
    expect(seen.indexOf('set power 1')).toBeGreaterThan(seen.indexOf('set power 0'));
    expect(seen.indexOf('set power 0')).toBeGreaterThanOrEqual(0);
    const off = await run({ targets: 'node04', action: 'off' }, oscar, true);
    expect(off.data.hosts[0]).toMatchObject({ host: 'node04', status: 'ok', power: 'off' });
    expect(await bmc.power()).toBe('off');

    // It ran on node03, as the audit says, with -f /dev/stdin: the password in no argv and no environment there.
    // (the file holds an execution entry per command run, each host of it in `results`).
    type Run = { host?: string; status?: string };
    const audit = readFileSync(path.join(c.dir, 'audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind: string; jobId?: string; argv?: string[]; results?: Run[] } & Run);
    const ran = audit.filter((a) => a.kind === 'execution' && a.jobId === cycled.id).flatMap((a) => (a.results ?? [a]).map((run) => ({ ...a, ...run })));
    expect(ran.map((a) => [a.host, a.status, a.argv?.slice(-3).join(' ')])).toEqual([
      ['node03', 'ok', 'chassis power cycle'],
      ['node03', 'ok', 'chassis power status'],
    ]);
    const calls = await readFile(path.join(c.lab.dir, 'nodes', 'node03', 'ipmitool-calls.log'), 'utf8');
    // status, then on, cycle and off each with its read-back.
    expect(calls.match(/^argv:.*$/gm)).toHaveLength(7);
    for (const line of calls.match(/^argv:.*$/gm) ?? []) expect(line).toMatch(/^argv: -v -I lanplus -H 127\.0\.0\.1 -p \d+ -U castellan -f \/dev\/stdin -C 3 chassis /);
    expect(calls).toMatch(/^env: CASTELLAN_RUN=/m);
    expect(calls).not.toContain(CANARY);
  }, 300_000);

  it('through a jump host a wrong password is auth_failed naming the node, not the jump host', async () => {
    writeVars({ node04: 'stale' });
    try {
      const { state, data } = await run({ targets: 'node04' }, vera);
      expect(state).toBe('failed');
      expect(data.hosts).toEqual([{ host: 'node04', status: 'auth_failed', error: 'the BMC of node04 refused the user or password (RAKP 2 HMAC is invalid)' }]);
    } finally {
      writeVars();
    }
  }, 120_000);

  it('a gate waits on a node\'s power through its BMC (bmc_power status via the jump host) until it is on', async () => {
    const bmc = sims.bmcs.find((b) => b.node === 'node04')!;
    expect(await bmc.power()).toBe('off');
    const ctx = await planContextOf(c);
    const gate = gateStep({ id: 'powered-node04', subject: 'node04', check: bmcPower, input: { targets: 'node04' }, until: 'power_on', intervalMs: 300, timeoutMs: 120_000 }, ctx, validatedOrThrow);
    expect(gate.description).toBe('wait until the BMC of node04 reports power on (bmc_power every 300ms, up to 2m)');
    const jobId = planJobId();
    const waiting = runPlanOn(c, { tool: 'test_power_gate', hosts: ['node04'], failureBudget: 0, batches: [{ steps: [gate] }] }, jobId);
    // The gate saw the power off at least once before anyone switched it on.
    for (let i = 0; ; i++) {
      const events = (await c.runtime.ctx.events.read(jobId)).map((e) => e.event);
      if (events.some((e) => e.type === 'gate' && /node04: power off/.test(e.text))) break;
      if (i > 600) throw new Error(`the gate never reported power off: ${JSON.stringify(events)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const { job } = await c.runtime.service.submit({ tool: 'bmc_power', input: { targets: 'node04', action: 'on' }, requester: oscar, replyTo: { kind: 'cli' } });
    expect((await c.runtime.service.wait(job.id, oscar, 90_000)).state).toBe('succeeded');
    const { outcome } = await waiting;
    expect(outcome.hosts).toEqual([expect.objectContaining({ host: 'node04', status: 'ok' })]);
    expect(outcome.steps[0]?.observations).toEqual([expect.objectContaining({ subject: 'node04', state: 'holds', observed: 'node04: power on' })]);
    // A gate's check only reads: bmc_power with a control action is refused as a check.
    expect(() => gateStep({ id: 'x', subject: 'node04', check: bmcPower, input: { targets: 'node04', action: 'cycle' }, until: 'power_on', intervalMs: 300, timeoutMs: 1000 }, ctx, validatedOrThrow)).toThrow(/a gate's check must only read; bmc_power with this input is destructive/);
    const off = await run({ targets: 'node04', action: 'off' }, oscar, true);
    expect(off.data.hosts[0]).toMatchObject({ power: 'off' });
  }, 240_000);

  it('a node without BMC vars is refused before anything runs, naming the var', async () => {
    await expect(c.runtime.service.submit({ tool: 'bmc_power', input: { targets: 'node01', action: 'status' }, requester: vera, replyTo: { kind: 'cli' } })).resolves.toBeDefined();
    const vars = readFileSync(varsFile, 'utf8');
    writeFileSync(varsFile, vars.replace(/(node02:\n(?: {6}\S.*\n)*?) {6}bmc_user: castellan\n/, '$1'));
    expect(readFileSync(varsFile, 'utf8')).not.toEqual(vars);
    await expect(c.runtime.service.submit({ tool: 'bmc_power', input: { targets: 'node02' }, requester: vera, replyTo: { kind: 'cli' } })).rejects.toThrow(/node02 needs inventory var bmc_user \(the BMC login\)/);
  }, 60_000);

  it('the password canary is nowhere: jobs, events, audit, logs, CLI output', async () => {
    const r = await c.cli(['bmc_power', 'node01'], { timeoutMs: 90_000 });
    expect(r.code, r.stderr).toBe(0);
    // The tool's result view: a table of node, power, what the BMC said.
    expect(r.stdout).toMatch(/^hosts\s+power\s+bmc said\nnode01\s+off\s+Chassis Power is off$/m);
    expect(r.stdout + r.stderr).not.toContain(CANARY);
    for (const job of await c.runtime.service.list(vera, { limit: 50 })) {
      expect(JSON.stringify(job)).not.toContain(CANARY);
      expect(JSON.stringify(await c.runtime.service.events(job.id, vera))).not.toContain(CANARY);
    }
    expect(readFileSync(path.join(c.dir, 'audit.jsonl'), 'utf8')).not.toContain(CANARY);
    expect(c.logs.join('')).not.toContain(CANARY);
  }, 120_000);
});
