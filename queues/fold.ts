// Output folding, as `clush -b` / `clubak -b` do it: hosts that said exactly the same thing
// are shown once, under their node set. Sixteen `active` lines become `node[00-15] (16): active`
// and the one host that differs stands out. Every front end (CLI, Slack, MCP, dashboard)
// renders results through this, so they all show the same grouping.
import { foldNodeSet } from '../config/nodeset.js';

export interface HostOutput {
  readonly host: string;
  /** Outcome (`ok`, `failed`, ...); hosts fold together only when the status matches too. */
  readonly status: string;
  /** What to compare: stdout, or exit code plus stdout, as the caller decides. */
  readonly text: string;
}

export interface OutputGroup {
  /** The hosts as a canonical node set, e.g. `node[01-03,07]`. */
  readonly nodeset: string;
  /** The hosts in input order. */
  readonly hosts: readonly string[];
  readonly count: number;
  readonly status: string;
  readonly text: string;
}

/**
 * Group hosts with identical status and text. Largest group first; ties keep the order in
 * which their first host appeared, so the rendering is stable from run to run.
 */
export function foldOutputs(outputs: readonly HostOutput[]): OutputGroup[] {
  const groups = new Map<string, { first: number; hosts: Set<string>; status: string; text: string }>();
  outputs.forEach((output, index) => {
    // JSON keeps the two fields apart without any separator that could occur in the text.
    const key = JSON.stringify([output.status, output.text]);
    const group = groups.get(key);
    if (group) group.hosts.add(output.host);
    else groups.set(key, { first: index, hosts: new Set([output.host]), status: output.status, text: output.text });
  });
  return [...groups.values()]
    .sort((a, b) => b.hosts.size - a.hosts.size || a.first - b.first)
    .map((g) => ({ nodeset: foldNodeSet(g.hosts), hosts: [...g.hosts], count: g.hosts.size, status: g.status, text: g.text }));
}

export interface RenderOptions {
  /** Status that goes unmentioned (default `ok`); any other status is shown after the count. */
  readonly quietStatus?: string;
  /** Indentation of multi-line blocks (default four spaces). */
  readonly indent?: string;
}

/**
 * Plain text: `node[01-03,07] (4): active` for one-line outputs, and a header line followed by
 * the indented output for multi-line ones. A status other than `ok` is shown in brackets:
 * `node05 (1) [failed]: inactive`.
 */
export function renderFolded(groups: readonly OutputGroup[], options: RenderOptions = {}): string {
  const quiet = options.quietStatus ?? 'ok';
  const indent = options.indent ?? '    ';
  const blocks = groups.map((group) => {
    const status = group.status === quiet ? '' : ` [${group.status}]`;
    const header = `${group.nodeset} (${group.count})${status}:`;
    // One trailing newline is how commands end their output, not part of what they said.
    const text = group.text.replace(/\r?\n$/, '');
    if (text === '') return `${header} (no output)`;
    if (!text.includes('\n')) return `${header} ${text}`;
    return `${header}\n${text
      .split(/\r?\n/)
      .map((line) => (line === '' ? '' : indent + line))
      .join('\n')}`;
  });
  return blocks.join('\n');
}
