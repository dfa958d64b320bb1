// What front ends need to know about one parameter, read from the tool's JSON Schema (input
// mode) so help text, CLI coercion and error wording can never drift from the zod schema.
import { z } from 'zod';
import { PATTERN_WORDS } from './fields.js';

export interface JsonSchema {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  anyOf?: JsonSchema[];
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  pattern?: string;
  [key: string]: unknown;
}

const inputSchemas = new WeakMap<z.ZodType, JsonSchema>();

/** JSON Schema of what a caller may send (defaults shown, transforms seen from their input side). */
export function inputSchemaOf(schema: z.ZodType): JsonSchema {
  let cached = inputSchemas.get(schema);
  if (!cached) {
    cached = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
    inputSchemas.set(schema, cached);
  }
  return cached;
}

export type ValueKind = 'boolean' | 'integer' | 'number' | 'string' | 'array';

/** How a CLI word is turned into a value for this parameter. */
export function kindOf(prop: JsonSchema): ValueKind {
  const types = prop.anyOf ? prop.anyOf.flatMap((branch) => [branch.type ?? []].flat()) : [prop.type ?? 'string'].flat();
  // A string-accepting parameter keeps the text as typed (batch_size "2" or "25%").
  if (types.includes('string')) return 'string';
  if (types.includes('array')) return 'array';
  if (types.includes('boolean')) return 'boolean';
  if (types.includes('integer')) return 'integer';
  if (types.includes('number')) return 'number';
  return 'string';
}

function range(low: number | undefined, high: number | undefined, unit = ''): string {
  if (low !== undefined && high !== undefined) return ` from ${low} to ${high}${unit}`;
  if (low !== undefined) return ` of at least ${low}${unit}`;
  if (high !== undefined) return ` of at most ${high}${unit}`;
  return '';
}

/** "an integer from 1 to 2000", "one of err, info", used in errors and help. */
export function expectation(prop: JsonSchema): string {
  if (prop.enum) return `one of ${prop.enum.map(String).join(', ')}`;
  if (prop.anyOf) return prop.anyOf.map(expectation).join(' or ');
  const low = prop.minimum ?? (prop.exclusiveMinimum !== undefined ? prop.exclusiveMinimum + 1 : undefined);
  switch (kindOf(prop)) {
    case 'boolean':
      return 'true or false';
    case 'integer':
      return `an integer${range(low, prop.maximum)}`;
    case 'number':
      return `a number${range(low, prop.maximum)}`;
    case 'array': {
      const items = prop.items ? `, each ${expectation(prop.items)}` : '';
      if (prop.minItems !== undefined && prop.maxItems !== undefined) return `a list of ${prop.minItems} to ${prop.maxItems} items${items}`;
      if (prop.maxItems !== undefined) return `a list of at most ${prop.maxItems} items${items}`;
      return `a list${items}`;
    }
    default:
      if (prop.pattern !== undefined && PATTERN_WORDS[prop.pattern]) return PATTERN_WORDS[prop.pattern] ?? 'text';
      return prop.maxLength !== undefined ? `text of at most ${prop.maxLength} characters` : 'text';
  }
}

/** The zod schema of a parameter's list elements, if it is a list. */
export function listElement(schema: z.ZodType | undefined): z.ZodType | undefined {
  let current: z.ZodType | undefined = schema;
  for (let depth = 0; current && depth < 8; depth++) {
    const def = current.def as { type: string; innerType?: z.ZodType; element?: z.ZodType; in?: z.ZodType };
    if (def.type === 'array') return def.element;
    current = def.innerType ?? def.in;
  }
  return undefined;
}
