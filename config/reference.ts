// The configuration reference (docs/configuration.md), generated from the zod schema that
// validates castellan.yaml, so it cannot drift from the code: every key with its type,
// default and constraints, plus an example and a note taken from the commented example file
// (config/examples/castellan.example.yaml, whose commented-out keys count too). A unit test
// regenerates it and compares, so CI fails when the schema changes and the file does not.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { settingsSchema } from './schema.js';

interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  description?: string;
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  enum?: unknown[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  pattern?: string;
  required?: string[];
}

export interface ExampleEntry {
  readonly example?: string | undefined;
  readonly note?: string | undefined;
}

const KEY_LINE = /^(\s*)(?:#(\s*))?(-\s+)?([a-z_][a-z0-9_-]*):(?:\s+([^#]*?))?\s*(?:#\s*(.*))?$/;

/** `path.to.key` -> the example value and trailing comment from the commented example file. */
export function examplesFrom(text: string): Map<string, ExampleEntry> {
  const found = new Map<string, ExampleEntry>();
  const stack: { indent: number; key: string }[] = [];
  for (const line of text.split('\n')) {
    const m = KEY_LINE.exec(line);
    if (!m) continue;
    const [, lead = '', afterHash, dash = '', key = '', value, note] = m;
    // "  #   issuer: …" sits two columns deeper than "  # oidc:": count the spaces after '#', less
    // one; a list item's "- " counts as indentation too.
    const indent = lead.length + (afterHash === undefined ? 0 : Math.max(0, afterHash.length - 1)) + dash.length;
    while (stack.length > 0 && stack[stack.length - 1]!.indent >= indent) stack.pop();
    stack.push({ indent, key });
    const path = stack.map((s) => s.key).join('.');
    if (found.has(path)) continue;
    found.set(path, { example: value?.trim() || undefined, note: note?.trim() || undefined });
  }
  return found;
}

const DURATION = /^\d+(ms|s|m|h|d)$/;
const SIZE = /^\d+(B|KiB|MiB|GiB|KB|MB|GB)$/;

function typeOf(path: string, s: JsonSchema): string {
  if (s.enum) return `one of ${s.enum.map((v) => `\`${String(v)}\``).join(', ')}`;
  if (s.anyOf) return s.anyOf.map((a) => typeOf(path, a)).join(' or ');
  const type = Array.isArray(s.type) ? s.type.join(' or ') : s.type;
  if (typeof s.default === 'string' && DURATION.test(s.default)) return 'duration';
  if (typeof s.default === 'string' && SIZE.test(s.default)) return 'size';
  if (type === undefined) return /(_ttl|_timeout|timeout|expiry|_age|_interval|grace)$/.test(path) ? 'duration' : 'size or duration';
  if (type === 'array') return `list of ${s.items ? typeOf(path, s.items) : 'values'}`;
  if (type === 'string' && path.endsWith('_env')) return 'environment variable name';
  if (type === 'string' && (path.endsWith('_file') || path.endsWith('_root') || /(^|\.)(known_hosts|inventory|file)$/.test(path))) return 'path';
  if (type === 'object') return 'mapping';
  return type;
}

function constraints(s: JsonSchema): string {
  const parts: string[] = [];
  const cap = Number.MAX_SAFE_INTEGER;
  const min = s.minimum !== undefined && s.minimum > -cap ? s.minimum : undefined;
  if (min !== undefined && s.maximum !== undefined && s.maximum < cap) parts.push(`${min}–${s.maximum}`);
  else if (min !== undefined) parts.push(`≥ ${min}`);
  if (s.minItems !== undefined) parts.push(`at least ${s.minItems}`);
  return parts.join(', ');
}

function shown(value: unknown): string {
  if (value === undefined) return '—';
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text === '' ? '""' : `\`${text.replaceAll('|', '\\|')}\``;
}

interface Row {
  readonly key: string;
  readonly type: string;
  readonly required: boolean;
  readonly default: string;
  readonly example: string;
  readonly note: string;
}

