// Run a tool: the tool list, then a form generated from the tool's input schema (the same
// JSON Schema MCP publishes, so the form cannot drift from validation), live target
// resolution, a plan preview, and submit → the job page.
import type { JsonSchema } from '../../../tools/schema-info.js';
import { kindOf } from '../../../tools/schema-info.js';
import type { PlanView } from '../../present/job-view.js';
import { html, inline, type Html } from '../../present/render/markup.js';
import { csrfField, page, UI, type Viewer } from '../layout.js';
import { planCard } from '../../present/render/html.js';

export interface ToolSummary {
  readonly name: string;
  readonly title: string;
  readonly description: string;
  readonly risk: string;
  readonly approvalRequired: boolean;
}

export function toolsPage(viewer: Viewer, tools: readonly ToolSummary[], pendingApprovals: number): Html {
  const body = html`<div class="title-row"><h1>Run a tool</h1></div>
<p class="muted">Tools your roles allow. Each form is generated from the tool's own schema.</p>
<ul class="tool-list">${tools.map(
    (t) => html`<li class="card"><a href="${UI}/run/${t.name}"><strong>${inline(t.title)}</strong> <code class="muted">${t.name}</code></a>
<span class="risk risk-${t.risk}">${t.risk}</span>${t.approvalRequired ? html` <span class="muted small">needs approval</span>` : ''}
<p>${inline(t.description.split('\n')[0] ?? '')}</p></li>`,
  )}</ul>`;
  return page({ title: 'Run a tool', section: '/run', viewer, body, pendingApprovals });
}

/** Field names whose text is a script or file body: a textarea, not a one-line input. */
const MULTILINE = new Set(['script', 'stdin', 'content', 'lines', 'playbook']);

export interface Preview {
  readonly plan: PlanView;
  readonly approvalsRequired: number;
}

function field(name: string, prop: JsonSchema, required: boolean, value: unknown, error: string | undefined): Html {
  const id = `f-${name}`;
  const kind = kindOf(prop);
  const label = name.replaceAll('_', ' ');
  const help = [prop.description, prop.minimum !== undefined || prop.maximum !== undefined ? `from ${prop.minimum ?? '…'} to ${prop.maximum ?? '…'}` : undefined, prop.default !== undefined ? `default ${JSON.stringify(prop.default)}` : undefined]
    .filter((x): x is string => typeof x === 'string' && x !== '')
    .join(' · ');
  const describedBy = html` aria-describedby="${id}-help${error !== undefined ? ` ${id}-error` : ''}"${error !== undefined ? html` aria-invalid="true"` : ''}`;
  const shown = value === undefined ? (prop.default !== undefined && kind !== 'array' ? prop.default : undefined) : value;
  let control: Html;
  if (kind === 'boolean') {
    control = html`<input type="checkbox" id="${id}" name="${name}" value="true"${shown === true ? html` checked` : ''}${describedBy}>`;
  } else if (Array.isArray(prop.enum)) {
    control = html`<select id="${id}" name="${name}"${required ? html` required` : ''}${describedBy}>${required ? '' : html`<option value="">(default)</option>`}${prop.enum.map((o) => html`<option${String(o) === (typeof shown === 'string' || typeof shown === 'number' ? String(shown) : '') ? html` selected` : ''}>${String(o)}</option>`)}</select>`;
  } else if (kind === 'array') {
    const lines = Array.isArray(shown) ? shown.map(String).join('\n') : '';
    control = html`<textarea id="${id}" name="${name}" rows="3" placeholder="one per line"${required ? html` required` : ''}${describedBy}>${lines}</textarea>`;
  } else if (kind === 'integer' || kind === 'number') {
    control = html`<input type="number" id="${id}" name="${name}"${prop.minimum !== undefined ? html` min="${prop.minimum}"` : ''}${prop.maximum !== undefined ? html` max="${prop.maximum}"` : ''}${kind === 'integer' ? html` step="1"` : html` step="any"`} value="${typeof shown === 'number' || typeof shown === 'string' ? String(shown) : ''}"${required ? html` required` : ''}${describedBy}>`;
  } else if (MULTILINE.has(name)) {
    control = html`<textarea id="${id}" name="${name}" rows="6" spellcheck="false"${required ? html` required` : ''}${describedBy}>${typeof shown === 'string' ? shown : ''}</textarea>`;
  } else {
    const targets = name === 'targets';
    control = html`<input id="${id}" name="${name}" value="${typeof shown === 'string' ? shown : ''}" autocomplete="off" spellcheck="false"${prop.maxLength !== undefined ? html` maxlength="${prop.maxLength}"` : ''}${required ? html` required` : ''}${targets ? html` data-resolve-targets` : ''}${describedBy}>`;
  }
  return html`<div class="field${kind === 'boolean' ? ' check' : ''}">
<label for="${id}">${label}${required ? html` <span class="req" aria-hidden="true">*</span>` : ''}</label>
${control}
<p class="help" id="${id}-help">${inline(help)}</p>
${name === 'targets' ? html`<p class="resolved" data-resolved aria-live="polite"></p>` : ''}
${error !== undefined ? html`<p class="error" id="${id}-error">${inline(error)}</p>` : ''}
</div>`;
}

