// Power through each node's BMC with `ipmitool -I lanplus`, from the Castellan server or from a
// jump host: for the node that no longer answers SSH (cycle it) and the new one that must
// PXE-boot. Where the BMC is and who logs in come from inventory vars (bmc_host, bmc_port,
// bmc_user, bmc_credential, bmc_cipher_suite, and bmc_via: the inventory host on the BMC network
// that runs ipmitool, usually set once on a group); the password comes from the named
// credential in castellan.yaml (bmc.credentials.<name>.password_env/_file) and never reaches
// argv: on the server through IPMI_PASSWORD (`-E`), on a jump host on ipmitool's stdin
// (`-f /dev/stdin`, see tools/steps/ipmi.ts). Risk follows the action: status reads, on
// changes, off/cycle/reset and `pxe` (next boot from the network) are destructive, and the
// server enforces that through the plan's risk. After a control command each node's power
// state is read back.
import { z } from 'zod';
import { targets, timeout } from './fields.js';
import { resolveHosts, stepTimeout } from './planning.js';
import { reportHosts } from './reports.js';
import { reportRows, type ResultViewDefinition } from './result-view.js';
import type { ConditionDefinition, IpmiAction, Verdict } from './steps/index.js';
import { HOST_STATUSES } from './host-result.js';
import { defineTool, ToolInputError, type PlanContext, type PlanStep, type Risk, type StepResults } from './types.js';

export const BMC_ACTIONS = ['status', 'on', 'off', 'cycle', 'reset', 'pxe'] as const;
type BmcAction = (typeof BMC_ACTIONS)[number];

const ACTION: Readonly<Record<BmcAction, { args: string[]; risk: Risk; says: string }>> = {
  status: { args: ['chassis', 'power', 'status'], risk: 'read', says: 'read the power state' },
  on: { args: ['chassis', 'power', 'on'], risk: 'change', says: 'power on' },
  off: { args: ['chassis', 'power', 'off'], risk: 'destructive', says: 'power off (hard)' },
  cycle: { args: ['chassis', 'power', 'cycle'], risk: 'destructive', says: 'power cycle (off, then on)' },
  reset: { args: ['chassis', 'power', 'reset'], risk: 'destructive', says: 'hard reset' },
  pxe: { args: ['chassis', 'bootdev', 'pxe'], risk: 'destructive', says: 'boot from the network (PXE) next time' },
};

const HOST = /^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}$/;
const USER = /^[A-Za-z0-9_.@-]{1,32}$/;
const CREDENTIAL = /^[a-z][a-z0-9_-]{0,63}$/;

export interface BmcTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly credential: string;
  readonly cipherSuite: number | undefined;
  /** The inventory host that runs ipmitool over SSH (inventory var bmc_via); absent: the Castellan server. */
  readonly via: string | undefined;
}

/** The inventory var naming a node's jump host for its BMC. */
export const BMC_VIA_VAR = 'bmc_via';

/** A node's BMC from its inventory vars; a missing or malformed var is a clear error. */
export function bmcOf(ctx: PlanContext, node: string): BmcTarget {
  const vars = ctx.inventory.hosts.get(node)?.vars ?? {};
  const need = (key: string, pattern: RegExp, what: string): string => {
    const value = vars[key];
    if (typeof value !== 'string' || !pattern.test(value)) throw new ToolInputError('targets', `${node} needs inventory var ${key} (${what})${value === undefined ? '' : `, not ${JSON.stringify(value)}`}`);
    return value;
  };
  const host = need('bmc_host', HOST, 'the BMC address');
  const user = need('bmc_user', USER, 'the BMC login');
  const credential = need('bmc_credential', CREDENTIAL, 'a credential name from bmc.credentials in castellan.yaml');
  const port = vars.bmc_port ?? 623;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) throw new ToolInputError('targets', `inventory var bmc_port of ${node} must be a port number`);
  const suite = vars.bmc_cipher_suite;
  if (suite !== undefined && (typeof suite !== 'number' || !Number.isInteger(suite) || suite < 0 || suite > 17)) throw new ToolInputError('targets', `inventory var bmc_cipher_suite of ${node} must be 0..17`);
  const via = vars[BMC_VIA_VAR];
  if (via !== undefined) {
    if (typeof via !== 'string' || !ctx.inventory.hosts.has(via)) throw new ToolInputError('targets', `inventory var ${BMC_VIA_VAR} of ${node} must name an inventory host (the jump host that runs ipmitool), not ${JSON.stringify(via)}`);
    // The jump host is for nodes that may not answer SSH themselves: their own BMC cannot go through them.
    if (via === node) throw new ToolInputError('targets', `inventory var ${BMC_VIA_VAR} of ${node} names ${node} itself; name another host on the BMC network, or leave it out to run ipmitool on the Castellan server`);
  }
  return { host, port, user, credential, cipherSuite: suite, via };
}