function rowsOf(prefix: string, schema: JsonSchema, required: readonly string[], examples: Map<string, ExampleEntry>, out: Row[]): void {
  for (const [key, raw] of Object.entries(schema.properties ?? {})) {
    const path = prefix ? `${prefix}.${key}` : key;
    const s: JsonSchema = raw;
    const nested = s.properties !== undefined && Object.keys(s.properties).length > 0;
    const entry = examples.get(path.replaceAll('[]', '')) ?? (path.includes('<name>') ? lookupNamed(examples, path) : undefined);
    if (nested) {
      rowsOf(path, s, s.required ?? [], examples, out);
      continue;
    }
    const entrySchema = typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined;
    const extra = constraints(s);
    const example = entry?.example ?? (s.default !== undefined && !(typeof s.default === 'object' && Object.keys(s.default as object).length === 0) ? shown(s.default) : synthesized(path));
    out.push({
      key: path,
      type: typeOf(path, s),
      required: required.includes(key),
      default: shown(s.default),
      example: example === undefined ? (entrySchema?.properties !== undefined ? 'see the `<name>` keys below' : s.items?.properties !== undefined ? 'see the `[]` keys below' : '—') : example.startsWith('`') ? example : `\`${example.replaceAll('|', '\\|')}\``,
      note: [entry?.note ?? s.description, extra].filter(Boolean).join('; ').replaceAll('|', '\\|'),
    });
    // A list of records (policy.maintenance_windows[]): document an item's keys.
    if (s.items?.properties !== undefined) rowsOf(`${path}[]`, s.items, s.items.required ?? [], examples, out);
    // A mapping of named entries (ansible.playbooks.<name>): document an entry's own keys.
    if (entrySchema?.properties !== undefined) rowsOf(`${path}.<name>`, entrySchema, entrySchema.required ?? [], examples, out);
  }
}

/** `a.<name>.b` matches the example file's `a.motd.b`. */
function lookupNamed(examples: Map<string, ExampleEntry>, path: string): ExampleEntry | undefined {
  const pattern = new RegExp(`^${path.split('<name>').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[^.]+')}$`);
  for (const [key, entry] of examples) if (pattern.test(key)) return entry;
  return undefined;
}

/** Examples that follow from the key's name: secret references. */
function synthesized(path: string): string | undefined {
  const name = path.split('.').slice(0, -1).join('_').replace(/[^a-z0-9_]/gi, '').toUpperCase();
  const leaf = path.split('.').at(-1) ?? '';
  if (leaf.endsWith('_env')) return `CASTELLAN_${name}_${leaf.slice(0, -4).toUpperCase()}`.replace(/_+/g, '_');
  if (leaf.endsWith('_file') && /secret|token|password/.test(leaf)) return `/run/secrets/${path.replaceAll('.', '_').slice(0, -5)}`;
  return undefined;
}

/** The Markdown reference for castellan.yaml. */
export function configurationReference(exampleText: string): string {
  const schema = z.toJSONSchema(settingsSchema('/'), { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  const rows: Row[] = [];
  rowsOf('', schema, schema.required ?? [], examplesFrom(exampleText), rows);
  const sections = new Map<string, Row[]>();
  for (const row of rows) {
    const top = row.key.split('.')[0]!;
    sections.set(top, [...(sections.get(top) ?? []), row]);
  }
  const lines = [
    '# castellan.yaml reference',
    '',
    '<!-- Generated from config/schema.ts by config/reference.ts (./scripts/config-reference); do not edit by hand. -->',
    '',
    'Every key Castellan accepts, from the zod schema that validates the file. Unknown keys are errors.',
    'Relative paths are resolved against the file\'s folder. Durations: `250ms`, `15s`, `5m`, `1h`, `7d`',
    '(a plain number is milliseconds). Sizes: `64KiB`, `1MiB`, `100MB` (a plain number is bytes).',
    'Secrets are never values here: each is `<name>_env: VARIABLE` or `<name>_file: path`.',
    'A commented example: [config/examples/castellan.example.yaml](../config/examples/castellan.example.yaml).',
    '',
  ];
  for (const [section, list] of sections) {
    lines.push(`## \`${section}\``, '', '| key | type | default | example | notes |', '|---|---|---|---|---|');
    for (const r of list) lines.push(`| \`${r.key}\`${r.required ? ' (required)' : ''} | ${r.type} | ${r.default} | ${r.example} | ${r.note} |`);
    lines.push('');
  }
  return lines.join('\n');
}

/** Read the example file next to this module's source tree. */
export function readExampleConfig(repoRoot: string): string {
  return readFileSync(`${repoRoot}/config/examples/castellan.example.yaml`, 'utf8');
}
