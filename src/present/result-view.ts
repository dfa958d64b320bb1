// The tool's own result view: what its structured data says, as rows and columns every front
// end can draw (terminal table, MCP structuredContent, Slack fields, an HTML table). Built from
// the tool's declaration (tools/result-view.ts) over the job's `data`. Hosts whose rendered
// rows are equal fold into one row under their node set (`node[01-05] (5) ok  p50 12 ms`);
// rows that differ stay apart and make a table. Data that does not match the tool's output
// schema (a summary error, an older job) gets no view: renderers fall back to folded output.
import { z } from 'zod';
import { foldNodeSet } from '../../config/nodeset.js';
import { isMeasure, percentile, TONES, type ResultViewDefinition, type Tone, type ViewRow } from '../../tools/result-view.js';
import type { AnyTool } from '../../tools/registry.js';

export const resultRowSchema = z.object({
  /** First column: the hosts' node set (`node[01-05]`), or the row's own name (k8s node, group). */
  key: z.string(),
  /** Inventory hosts folded into this row (empty for rows about something else). */
  hosts: z.array(z.string()),
  count: z.number(),
  /** One text per column, '' when unknown. */
  cells: z.array(z.string()),
  /** How each cell should stand out ('' for plain), when any does. */
  tones: z.array(z.enum(['', ...TONES])).optional(),
  /** The hosts did not answer as expected: the reason replaces the cells. */
  problem: z.object({ status: z.string(), text: z.string() }).optional(),
});
export type ResultRow = z.infer<typeof resultRowSchema>;

export const resultViewSchema = z.object({
  /** The tool's title ("Uptime and load"). */
  title: z.string(),
  /** One line that says what the result means: `5 of 5 reachable; p50 12 ms, max 31 ms`. */
  summary: z.string(),
  /** Heading of the first column: `hosts`, `node`, `group`, `member`. */
  key: z.string(),
  /** Whether to show column headings (off when the cells say what they are). */
  header: z.boolean(),
  /** The answer is text best read as it came (logs): show the folded output under the summary, no table. */
  output: z.boolean(),
  columns: z.array(z.object({ label: z.string(), align: z.enum(['left', 'right']) })),
  rows: z.array(resultRowSchema),
});
export type ResultView = z.infer<typeof resultViewSchema>;

/** `p50 12 ms  max 31 ms` for a folded group, the value alone for one host. */
function measured(values: readonly number[], format: (n: number) => string): string {
  if (values.length === 0) return '';
  if (values.length === 1) return format(values[0] ?? 0);
  return `p50 ${format(percentile(values, 50) ?? 0)}  max ${format(percentile(values, 100) ?? 0)}`;
}

interface Group {
  hosts: string[];
  name: string;
  rows: unknown[];
  problem?: { status: string; text: string } | undefined;
  cells: string[];
  tones: ('' | Tone)[];
}

/**
 * The view of `data` for `tool`, or undefined when the tool declares none or the data does not
 * match its output schema.
 */
export function resultView(tool: AnyTool | undefined, data: unknown): ResultView | undefined {
  const definition: ResultViewDefinition | undefined = tool?.view;
  if (tool === undefined || definition === undefined || data === undefined) return undefined;
  const parsed = tool.output ? tool.output.safeParse(data) : { success: true as const, data };
  if (!parsed.success) return undefined;
  let rows: readonly ViewRow<unknown>[];
  let summary: string;
  try {
    rows = definition.rows(parsed.data);
    summary = definition.summary(parsed.data);
  } catch {
    // A view that cannot read its own data must not hide the job: show the folded output.
    return undefined;
  }
  const columns = definition.columns;
  const groups: Group[] = [];
  const byKey = new Map<string, Group>();
  for (const row of rows) {
    const cells: string[] = [];
    const tones: ('' | Tone)[] = [];
    if (row.problem === undefined && row.row !== undefined) {
      for (const column of columns) {
        if (isMeasure(column)) {
          cells.push('');
          tones.push('');
        } else {
          cells.push(column.cell(row.row));
          tones.push(column.tone?.(row.row) ?? '');
        }
      }
    }
    const group: Group = { hosts: row.host !== undefined ? [row.host] : [], name: row.name ?? row.host ?? '', rows: [row.row], problem: row.problem, cells, tones };
    if (row.host === undefined) {
      groups.push(group);
      continue;
    }
    // Measures are not compared: alike hosts fold although their latency differs.
    const key = JSON.stringify([row.problem?.status ?? null, row.problem?.text ?? null, cells, tones]);
    const existing = byKey.get(key);
    if (existing) {
      if (!existing.hosts.includes(row.host)) existing.hosts.push(row.host);
      existing.rows.push(row.row);
    } else {
      byKey.set(key, group);
      groups.push(group);
    }
  }
  // Hosts that did not answer read last, after what the others said.
  const ordered = [...groups.filter((g) => g.problem === undefined), ...groups.filter((g) => g.problem !== undefined)];
  const viewRows: ResultRow[] = ordered.map((g) => {
    const cells = g.problem ? [] : columns.map((column, i) => {
      if (!isMeasure(column)) return g.cells[i] ?? '';
      const values = g.rows.flatMap((r) => {
        const v = r === undefined ? undefined : column.measure(r);
        return v === undefined || !Number.isFinite(v) ? [] : [v];
      });
      return measured(values, (n) => column.format(n));
    });
    const toned = g.tones.some((t) => t !== '');
    return {
      key: g.hosts.length > 0 ? foldNodeSet(g.hosts) : g.name,
      hosts: g.hosts,
      count: Math.max(1, g.hosts.length),
      cells,
      ...(toned && !g.problem ? { tones: g.tones } : {}),
      ...(g.problem ? { problem: { status: g.problem.status, text: g.problem.text } } : {}),
    };
  });
  // A column empty in every row (ping's error column when all answered) says nothing.
  const kept = columns.map((_c, i) => viewRows.some((r) => r.problem === undefined && (r.cells[i] ?? '') !== ''));
  return {
    title: tool.title,
    summary,
    key: definition.key ?? 'hosts',
    header: definition.header ?? true,
    output: definition.output ?? false,
    columns: columns.filter((_c, i) => kept[i]).map((c) => ({ label: c.label, align: c.align ?? 'left' })),
    rows: viewRows.map((r) => ({
      ...r,
      cells: r.cells.filter((_c, i) => kept[i]),
      ...(r.tones ? { tones: r.tones.filter((_t, i) => kept[i]) } : {}),
    })),
  };
}