export interface RunFormInput {
  readonly viewer: Viewer;
  readonly tool: ToolSummary;
  readonly schema: JsonSchema;
  readonly values: Readonly<Record<string, unknown>>;
  readonly errors: Readonly<Record<string, string>>;
  /** A general error not tied to one field. */
  readonly error?: string | undefined;
  readonly preview?: Preview | undefined;
  readonly idempotencyKey: string;
  readonly pendingApprovals: number;
}

export function previewFragment(preview: Preview): Html {
  return html`<div class="preview-body">${preview.approvalsRequired > 0
    ? html`<p class="notice">This request will wait for ${preview.approvalsRequired} approval${preview.approvalsRequired === 1 ? '' : 's'} before it runs.</p>`
    : html`<p class="muted">Runs as soon as a worker is free; no approval needed.</p>`}${planCard(preview.plan)}</div>`;
}

export function runFormPage(input: RunFormInput): Html {
  const { tool, schema } = input;
  const required = new Set(schema.required ?? []);
  const fields = Object.entries(schema.properties ?? {}).map(([name, prop]) => field(name, prop, required.has(name), input.values[name], input.errors[name]));
  const body = html`<nav class="crumbs" aria-label="Breadcrumb"><a href="${UI}/run">Run a tool</a> / <code>${tool.name}</code></nav>
<h1>${inline(tool.title)} <span class="risk risk-${tool.risk}">${tool.risk}</span></h1>
<p class="description">${inline(tool.description)}</p>
${input.error !== undefined ? html`<p class="error" role="alert">${inline(input.error)}</p>` : ''}
<form method="post" action="${UI}/run/${tool.name}" class="card run-form" data-run-form="${tool.name}" novalidate>
${csrfField(input.viewer)}<input type="hidden" name="_idempotency" value="${input.idempotencyKey}">
${fields}
<div class="actions"><button type="submit" name="_action" value="preview">Preview plan</button> <button type="submit" name="_action" value="submit" class="primary">Submit</button></div>
</form>
<section class="card preview" aria-live="polite" data-preview><h2>Plan preview</h2>${input.preview !== undefined ? previewFragment(input.preview) : html`<p class="muted">Preview the plan to see exactly which commands run on which hosts.</p>`}</section>`;
  return page({ title: `Run ${tool.name}`, section: '/run', viewer: input.viewer, body, pendingApprovals: input.pendingApprovals });
}

/** Form fields → tool input, typed by the schema. Empty optional fields are left out. */
export function inputFromForm(schema: JsonSchema, form: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (const [name, prop] of Object.entries(schema.properties ?? {})) {
    const raw = form[name];
    const kind = kindOf(prop);
    if (kind === 'boolean') {
      input[name] = raw === 'true' || raw === 'on';
      continue;
    }
    if (typeof raw !== 'string' || raw === '') continue;
    if (kind === 'array') input[name] = raw.split(/\r?\n/).filter((line) => line !== '');
    else if (kind === 'integer' || kind === 'number') input[name] = /^-?\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw) : raw;
    else input[name] = raw.replace(/\r\n/g, '\n');
  }
  return input;
}
