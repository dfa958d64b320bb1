// Run a playbook from the allowlist in castellan.yaml (ansible.playbooks), never a path from
// the request, against exactly the resolved targets (--limit), with tags and the extra vars
// that playbook declares, typed. `check: true` is Ansible's check mode with diffs: nothing
// changes, and the result shows what would. A playbook's configured risk raises the job's.
import { z } from 'zod';
import { EXTRA_VAR_NAME, PLAYBOOK_KEY, TAG, type ExtraVarSpec, type PlaybookSettings } from '../config/ansible.js';
import { duration, targets } from './fields.js';
import { resolveHosts, showArgv } from './planning.js';
import { ToolInputError, defineTool, type PlanContext } from './types.js';

const extraValue = z.union([z.string().max(4096), z.number(), z.boolean()]);

/** The allowlisted playbook `name`; `field`: the input field that named it (what an error names). */
export function playbookFor(ctx: PlanContext, name: string, field = 'playbook'): PlaybookSettings {
  const playbooks = ctx.playbooks ?? {};
  const found = playbooks[name];
  if (!found) {
    const known = Object.keys(playbooks);
    throw new ToolInputError(field, `'${name}' is not an allowed playbook (${known.length ? `configured: ${known.join(', ')}` : 'none are configured under ansible.playbooks'})`);
  }
  return found;
}

function checkExtraVar(name: string, spec: ExtraVarSpec, value: unknown): string | number | boolean {
  const field = `extra_vars.${name}`;
  switch (spec.type) {
    case 'boolean':
      if (typeof value !== 'boolean') throw new ToolInputError(field, 'must be true or false');
      return value;
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value)) throw new ToolInputError(field, 'must be an integer');
      if ((spec.min !== undefined && value < spec.min) || (spec.max !== undefined && value > spec.max)) throw new ToolInputError(field, `must be between ${spec.min ?? '-∞'} and ${spec.max ?? '∞'}`);
      return value;
    case 'enum':
      if (typeof value !== 'string' || !(spec.values ?? []).includes(value)) throw new ToolInputError(field, `must be one of ${(spec.values ?? []).join(', ')}`);
      return value;
    case 'string':
      if (typeof value !== 'string') throw new ToolInputError(field, 'must be a string');
      if (/[\0\r\n]/.test(value)) throw new ToolInputError(field, 'must not contain NUL or newline characters');
      // Ansible templates strings: a value carrying Jinja would be evaluated on the controller.
      if (/\{\{|\{%|\{#/.test(value)) throw new ToolInputError(field, 'must not contain Jinja markers ({{, {%, {#)');
      if (spec.pattern !== undefined && !new RegExp(spec.pattern).test(value)) throw new ToolInputError(field, `must match ${spec.pattern}`);
      return value;
  }
}

export const ansiblePlaybook = defineTool({
  name: 'ansible_playbook',
  title: 'Run an Ansible playbook',
  description:
    'Run a playbook from the allowlist in the configuration (ansible.playbooks; never a path from the request) ' +
    'against exactly the target hosts (--limit), with optional tags and the typed extra vars the playbook declares. ' +
    'With check: true it runs in check mode with diffs and changes nothing. Ansible connects with Castellan\'s pinned ' +
    'known_hosts and keys, host-key checking on. Per-task progress per host; the playbook\'s configured risk applies. ' +
    'A run that needs approval is previewed in check mode first: the approval card shows that diff. ' +
    'Mirrors `ansible-playbook --limit HOSTS [--tags T] [-e VARS] [--check --diff] PLAYBOOK`.',
  risk: 'change',
  toolset: 'commands',
  idempotent: false,
  input: z
    .object({
      playbook: z.string().regex(PLAYBOOK_KEY, { error: 'a playbook name from the configuration (lower-case, digits, _ and -)' }).describe('Name of an allowed playbook (see the configuration).'),
      targets,
      tags: z.array(z.string().regex(TAG, { error: 'tags are letters, digits and . _ - (starting with a letter or digit)' })).max(32).optional().describe('Only run tasks with these tags (--tags).'),
      extra_vars: z.record(z.string().regex(EXTRA_VAR_NAME, { error: 'extra var names are lower-case identifiers' }), extraValue).default({}).describe('Values for the extra vars the playbook declares (typed per playbook).'),
      check: z.boolean().default(false).describe('Check mode with diffs (--check --diff): report what would change, change nothing.'),
      timeout: duration({ minMs: 10_000, maxMs: 6 * 3_600_000 }).prefault('30m').describe('How long the whole run may take. Default 30m.'),
    })
    .strict(),
  // The same run in check mode: what the approver reads before deciding.
  preview: (input) => (input.check ? undefined : { ...input, check: true }),
  plan(input, ctx) {
    const playbook = playbookFor(ctx, input.playbook);
    const hosts = resolveHosts(ctx, input.targets);
    const vars: Record<string, string | number | boolean> = {};
    for (const [name, value] of Object.entries(input.extra_vars)) {
      const spec = playbook.extraVars[name];
      if (!spec) throw new ToolInputError(`extra_vars.${name}`, `'${input.playbook}' declares no extra var '${name}' (it declares: ${Object.keys(playbook.extraVars).join(', ') || 'none'})`);
      vars[name] = checkExtraVar(name, spec, value);
    }
    for (const [name, spec] of Object.entries(playbook.extraVars)) {
      if (spec.required && !(name in vars)) throw new ToolInputError(`extra_vars.${name}`, `'${input.playbook}' requires it`);
    }
    for (const tag of input.tags ?? []) {
      if (playbook.tags !== undefined && !playbook.tags.includes(tag)) throw new ToolInputError('tags', `'${tag}' is not one of ${input.playbook}'s tags (${playbook.tags.join(', ')})`);
    }
    const args = [
      '--limit', hosts.join(','),
      ...(input.tags?.length ? ['--tags', input.tags.join(',')] : []),
      ...(Object.keys(vars).length ? ['--extra-vars', JSON.stringify(vars)] : []),
      ...(input.check ? ['--check', '--diff'] : []),
      '--', playbook.path,
    ];
    const what = `${input.check ? 'check (changes nothing): ' : ''}playbook ${input.playbook} (${playbook.description}): ansible-playbook ${showArgv(args)}`;
    return {
      tool: 'ansible_playbook',
      hosts,
      batches: [{ steps: [{ id: input.check ? 'check' : 'playbook', description: what, hosts, action: { kind: 'playbook', playbook: input.playbook, args }, timeoutMs: input.timeout }] }],
      failureBudget: hosts.length,
      // Check mode changes nothing; a real run carries the playbook's configured risk.
      ...(input.check ? {} : { risk: playbook.risk }),
    };
  },
});
