// Ansible INI inventories: `[group]` host lines with inline `key=value` vars, `[group:vars]`,
// `[group:children]`, host ranges `node[01:09]`, `host:port`. Values are read as Ansible reads
// them: quoted strings, numbers, booleans, and `{...}` / `[...]` literals (so castellan_labels
// can be written `castellan_labels={'role': 'storage'}`); anything else is a plain string.
import { parse as parseYaml } from 'yaml';
import { expandAnsibleHosts, InventoryError, type InventoryBuilder, type Origin, type Vars } from './inventory-builder.js';

type Section = { kind: 'hosts' | 'children' | 'vars'; group: string };

export function readIniInventory(text: string, source: string, builder: InventoryBuilder): void {
  // Host lines before any header belong to no group but `all` (Ansible's ungrouped).
  let section: Section = { kind: 'hosts', group: 'all' };
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    const at: Origin = { source, path: `line ${i + 1}` };
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[([^\]:]+)(?::(\w+))?\]$/.exec(line);
    if (header) {
      const [, group = '', kind = 'hosts'] = header;
      if (kind !== 'hosts' && kind !== 'vars' && kind !== 'children') {
        throw new InventoryError(source, at.path, `unknown section type ':${kind}' (expected [${group}], [${group}:vars] or [${group}:children])`);
      }
      section = { kind, group: group.trim() };
      builder.group(section.group, at);
      continue;
    }
    if (line.startsWith('[')) throw new InventoryError(source, at.path, `bad section header '${line}'`);
    if (section.kind === 'children') builder.child(section.group, line, at);
    else if (section.kind === 'vars') {
      const eq = line.indexOf('=');
      if (eq <= 0) throw new InventoryError(source, at.path, `expected key=value in [${section.group}:vars], found '${line}'`);
      builder.groupVars(section.group, { [line.slice(0, eq).trim()]: parseValue(line.slice(eq + 1).trim(), at) }, at);
    } else readHostLine(line, section.group, at, builder);
  }
}

function readHostLine(line: string, group: string, at: Origin, builder: InventoryBuilder): void {
  const [pattern = '', ...rest] = shellWords(line, at);
  const vars: Vars = {};
  for (const word of rest) {
    const eq = word.indexOf('=');
    if (eq <= 0) throw new InventoryError(at.source, at.path, `expected key=value after the host name, found '${word}'`);
    vars[word.slice(0, eq)] = parseValue(word.slice(eq + 1), at);
  }
  // `host:2222` is Ansible's shorthand for ansible_port (not for IPv6 addresses).
  const hostPort = /^([^:]+):(\d+)$/.exec(pattern);
  const name = hostPort ? hostPort[1]! : pattern;
  if (hostPort && vars.ansible_port === undefined) vars.ansible_port = Number(hostPort[2]);
  for (const host of expandAnsibleHosts(name, at)) builder.host(group, host, vars, at);
}

/** POSIX-shell-like word splitting (quotes, backslashes, `#` comments), like Python's shlex. */
function shellWords(line: string, at: Origin): string[] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (/\s/.test(ch)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (ch === '#' && word === undefined) break;
    else if (ch === "'" || ch === '"') {
      const close = findClose(line, i, ch);
      if (close < 0) throw new InventoryError(at.source, at.path, `unclosed ${ch} quote`);
      const inner = line.slice(i + 1, close);
      word = (word ?? '') + (ch === '"' ? inner.replace(/\\(["\\$`])/g, '$1') : inner);
      i = close;
    } else if (ch === '\\' && i + 1 < line.length) {
      word = (word ?? '') + line[++i]!;
    } else word = (word ?? '') + ch;
  }
  if (word !== undefined) words.push(word);
  return words;
}

function findClose(line: string, open: number, quote: string): number {
  for (let i = open + 1; i < line.length; i++) {
    if (quote === '"' && line[i] === '\\') i++;
    else if (line[i] === quote) return i;
  }
  return -1;
}

/** Ansible's `_parse_value`: a Python literal when it is one, else the string itself. */
function parseValue(text: string, at: Origin): unknown {
  const quoted = /^(['"])(.*)\1$/s.exec(text);
  if (quoted) return quoted[2];
  if (/^-?\d+$/.test(text)) return Number(text);
  if (/^-?\d+\.\d+$/.test(text)) return Number(text);
  if (text === 'True' || text === 'true') return true;
  if (text === 'False' || text === 'false') return false;
  if (text === 'None') return null;
  if (/^[{[]/.test(text)) {
    try {
      return parseYaml(text) as unknown;
    } catch {
      throw new InventoryError(at.source, at.path, `cannot read ${JSON.stringify(text)} as a literal ({'key': 'value'} or ['a', 'b'])`);
    }
  }
  return text;
}
