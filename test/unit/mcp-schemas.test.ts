// What tools/list publishes (src/mcp/tools.ts, src/present/render/mcp.ts): output schemas a
// strict client accepts (every object closed, no loose `additionalProperties: {}`, no
// `[type, null]` unions or null alternatives), and structuredContent that matches them, for
// every tool of the catalogue.
import { describe, expect, it } from 'vitest';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import { TOOLSETS } from '../../config/vocabulary.js';
import { catalogue } from '../../tools/index.js';
import { mcpTools } from '../../src/mcp/tools.js';
import { withoutNulls } from '../../src/present/render/mcp.js';

type Json = Record<string, unknown>;

/** Every place in a JSON Schema a strict checker would refuse, as `path: what`. */
function looseness(schema: unknown, path = ''): string[] {
  if (Array.isArray(schema)) return schema.flatMap((s, i) => looseness(s, `${path}[${i}]`));
  if (typeof schema !== 'object' || schema === null) return [];
  const s = schema as Json;
  const found: string[] = [];
  if (s.type === 'object' && s.additionalProperties === undefined) found.push(`${path}: open object`);
  if (s.additionalProperties === true || (typeof s.additionalProperties === 'object' && Object.keys(s.additionalProperties as Json).length === 0)) found.push(`${path}: additionalProperties {}`);
  if (Array.isArray(s.type)) found.push(`${path}: type ${JSON.stringify(s.type)}`);
  for (const key of ['anyOf', 'oneOf']) if (Array.isArray(s[key]) && (s[key] as Json[]).some((o) => o.type === 'null')) found.push(`${path}: ${key} with null`);
  for (const [key, child] of Object.entries(s)) if (key !== 'additionalProperties' || typeof child === 'object') found.push(...looseness(child, `${path}.${key}`));
  return found;
}

describe('published MCP schemas', () => {
  const tools = mcpTools(catalogue, TOOLSETS);

  it('are closed and free of null unions, for every tool', () => {
    const problems = tools.flatMap((t) => looseness(t.outputSchema).map((p) => `${t.name}${p}`));
    expect(problems).toEqual([]);
  });

  it('accept the structuredContent a tool gives once its nulls are left out, and say which fields may be absent', () => {
    // The validator the SDK's Client checks structuredContent with.
    const status = tools.find((t) => t.name === 'service_status')!;
    const validate = new AjvJsonSchemaValidator().getValidator(status.outputSchema);
    const host = { host: 'node01', status: 'ok', unit: 'backup.service', description: 'Backup', load_state: 'loaded', active_state: 'failed', sub_state: 'failed' };
    const data = { hosts: [{ ...host, since: null, main_pid: null, restarts: null, unit_file_state: null }] };
    const content = { job_id: 'j1', tool: 'service_status', risk: 'read', state: 'succeeded', finished: true, summary: 's', plan: { hosts: ['node01'], failure_budget: 0, steps: [] }, data: withoutNulls(data) };
    const ok = validate(content);
    expect(ok.errorMessage).toBeUndefined();
    expect(ok.valid).toBe(true);
    // A null where the schema says "absent when not known" is refused, as a strict client would.
    expect(validate({ ...content, data }).valid).toBe(false);
  });
});
