// Filters of the list pages (Jobs, Audit): each page declares its fields once, and the same
// declaration reads the query string (text trimmed and bounded, a choice only from its
// options, times as UTC), draws the filter form, and makes the links that keep the filter.
import type { Request } from 'express';
import { html, type Html } from '../present/render/markup.js';

export interface FilterField<N extends string> {
  readonly name: N;
  readonly label: string;
  /** Example text shown in an empty text field. */
  readonly hint?: string | undefined;
  /** A choice: only these values are accepted (anything else reads as no filter). */
  readonly options?: readonly string[] | undefined;
  /** How an option reads (`awaiting_approval` → "awaiting approval"). */
  readonly words?: ((option: string) => string) | undefined;
}

/** A filter: the fields that were set, and the time range (epoch ms, inclusive). */
export type Filter<N extends string> = { readonly [K in N]?: string | undefined } & {
  readonly since?: number | undefined;
  readonly until?: number | undefined;
};

const MAX_TEXT = 200;

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value.trim().slice(0, MAX_TEXT) : undefined;
}

/** `2026-01-02T03:04` from a datetime-local field is UTC, as every time the dashboard shows. */
function when(value: unknown): number | undefined {
  const t = text(value);
  if (t === undefined) return undefined;
  const ms = Date.parse(/Z$|[+-]\d\d:\d\d$/.test(t) ? t : `${t}Z`);
  return Number.isNaN(ms) ? undefined : ms;
}

export function readFilter<N extends string>(fields: readonly FilterField<N>[], query: Request['query']): Filter<N> {
  const out: Record<string, string | number | undefined> = { since: when(query['since']), until: when(query['until']) };
  for (const field of fields) {
    const value = text(query[field.name]);
    out[field.name] = value !== undefined && field.options !== undefined && !field.options.includes(value) ? undefined : value;
  }
  return out as Filter<N>;
}

export function isFiltered(filter: Readonly<Record<string, unknown>>): boolean {
  return Object.values(filter).some((v) => v !== undefined);
}

/** Whether epoch ms `at` is inside the filter's time range. */
export function inRange(filter: { readonly since?: number | undefined; readonly until?: number | undefined }, at: number): boolean {
  return !(filter.since !== undefined && at < filter.since) && !(filter.until !== undefined && at > filter.until);
}

function dateValue(ms: number | undefined): string {
  return ms === undefined ? '' : new Date(ms).toISOString().slice(0, 16);
}

/** The filter form: one labelled control a field, then From/To (UTC) and the buttons. */
export function filterForm<N extends string>(action: string, what: string, fields: readonly FilterField<N>[], filter: Filter<N>): Html {
  const controls = fields.map((field) => {
    const current = filter[field.name];
    if (field.options !== undefined) {
      const words = field.words ?? ((o: string) => o.replaceAll('_', ' '));
      return html`<label>${field.label}<select name="${field.name}"><option value="">any</option>${field.options.map((o) => html`<option value="${o}"${o === current ? html` selected` : ''}>${words(o)}</option>`)}</select></label>`;
    }
    return html`<label>${field.label}<input name="${field.name}" value="${current ?? ''}"${field.hint !== undefined ? html` placeholder="${field.hint}"` : ''} autocomplete="off"></label>`;
  });
  // Folded on a phone unless a filter is set (dashboard.js opens it on wider screens).
  const active = Object.values(filter).filter((v) => v !== undefined).length;
  return html`<details class="filter-box" data-filters${active > 0 ? html` open` : ''}><summary>Filter ${what}${active > 0 ? html` <span class="muted">(${active} set)</span>` : ''}</summary>
<form class="filters" method="get" action="${action}" aria-label="Filter ${what}">
${controls}
<label>From (UTC)<input type="datetime-local" name="since" value="${dateValue(filter.since)}"></label>
<label>To (UTC)<input type="datetime-local" name="until" value="${dateValue(filter.until)}"></label>
<div class="actions"><button type="submit">Filter</button> <a href="${action}">Clear</a></div>
</form></details>`;
}

/** The request's non-empty query parameters but `drop`: links built from it keep the filter. */
export function keptQuery(query: Request['query'], drop: readonly string[] = []): URLSearchParams {
  return new URLSearchParams(Object.entries(query).filter((e): e is [string, string] => typeof e[1] === 'string' && e[1] !== '' && !drop.includes(e[0])));
}
