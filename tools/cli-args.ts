// CLI and Slack words → tool input. The shapes operators know: the target expression first,
// then `--param value` / `--param=value`, `--flag` / `--no-flag`, lists repeated or
// comma-separated, and `--` ending options (the rest become exec's argv or a script's args).
// Words are only coerced to the parameter's type here; the tool's schema has the last word.
import type { z } from 'zod';
import type { AnyTool, InputIssue, ValidationResult } from './registry.js';
import { formatIssues, shown, validateInput } from './registry.js';
import { optionName, positionalField, restField } from './help.js';
import { expectation, inputSchemaOf, kindOf, listElement } from './schema-info.js';
import type { JsonSchema, ValueKind } from './schema-info.js';
import { didYouMean } from '../config/suggest.js';

class ArgumentError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

function coerceScalar(field: string, kind: ValueKind, prop: JsonSchema, word: string): unknown {
  if (kind === 'integer' || kind === 'number') {
    const n = /^-?\d+(\.\d+)?$/.test(word.trim()) ? Number(word) : Number.NaN;
    const outOfRange = (prop.minimum !== undefined && n < prop.minimum) || (prop.maximum !== undefined && n > prop.maximum);
    if (Number.isNaN(n) || (kind === 'integer' && !Number.isInteger(n)) || outOfRange) {
      throw new ArgumentError(field, `expected ${expectation(prop)}, got ${shown(word)}`);
    }
    return n;
  }
  if (kind === 'boolean') {
    if (word === 'true' || word === 'yes') return true;
    if (word === 'false' || word === 'no') return false;
    throw new ArgumentError(field, `expected true or false, got ${shown(word)}`);
  }
  return word;
}

/**
 * Split `a,b` into two list items only when `a,b` is not itself a valid item and both parts
 * are, so a shell line or a path that happens to hold a comma is never cut.
 */
function listItems(tool: AnyTool, field: string, prop: JsonSchema, word: string): unknown[] {
  const itemProp = prop.items ?? {};
  const itemKind = kindOf(itemProp);
  const element = listElement(tool.input.shape[field] as z.ZodType | undefined);
  const whole = coerceOrUndefined(field, itemKind, itemProp, word);
  if (!word.includes(',') || !element) return [coerceScalar(field, itemKind, itemProp, word)];
  if (whole !== undefined && element.safeParse(whole).success) return [whole];
  const parts = word.split(',').map((part) => coerceOrUndefined(field, itemKind, itemProp, part.trim()));
  if (parts.every((part) => part !== undefined && element.safeParse(part).success)) return parts;
  return [whole ?? word];
}

function coerceOrUndefined(field: string, kind: ValueKind, prop: JsonSchema, word: string): unknown {
  try {
    return coerceScalar(field, kind, prop, word);
  } catch {
    return undefined;
  }
}

/** Parse words into an input object (not yet validated). Throws ArgumentError. */
function collect(tool: AnyTool, args: readonly string[]): Record<string, unknown> {
  const props = inputSchemaOf(tool.input).properties ?? {};
  const fields = Object.keys(props);
  const positional = positionalField(tool);
  const rest = restField(tool);
  const raw: Record<string, unknown> = {};
  const assign = (field: string, prop: JsonSchema, word: string): void => {
    if (kindOf(prop) === 'array') {
      const existing = Array.isArray(raw[field]) ? (raw[field] as unknown[]) : [];
      raw[field] = [...existing, ...listItems(tool, field, prop, word)];
      return;
    }
    if (field in raw) throw new ArgumentError(field, 'given more than once');
    raw[field] = coerceScalar(field, kindOf(prop), prop, word);
  };

  for (let i = 0; i < args.length; i++) {
    const word = args[i] ?? '';
    if (word === '--') {
      const tail = args.slice(i + 1);
      if (rest === undefined) {
        if (tail.length > 0) throw new ArgumentError('', `${tool.name} takes no arguments after --, got ${shown(tail.join(' '))}`);
      } else if (tail.length > 0) {
        raw[rest] = [...(Array.isArray(raw[rest]) ? (raw[rest] as unknown[]) : []), ...tail];
      }
      break;
    }
    if (word.startsWith('--') && word.length > 2) {
      const eq = word.indexOf('=');
      const name = (eq > 0 ? word.slice(2, eq) : word.slice(2)).replaceAll('-', '_');
      const inline = eq > 0 ? word.slice(eq + 1) : undefined;
      const negated = name.startsWith('no_') && props[name.slice(3)] !== undefined && kindOf(props[name.slice(3)] ?? {}) === 'boolean';
      const field = negated ? name.slice(3) : name;
      const prop = props[field];
      if (!prop) {
        throw new ArgumentError('', `unknown option ${word.split('=')[0]}${didYouMean(optionName(name), fields.map(optionName))}`);
      }
      if (kindOf(prop) === 'boolean') {
        if (field in raw) throw new ArgumentError(field, 'given more than once');
        raw[field] = negated ? false : inline === undefined ? true : coerceScalar(field, 'boolean', prop, inline);
        continue;
      }
      const value = inline ?? args[i + 1];
      if (value === undefined) throw new ArgumentError(field, `expects a value (${expectation(prop)})`);
      if (inline === undefined) i++;
      assign(field, prop, value);
      continue;
    }
    if (word.startsWith('-') && word.length > 1 && !/^-\d/.test(word)) {
      throw new ArgumentError('', `unknown option ${word} (options are spelled --name)${didYouMean(`--${word.replace(/^-+/, '')}`, fields.map(optionName))}`);
    }
    if (positional === undefined || positional in raw) {
      throw new ArgumentError('', `unexpected argument ${shown(word)}${positional === undefined ? ` (${tool.name} takes options only)` : ''}`);
    }
    assign(positional, props[positional] ?? {}, word);
  }
  return raw;
}