/**
 * `-I lanplus -H … -p … -U … (-E | -f /dev/stdin) [-C n]`: the password never in argv — from
 * IPMI_PASSWORD on the server, from stdin on a jump host (sshd does not pass the environment).
 */
export function ipmitoolArgs(bmc: BmcTarget, command: readonly string[]): string[] {
  const password = bmc.via === undefined ? ['-E'] : ['-f', '/dev/stdin'];
  return ['-I', 'lanplus', '-H', bmc.host, '-p', String(bmc.port), '-U', bmc.user, ...password, ...(bmc.cipherSuite !== undefined ? ['-C', String(bmc.cipherSuite)] : []), ...command];
}

/** One ipmitool run about `node`: on the server (hosts: the node) or on its jump host (hosts: the jump host). */
function ipmiStep(id: string, node: string, bmc: BmcTarget, command: readonly string[], says: string, timeoutMs: number): PlanStep {
  const action: IpmiAction = { kind: 'ipmi', args: ipmitoolArgs(bmc, command), credential: bmc.credential, ...(bmc.via !== undefined ? { via: bmc.via } : {}) };
  const from = bmc.via !== undefined ? `, from ${bmc.via}` : '';
  return { id, description: `${says} of ${node} through its BMC ${bmc.user}@${bmc.host}:${bmc.port}${from}`, hosts: [bmc.via ?? node], subject: node, action, timeoutMs };
}

/** A step's result about `node`, whichever host ran ipmitool (the node's name on the server, its jump host otherwise). */
function aboutNode(results: StepResults, id: string, node: string): StepResults {
  const byHost = results.get(id);
  const result = byHost?.get(node) ?? [...(byHost?.values() ?? [])][0];
  return new Map([[id, new Map(result ? [[node, { ...result, host: node }]] : [])]]);
}

/** `Chassis Power is on` → on; control replies and boot-device replies say what was done. */
export function parsePower(stdout: string): { power: 'on' | 'off' | null; said: string } {
  const lines = stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  const state = lines.map((l) => /^Chassis Power is (on|off)$/i.exec(l)?.[1]?.toLowerCase()).find((s) => s !== undefined);
  return { power: state === 'on' || state === 'off' ? state : null, said: lines.join('; ') };
}

const bmcOutput = z.object({
  action: z.enum(BMC_ACTIONS),
  hosts: z.array(z.object({ host: z.string(), status: z.enum(HOST_STATUSES), error: z.string().optional(), power: z.enum(['on', 'off']).nullable().optional(), said: z.string().optional() })),
});
type BmcData = z.output<typeof bmcOutput>;
type BmcRow = BmcData['hosts'][number];

/** One row per node (alike nodes fold): power state, and what the BMC said to a control command. */
const bmcView: ResultViewDefinition<BmcData, BmcRow> = {
  columns: [
    { label: 'power', cell: (h) => h.power ?? '', tone: (h) => (h.power === 'on' ? 'ok' : h.power === 'off' ? 'warn' : undefined) },
    { label: 'bmc said', cell: (h) => h.said ?? '' },
  ],
  rows: (data) => reportRows(data.hosts, (h) => [h]),
  summary(data) {
    const count = (p: string): number => data.hosts.filter((h) => h.status === 'ok' && h.power === p).length;
    const failed = data.hosts.filter((h) => h.status !== 'ok');
    const done = data.action === 'status' ? '' : `${ACTION[data.action].says}: ${data.hosts.length - failed.length} of ${data.hosts.length} done; `;
    const states = data.action === 'pxe' ? '' : `${count('on')} on, ${count('off')} off`;
    return `${done}${states}${failed.length ? `${states ? '; ' : ''}${failed.map((h) => `${h.host} ${h.status.replaceAll('_', ' ')}`).join(', ')}` : ''}`;
  },
};

