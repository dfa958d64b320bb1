// Everything a front end derives from a tool definition: JSON Schemas, MCP annotations,
// validation with field-named issues, and the plan. Front ends translate; they do not decide.
import { z } from 'zod';
import { expectation, inputSchemaOf } from './schema-info.js';
import type { JsonSchema } from './schema-info.js';
import { didYouMean } from '../config/suggest.js';
import { ToolInputError } from './types.js';
import type { ToolDefinition } from './types.js';

/** A tool of any input shape, as held in the catalogue. */
export type AnyTool = ToolDefinition<z.ZodObject>;

export class UnknownToolError extends Error {
  override name = 'UnknownToolError';
  constructor(
    readonly toolName: string,
    readonly suggestions: readonly string[],
    message: string,
  ) {
    super(message);
  }
}

/** Find a tool by name; an unknown name gets the closest names in the error. */
export function findTool(tools: readonly AnyTool[], name: string): AnyTool {
  const tool = tools.find((t) => t.name === name);
  if (tool) return tool;
  const names = tools.map((t) => t.name);
  const hint = didYouMean(name, names);
  throw new UnknownToolError(name, names, `unknown tool '${name}'${hint || `; tools are: ${names.join(', ')}`}`);
}

/** JSON Schema (2020-12) of the input, as MCP `inputSchema` and for docs. */
export function inputJsonSchema(tool: AnyTool): JsonSchema {
  return inputSchemaOf(tool.input);
}

/** JSON Schema of the structured output, when the tool declares one. */
export function outputJsonSchema(tool: AnyTool): JsonSchema | undefined {
  return tool.output ? (z.toJSONSchema(tool.output, { io: 'output', unrepresentable: 'any' }) as JsonSchema) : undefined;
}

export interface ToolAnnotations {
  title: string;
  readOnlyHint: boolean;
  destructiveHint: boolean;
  idempotentHint: boolean;
  openWorldHint: boolean;
}

/** MCP hints derived from risk. Hints only: authorization never relies on them. */
export function annotations(tool: AnyTool): ToolAnnotations {
  const inventoryOnly = tool.answer !== undefined && tool.plan === undefined;
  // A tool whose input can raise its risk must not promise to be read-only.
  const highest = tool.maxRisk ?? tool.risk;
  return {
    title: tool.title,
    readOnlyHint: highest === 'read',
    destructiveHint: highest === 'destructive',
    idempotentHint: highest === 'read' ? true : tool.idempotent === true,
    // Inventory-only tools answer from Castellan's own data; the rest reach real machines.
    openWorldHint: !inventoryOnly,
  };
}

export interface InputIssue {
  /** Parameter name (`lines`), with a position for list items (`nodes[1]`); '' for the whole input. */
  readonly field: string;
  readonly message: string;
}

export type ValidationResult<T = Record<string, unknown>> =
  | { readonly ok: true; readonly input: T }
  | { readonly ok: false; readonly issues: readonly InputIssue[]; readonly message: string };

/** A schema-level rejection carrying every issue; `field` is the first one's. */
export class InvalidInputError extends ToolInputError {
  constructor(readonly issues: readonly InputIssue[]) {
    super(issues[0]?.field ?? 'input', issues[0]?.message ?? 'invalid input');
    this.name = 'InvalidInputError';
    this.message = formatIssues(issues, 'plain');
  }
}

/** `lines: …` (plain, for MCP/Slack/HTTP) or `--lines: …` (cli). */
export function formatIssue(issue: InputIssue, style: 'plain' | 'cli'): string {
  if (issue.field === '') return issue.message;
  if (style === 'plain') return `${issue.field}: ${issue.message}`;
  const [name = '', position = ''] = issue.field.split(/(?=\[)/);
  return `--${name.replaceAll('_', '-')}${position}: ${issue.message}`;
}

export function formatIssues(issues: readonly InputIssue[], style: 'plain' | 'cli'): string {
  return issues.map((issue) => formatIssue(issue, style)).join('\n');
}

/** A value quoted for an error message, cut short so a pasted script does not flood it. */
export function shown(value: unknown): string {
  const text = typeof value === 'string' ? `'${value}'` : JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

function fieldName(path: readonly PropertyKey[]): string {
  return path.map((key, i) => (typeof key === 'number' ? `[${key}]` : i === 0 ? String(key) : `.${String(key)}`)).join('');
}

function propAt(schema: JsonSchema, path: readonly PropertyKey[]): JsonSchema | undefined {
  let current: JsonSchema | undefined = schema;
  for (const key of path) {
    if (!current) return undefined;
    current = typeof key === 'number' ? current.items : current.properties?.[String(key)];
  }
  return current;
}

/** Turn zod's issue into operator words, using the parameter's own bounds. */
function issueMessage(tool: AnyTool, issue: z.core.$ZodIssue): InputIssue[] {
  if (issue.code === 'unrecognized_keys') {
    const known = Object.keys(tool.input.shape);
    return issue.keys.map((key) => ({ field: key, message: `unknown parameter${didYouMean(key, known)}` }));
  }
  const field = fieldName(issue.path);
  const prop = propAt(inputJsonSchema(tool), issue.path);
  const got = 'input' in issue && issue.input !== undefined ? `, got ${shown(issue.input)}` : '';
  if (issue.code === 'invalid_type' && issue.input === undefined) return [{ field, message: 'is required' }];
  const generic =
    issue.code === 'invalid_type' ||
    issue.code === 'invalid_value' ||
    issue.code === 'invalid_union' ||
    ((issue.code === 'too_big' || issue.code === 'too_small') && issue.origin === 'number' && !isCustom(issue));
  if (generic && prop) return [{ field, message: `expected ${expectation(prop)}${got}` }];
  if ((issue.code === 'too_big' || issue.code === 'too_small') && !isCustom(issue)) {
    const limit = Number(issue.code === 'too_big' ? issue.maximum : issue.minimum);
    const unit = issue.origin === 'array' || issue.origin === 'set' ? 'items' : 'characters';
    const message = issue.code === 'too_big' ? `must have at most ${limit} ${unit}` : limit === 1 ? 'must not be empty' : `must have at least ${limit} ${unit}`;
    return [{ field, message }];
  }
  return [{ field, message: issue.message }];
}

// zod's built-in size messages start with "Too big"/"Too small"; ours never do.
function isCustom(issue: z.core.$ZodIssue): boolean {
  return !/^Too (big|small)/.test(issue.message);
}

/** Validate raw input (from MCP, Slack, HTTP or parsed CLI words) against the tool's schema. */
export function validateInput<T extends AnyTool>(tool: T, raw: unknown): ValidationResult<z.output<T['input']>> {
  const result = tool.input.safeParse(raw ?? {}, { reportInput: true });
  if (result.success) return { ok: true, input: result.data as z.output<T['input']> };
  const issues = result.error.issues.flatMap((issue) => issueMessage(tool, issue));
  return { ok: false, issues, message: formatIssues(issues, 'plain') };
}

/** Validated input, or a ToolInputError naming the field (for plans that embed another tool's plan). */
export function validatedOrThrow(tool: AnyTool, raw: unknown): unknown {
  const validated = validateInput(tool, raw);
  if (!validated.ok) throw new InvalidInputError(validated.issues);
  return validated.input;
}
