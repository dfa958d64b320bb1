// One help block per tool, for the CLI (`castellan help journal`) and Slack (`/castellan help
// journal`). Everything comes from the schema, so help cannot disagree with validation.
import type { AnyTool } from './registry.js';
import { annotations } from './registry.js';
import { expectation, inputSchemaOf, kindOf } from './schema-info.js';
import type { JsonSchema } from './schema-info.js';
import type { Risk } from './types.js';

/** What approval each risk needs unless the policy configuration says otherwise. */
export const DEFAULT_APPROVAL: Readonly<Record<Risk, string>> = {
  read: 'reads only; runs without approval',
  change: 'changes hosts; needs the operator role, no second approval by default',
  destructive: 'can break or take down hosts; waits for an approver before it runs',
};

/** Fields that take the first bare word on the command line. */
export function positionalField(tool: AnyTool): string | undefined {
  const schema = inputSchemaOf(tool.input);
  if (schema.properties?.targets) return 'targets';
  return schema.required?.[0];
}

/** Fields that take every word after `--` (exec argv, run_script args). */
export const REST_FIELDS = ['argv', 'args'] as const;

export function restField(tool: AnyTool): string | undefined {
  const props = inputSchemaOf(tool.input).properties ?? {};
  return REST_FIELDS.find((name) => props[name] !== undefined && kindOf(props[name]) === 'array');
}

export function optionName(field: string): string {
  return `--${field.replaceAll('_', '-')}`;
}

function placeholder(field: string, prop: JsonSchema): string {
  const kind = kindOf(prop);
  if (kind === 'boolean') return '';
  const word = `<${field.replaceAll('_', '-')}>`;
  return kind === 'array' ? `${word}…` : word;
}

function usageWord(tool: AnyTool, field: string, prop: JsonSchema, required: boolean): string {
  const value = placeholder(field, prop);
  let word: string;
  if (field === positionalField(tool)) word = value || field.toUpperCase();
  else if (field === restField(tool)) word = `-- ${value}`;
  else word = value ? `${optionName(field)} ${value}` : optionName(field);
  return required ? word : `[${word}]`;
}

function facts(field: string, prop: JsonSchema, required: boolean): string {
  const isFlag = kindOf(prop) === 'boolean';
  const parts = [required ? 'required' : undefined, isFlag ? `flag (turn off with --no-${field.replaceAll('_', '-')})` : expectation(prop)];
  if (prop.default !== undefined && !(Array.isArray(prop.default) && prop.default.length === 0)) {
    parts.push(`default ${typeof prop.default === 'string' ? prop.default : JSON.stringify(prop.default)}`);
  }
  return parts.filter((p) => p !== undefined && p !== '').join('; ');
}

/** The full help block: usage, description, parameters, risk and default approval. */
export function helpText(tool: AnyTool, command = 'castellan'): string {
  const schema = inputSchemaOf(tool.input);
  const props = Object.entries(schema.properties ?? {});
  const required = new Set(schema.required ?? []);
  const usage = [command, tool.name, ...props.map(([field, prop]) => usageWord(tool, field, prop, required.has(field)))].join(' ');
  const lines = [`Usage: ${usage}`, '', `${tool.title}. ${tool.description}`];
  if (props.length > 0) {
    lines.push('', 'Parameters:');
    for (const [field, prop] of props) {
      const positional = field === positionalField(tool) ? ' (or first argument)' : field === restField(tool) ? ' (or words after --)' : '';
      lines.push(`  ${optionName(field)}${positional}: ${facts(field, prop, required.has(field))}`);
      if (prop.description) lines.push(`      ${prop.description}`);
    }
  }
  const hints = annotations(tool);
  lines.push('', `Risk: ${tool.risk} (${DEFAULT_APPROVAL[tool.risk]})${hints.idempotentHint ? '; safe to repeat' : ''}.`);
  return lines.join('\n');
}