/** Power of one node (args.node, else the gate's subject) as the BMC reports it; a refused password ends the wait. */
function powerCondition(want: 'on' | 'off'): ConditionDefinition {
  return {
    describe: (args, subject) => `the BMC of ${typeof args.node === 'string' ? args.node : (subject ?? 'the node')} reports power ${want}`,
    judge(observation, subject, args): Verdict {
      const name = typeof args.node === 'string' ? args.node : subject;
      const row = (observation.data as BmcData | undefined)?.hosts.find((h) => h.host === name);
      if (!row) return { state: 'waiting', observed: `no answer about ${name} yet` };
      if (row.status === 'auth_failed') return { state: 'failed', observed: row.error ?? `the BMC of ${name} refused the login` };
      if (row.status !== 'ok') return { state: 'waiting', observed: `${name}: ${row.status.replaceAll('_', ' ')}${row.error ? ` (${row.error})` : ''}` };
      return { state: row.power === want ? 'holds' : 'waiting', observed: `${name}: power ${row.power ?? 'unknown'}` };
    },
  };
}

export const bmcPower = defineTool({
  name: 'bmc_power',
  title: 'BMC power',
  description:
    'Read or control node power through each node\'s BMC with ipmitool (IPMI over LAN, lanplus) from the Castellan server, ' +
    'or over SSH from the jump host named by the node\'s inventory var bmc_via: ' +
    '`status` (read), `on` (change), `off`, `cycle`, `reset` and `pxe` = next boot from the network (destructive: approval). ' +
    'BMC address, port, user, cipher suite and credential name come from inventory vars (bmc_host, bmc_port, bmc_user, ' +
    'bmc_cipher_suite, bmc_credential); the password from bmc.credentials in castellan.yaml, passed in IPMI_PASSWORD (on a ' +
    'jump host: on ipmitool\'s stdin), never argv. A refused password is auth_failed. Mirrors `ipmitool -I lanplus -H BMC -U USER -E chassis power status|on|off|cycle|reset` ' +
    'and `chassis bootdev pxe`.',
  risk: 'read',
  toolset: 'power',
  maxRisk: 'destructive',
  input: z
    .object({
      targets: targets.describe('Nodes whose BMC to use: host names, groups, labels.'),
      action: z.enum(BMC_ACTIONS).default('status').describe('status (read), on (change), off, cycle, reset, pxe (destructive). Default status.'),
      timeout,
    })
    .strict(),
  output: bmcOutput,
  view: bmcView,
  // A gate may wait on a node's power through its BMC (action status only: a gate's check reads).
  conditions: { power_on: powerCondition('on'), power_off: powerCondition('off') },
  plan(input, ctx) {
    const nodes = resolveHosts(ctx, input.targets);
    const act = ACTION[input.action];
    const timeoutMs = stepTimeout(ctx, input.timeout);
    const steps = nodes.flatMap((node) => {
      const bmc = bmcOf(ctx, node);
      const control = ipmiStep(input.action === 'status' ? `status-${node}` : `${input.action}-${node}`, node, bmc, act.args, act.says, timeoutMs);
      // A control command answers "Chassis Power Control: Cycle"; the state read after it is the result.
      return input.action === 'status' || input.action === 'pxe' ? [control] : [control, ipmiStep(`status-${node}`, node, bmc, ACTION.status.args, 'read the power state', timeoutMs)];
    });
    // The nodes are the plan's hosts (what it is about: locked, under maintenance windows). A
    // jump host only runs ipmitool, as a step host (its key is pinned and bound to the approval
    // like every step host), so one jump host serves many nodes' jobs at once.
    return { tool: 'bmc_power', hosts: nodes, batches: [{ steps }], failureBudget: nodes.length, ...(act.risk !== 'read' ? { risk: act.risk } : {}) };
  },
  summarize(input, results, ctx) {
    const nodes = resolveHosts(ctx, input.targets);
    const hosts = nodes.map((node) => {
      const id = input.action === 'status' ? `status-${node}` : `${input.action}-${node}`;
      const did = reportHosts(aboutNode(results, id, node), id, parsePower).hosts[0] ?? { host: node, status: 'skipped' as const };
      const read = input.action === 'status' || input.action === 'pxe' ? undefined : reportHosts(aboutNode(results, `status-${node}`, node), `status-${node}`, parsePower).hosts[0];
      if (did.status !== 'ok' || read === undefined) return did;
      return { ...did, power: read.status === 'ok' ? (read.power ?? null) : null, ...(read.status !== 'ok' ? { error: `done, but the power state could not be read back: ${read.error ?? read.status}` } : {}) };
    });
    return { action: input.action, hosts };
  },
});
