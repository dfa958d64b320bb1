// Escaped HTML templating (the dashboard's pages and ./html.ts, the job view's HTML). Every interpolated value is escaped unless it is
// an `Html` value built by this module, so forgetting to escape is impossible rather than a
// review item. Untrusted text (argv, output, host names, reasons) additionally goes through
// config/visible.ts so control and invisible characters show as escapes, as in every front end.
import { displayArgv, visibleBlock, visibleInline } from '../../../config/visible.js';
import { durationWords } from '../summary.js';

/** A fragment of markup that is already safe to send. */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

export type Interpolation = Html | string | number | boolean | null | undefined | readonly Interpolation[];

const ENTITIES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' };

/** Escape text for an element body or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`]/g, (c) => ENTITIES[c] ?? c);
}

function render(value: Interpolation): string {
  if (value instanceof Html) return value.value;
  if (value === null || value === undefined || value === false) return '';
  if (Array.isArray(value)) return (value as readonly Interpolation[]).map(render).join('');
  return escapeHtml(String(value));
}

/** Tagged template: `html\`<p>${name}</p>\`` escapes `name`; nested `html` fragments pass through. */
export function html(strings: TemplateStringsArray, ...values: Interpolation[]): Html {
  let out = strings[0] ?? '';
  values.forEach((value, i) => {
    out += render(value) + (strings[i + 1] ?? '');
  });
  return new Html(out);
}

/** Markup from a trusted constant (never from input). */
export function trusted(markup: string): Html {
  return new Html(markup);
}

/** Untrusted one-line text (host names, reasons, argv words): control characters made visible, then escaped. */
export function inline(text: string): Html {
  return new Html(escapeHtml(visibleInline(text)));
}

/** Untrusted multi-line text (output, scripts): newlines kept, other control characters made visible. */
export function block(text: string): Html {
  return new Html(escapeHtml(visibleBlock(text)));
}

/** An argv as a person should read it (bash-quoted, invisible characters as $'…' escapes). */
export function argv(words: readonly string[]): Html {
  return new Html(escapeHtml(displayArgv(words)));
}

/** `<time>` with the relative form shown and the absolute time on hover; dashboard.js keeps it fresh. */
export function time(iso: string | undefined, now = Date.now()): Html {
  if (iso === undefined || iso === '') return html`<span class="muted">—</span>`;
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return inline(iso);
  const absolute = new Date(at).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  return html`<time datetime="${new Date(at).toISOString()}" title="${absolute}" data-relative>${relative(at, now)}</time>`;
}

/** Time of day in UTC (`05:02:01`), the date and zone on hover: for timelines, where "just now" repeats. */
export function clock(at: number): Html {
  const iso = new Date(at).toISOString();
  return html`<time datetime="${iso}" title="${iso.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}">${iso.slice(11, 19)}</time>`;
}

/** "5 s ago", "in 3 min", "2 h ago", "4 d ago". */
export function relative(at: number, now = Date.now()): string {
  const seconds = Math.round((now - at) / 1000);
  const size = Math.abs(seconds);
  const amount =
    size < 60 ? `${size} s` : size < 3600 ? `${Math.round(size / 60)} min` : size < 86_400 ? `${Math.round(size / 3600)} h` : `${Math.round(size / 86_400)} d`;
  if (size < 5) return 'just now';
  return seconds >= 0 ? `${amount} ago` : `in ${amount}`;
}

/** A duration in the words every front end uses ("850 ms", "12 s", "4 min 5 s"), or a dash. */
export function duration(ms: number | undefined): string {
  return ms === undefined || !Number.isFinite(ms) || ms < 0 ? '—' : durationWords(ms);
}