type ParsedWords =
  | (ValidationResult & { readonly ok: false })
  | { readonly ok: true; readonly raw: Record<string, unknown>; readonly input: Record<string, unknown> };

function parseWords(tool: AnyTool, args: readonly string[]): ParsedWords {
  let raw: Record<string, unknown>;
  try {
    raw = collect(tool, args);
  } catch (error: unknown) {
    if (!(error instanceof ArgumentError)) throw error;
    const issues: InputIssue[] = [{ field: error.field, message: error.message }];
    return { ok: false, issues, message: formatIssues(issues, 'cli') };
  }
  const result = validateInput(tool, raw);
  return result.ok ? { ok: true, raw, input: result.input } : { ok: false, issues: result.issues, message: formatIssues(result.issues, 'cli') };
}

/**
 * Parse CLI/Slack words and validate them with the tool's schema. Issues name the option
 * (`--lines: expected an integer from 1 to 2000, got 'abc'`) in `message`.
 */
export function parseToolArgs(tool: AnyTool, args: readonly string[]): ValidationResult {
  const parsed = parseWords(tool, args);
  return parsed.ok ? { ok: true, input: parsed.input } : parsed;
}

/**
 * Like parseToolArgs, but on success returns the raw (pre-transform) object, which is what
 * front ends submit: the job layer validates the input itself, and transforms such as
 * `30s` → 30000 must run exactly once.
 */
export function parseToolWords(tool: AnyTool, args: readonly string[]): (ValidationResult & { readonly ok: false }) | { readonly ok: true; readonly raw: Record<string, unknown> } {
  const parsed = parseWords(tool, args);
  return parsed.ok ? { ok: true, raw: parsed.raw } : parsed;
}

/**
 * The inverse of parseToolArgs: CLI words that reproduce `input` (`ping all --count 3`,
 * `exec web -- uname -a`). Front ends show it so a person can rerun a job from a terminal.
 */
export function toolArgsFor(tool: AnyTool, input: Readonly<Record<string, unknown>>): string[] {
  const positional = positionalField(tool);
  const rest = restField(tool);
  const props = inputSchemaOf(tool.input).properties ?? {};
  const words: string[] = [tool.name];
  const first = positional !== undefined ? input[positional] : undefined;
  if (typeof first === 'string' || typeof first === 'number') words.push(String(first));
  for (const [field, value] of Object.entries(input)) {
    if (field === positional || field === rest || value === undefined) continue;
    const prop = props[field];
    if (prop !== undefined && prop.default !== undefined && JSON.stringify(prop.default) === JSON.stringify(value)) continue;
    if (typeof value === 'boolean') words.push(value ? optionName(field) : `--no-${field.replaceAll('_', '-')}`);
    else if (Array.isArray(value)) for (const item of value) words.push(optionName(field), typeof item === 'string' ? item : JSON.stringify(item));
    else words.push(optionName(field), typeof value === 'string' ? value : JSON.stringify(value));
  }
  const tail = rest !== undefined ? input[rest] : undefined;
  if (Array.isArray(tail) && tail.length > 0) words.push('--', ...tail.map((w) => (typeof w === 'string' ? w : JSON.stringify(w))));
  return words;
}
