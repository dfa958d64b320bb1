// Power through each node's BMC with `ipmitool -I lanplus`, from the Castellan server: for the
// node that no longer answers SSH (cycle it) and the new one that must PXE-boot. Where the BMC
// is and who logs in come from inventory vars (bmc_host, bmc_port, bmc_user, bmc_credential,
// bmc_cipher_suite); the password comes from the named credential in castellan.yaml
// (bmc.credentials.<name>.password_env/_file) and reaches ipmitool only through IPMI_PASSWORD
// (`-E`), never argv. Risk follows the action: status reads, on changes, off/cycle/reset and
// `pxe` (next boot from the network) are destructive, and the server enforces that through
// the plan's risk. After a control command each node's power state is read back.
import { z } from 'zod';
import { targets, timeout } from './fields.js';
import { resolveHosts, stepTimeout } from './planning.js';
import { reportHosts } from './reports.js';
import { reportRows, type ResultViewDefinition } from './result-view.js';
import type { IpmiAction } from './steps/index.js';
import { HOST_STATUSES } from './host-result.js';
import { defineTool, ToolInputError, type PlanContext, type PlanStep, type Risk } from './types.js';

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
}

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
  return { host, port, user, credential, cipherSuite: suite };
}

/** `-I lanplus -H … -p … -U … -E [-C n]`: the password only through IPMI_PASSWORD. */
export function ipmitoolArgs(bmc: BmcTarget, command: readonly string[]): string[] {
  return ['-I', 'lanplus', '-H', bmc.host, '-p', String(bmc.port), '-U', bmc.user, '-E', ...(bmc.cipherSuite !== undefined ? ['-C', String(bmc.cipherSuite)] : []), ...command];
}

function ipmiStep(id: string, node: string, bmc: BmcTarget, command: readonly string[], says: string, timeoutMs: number): PlanStep {
  const action: IpmiAction = { kind: 'ipmi', args: ipmitoolArgs(bmc, command), credential: bmc.credential };
  return { id, description: `${says} of ${node} through its BMC ${bmc.user}@${bmc.host}:${bmc.port}`, hosts: [node], subject: node, action, timeoutMs };
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

export const bmcPower = defineTool({
  name: 'bmc_power',
  title: 'BMC power',
  description:
    'Read or control node power through each node\'s BMC with ipmitool (IPMI over LAN, lanplus) from the Castellan server: ' +
    '`status` (read), `on` (change), `off`, `cycle`, `reset` and `pxe` = next boot from the network (destructive: approval). ' +
    'BMC address, port, user, cipher suite and credential name come from inventory vars (bmc_host, bmc_port, bmc_user, ' +
    'bmc_cipher_suite, bmc_credential); the password from bmc.credentials in castellan.yaml, passed in IPMI_PASSWORD, never ' +
    'argv. A refused password is auth_failed. Mirrors `ipmitool -I lanplus -H BMC -U USER -E chassis power status|on|off|cycle|reset` ' +
    'and `chassis bootdev pxe`.',
  risk: 'read',
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
    return { tool: 'bmc_power', hosts: nodes, batches: [{ steps }], failureBudget: nodes.length, ...(act.risk !== 'read' ? { risk: act.risk } : {}) };
  },
  summarize(input, results, ctx) {
    const nodes = resolveHosts(ctx, input.targets);
    const control = new Map<string, ReturnType<typeof reportHosts<{ power: 'on' | 'off' | null; said: string }>>['hosts'][number]>();
    for (const [id, byHost] of results) {
      if (id.startsWith('status-') && input.action !== 'status') continue;
      for (const entry of reportHosts(new Map([[id, byHost]]), id, parsePower).hosts) control.set(entry.host, entry);
    }
    const hosts = nodes.map((node) => {
      const did = control.get(node) ?? { host: node, status: 'skipped' as const };
      const read = input.action === 'status' || input.action === 'pxe' ? undefined : reportHosts(new Map([[`status-${node}`, results.get(`status-${node}`) ?? new Map()]]), `status-${node}`, parsePower).hosts[0];
      if (did.status !== 'ok' || read === undefined) return did;
      return { ...did, power: read.status === 'ok' ? (read.power ?? null) : null, ...(read.status !== 'ok' ? { error: `done, but the power state could not be read back: ${read.error ?? read.status}` } : {}) };
    });
    return { action: input.action, hosts };
  },
});
