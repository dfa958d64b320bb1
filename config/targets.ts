// Target expressions: how an operator says which hosts. Terms are host names, group names
// (`k8s_worker` or `@k8s_worker` as ClusterShell writes it), `all`, node sets
// (`node[01-09,12]`, commas inside brackets belong to the range) and label selectors
// (`role=storage`, exact match). Operators: `,` union, `&` intersection, `!` difference.
//
// Like ClusterShell, operators have no precedence: they apply strictly left to right, so
// `a,b&c` is `(a,b)&c` and `all!storage_nodes,node03` adds node03 back. Use parentheses to
// group differently: `a,(b&c)`. The result is in inventory order, without duplicates.
import { z } from 'zod';
import { expandNodeSet, foldNodeSet, hasRange, NodeSetError } from './nodeset.js';
import { didYouMean } from './suggest.js';
import type { Inventory } from './types.js';

export const MAX_EXPRESSION_LENGTH = 1024;
const ALLOWED = /[A-Za-z0-9._\-[\],&!=@() ]/;
const ALLOWED_TEXT = "letters, digits, '.', '_', '-', '[', ']', ',', '&', '!', '=', '@', '(', ')' and spaces";

export class TargetError extends Error {
  constructor(
    message: string,
    readonly expression: string,
    /** 0-based character offset of the problem, when there is one place to point at. */
    readonly position?: number,
  ) {
    super(message);
    this.name = 'TargetError';
  }
}

/**
 * The first problem with the characters of an expression, or undefined. Checked before any
 * parsing so hostile input (`;`, `$(...)`, backticks, newlines, NUL, a leading `-`) is refused
 * with a plain reason and never reaches a shell, a log line or an argv.
 */
export function checkTargetCharacters(expression: string): { message: string; position?: number } | undefined {
  if (expression.length > MAX_EXPRESSION_LENGTH) {
    return { message: `target expression is ${expression.length} characters long (at most ${MAX_EXPRESSION_LENGTH})` };
  }
  for (let i = 0; i < expression.length; i++) {
    const ch = expression[i]!;
    if (!ALLOWED.test(ch)) {
      return { message: `character ${JSON.stringify(ch)} at position ${i} is not allowed in a target expression (allowed: ${ALLOWED_TEXT})`, position: i };
    }
  }
  const start = expression.search(/\S/);
  if (start < 0) return { message: 'target expression is empty' };
  if (expression[start] === '-') return { message: `a target expression cannot start with '-' (position ${start})`, position: start };
  return undefined;
}

/** Zod schema for a `targets` field in tool inputs: same allowlist, same messages. */
export const targetExpression = z
  .string()
  .superRefine((value, ctx) => {
    const problem = checkTargetCharacters(value);
    if (problem) ctx.addIssue({ code: 'custom', message: problem.message });
  })
  .describe(
    "Hosts to act on: host or group names (@group too), node sets like node[01-09,12], labels like role=storage; combine with ',' (union), '&' (and), '!' (except), left to right, with parentheses. 'all' is every host.",
  );

export interface ResolveOptions {
  /**
   * Most names one node set may denote (config `limits.max_hosts`): counted from the ranges
   * before anything is expanded, so `node[1-100000000]` is refused at once.
   */
  readonly maxHosts?: number | undefined;
}

/** Host names the expression selects, in inventory order, de-duplicated. Throws TargetError. */
export function resolveTargets(expression: string, inventory: Inventory, options: ResolveOptions = {}): string[] {
  const problem = checkTargetCharacters(expression);
  if (problem) throw new TargetError(problem.message, expression, problem.position);
  const tokens = tokenize(expression);
  const parser = new Parser(tokens, expression, indexOf(inventory), inventory, options.maxHosts);
  const selected = parser.parse();
  const order = indexOf(inventory).order;
  const hosts = [...selected].sort((a, b) => order.get(a)! - order.get(b)!);
  if (hosts.length === 0) throw new TargetError(`target expression '${expression}' matches no hosts`, expression);
  return hosts;
}

type Token = { kind: 'op'; op: ',' | '&' | '!'; at: number } | { kind: 'open' | 'close'; at: number } | { kind: 'word'; text: string; at: number };

function tokenize(expression: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < expression.length) {
    const ch = expression[i]!;
    if (ch === ' ') i++;
    else if (ch === ',' || ch === '&' || ch === '!') tokens.push({ kind: 'op', op: ch, at: i++ });
    else if (ch === '(') tokens.push({ kind: 'open', at: i++ });
    else if (ch === ')') tokens.push({ kind: 'close', at: i++ });
    else if (ch === ']') throw new TargetError(`unexpected ']' at position ${i}`, expression, i);
    else {
      // A word runs to the next space, operator or parenthesis; inside brackets commas are
      // part of the range, so `node[01-03,07]` stays one word.
      const start = i;
      while (i < expression.length && !/[ ,&!()\]]/.test(expression[i]!)) {
        if (expression[i] === '[') {
          const close = expression.indexOf(']', i);
          if (close < 0) throw new TargetError(`unclosed '[' at position ${i}`, expression, i);
          i = close + 1;
        } else i++;
      }
      tokens.push({ kind: 'word', text: expression.slice(start, i), at: start });
    }
  }
  return tokens;
}

interface InventoryIndex {
  readonly order: ReadonlyMap<string, number>;
  /** label key -> value -> hosts */
  readonly labels: ReadonlyMap<string, ReadonlyMap<string, readonly string[]>>;
}

// Inventories are immutable once built, so their lookup tables are built once per inventory.
const indexes = new WeakMap<Inventory, InventoryIndex>();

function indexOf(inventory: Inventory): InventoryIndex {
  let index = indexes.get(inventory);
  if (!index) {
    const order = new Map<string, number>();
    const labels = new Map<string, Map<string, string[]>>();
    for (const host of inventory.hosts.values()) {
      order.set(host.name, order.size);
      for (const [key, value] of Object.entries(host.labels)) {
        let values = labels.get(key);
        if (!values) labels.set(key, (values = new Map<string, string[]>()));
        const hosts = values.get(value);
        if (hosts) hosts.push(host.name);
        else values.set(value, [host.name]);
      }
    }
    indexes.set(inventory, (index = { order, labels }));
  }
  return index;
}

class Parser {
  private position = 0;

  constructor(
    private readonly tokens: readonly Token[],
    private readonly expression: string,
    private readonly index: InventoryIndex,
    private readonly inventory: Inventory,
    private readonly maxHosts?: number | undefined,
  ) {}

  parse(): Set<string> {
    const result = this.sequence();
    const extra = this.tokens[this.position];
    if (extra) throw this.error(extra.kind === 'close' ? `unexpected ')' at position ${extra.at}` : `unexpected input at position ${extra.at}`, extra.at);
    return result;
  }

  /** operand (op operand)*, applied strictly left to right. */
  private sequence(): Set<string> {
    let acc = this.operand();
    for (;;) {
      const token = this.tokens[this.position];
      if (!token || token.kind === 'close') return acc;
      if (token.kind !== 'op') {
        throw this.error(`missing operator before '${this.textAt(token)}' at position ${token.at} (use ',' for union, '&' for and, '!' for except)`, token.at);
      }
      this.position++;
      const right = this.operand();
      if (token.op === ',') for (const h of right) acc.add(h);
      else if (token.op === '&') acc = new Set([...acc].filter((h) => right.has(h)));
      else for (const h of right) acc.delete(h);
    }
  }

  private operand(): Set<string> {
    const token = this.tokens[this.position];
    if (!token) {
      const at = this.expression.trimEnd().length;
      throw this.error(`expected a host, group, node set or label at the end of the expression (position ${at})`, at);
    }
    if (token.kind === 'open') {
      this.position++;
      const inner = this.sequence();
      const close = this.tokens[this.position];
      if (close?.kind !== 'close') throw this.error(`unclosed '(' at position ${token.at}`, token.at);
      this.position++;
      return inner;
    }
    if (token.kind === 'word') {
      this.position++;
      return this.resolveWord(token.text, token.at);
    }
    if (token.kind === 'op' && token.op === '!' && this.position === 0) {
      throw this.error(`'!' at position ${token.at} needs something to subtract from (e.g. all!node07)`, token.at);
    }
    throw this.error(`expected a host, group, node set or label at position ${token.at}, found '${this.textAt(token)}'`, token.at);
  }

  private resolveWord(word: string, at: number): Set<string> {
    if (word.startsWith('@')) return this.group(word.slice(1), word, at);
    if (word.includes('=')) return this.label(word, at);
    if (word.includes('@')) throw this.error(`'@' at position ${at + word.indexOf('@')} may only start a group name`, at + word.indexOf('@'));
    if (hasRange(word)) return this.nodeSet(word, at);
    if (this.inventory.hosts.has(word)) return new Set([word]);
    if (this.inventory.groups.has(word)) return new Set(this.inventory.groups.get(word));
    const names = [...this.inventory.hosts.keys(), ...this.inventory.groups.keys()];
    throw this.error(`unknown host or group '${word}'${didYouMean(word, names)}`, at);
  }

  private group(name: string, word: string, at: number): Set<string> {
    const members = this.inventory.groups.get(name);
    if (members) return new Set(members);
    if (!/^[A-Za-z0-9._-]+$/.test(name)) throw this.error(`'${word}' at position ${at} is not a group name`, at);
    throw this.error(`unknown group '${name}'${didYouMean(name, this.inventory.groups.keys())}`, at);
  }

  private label(word: string, at: number): Set<string> {
    const match = /^([A-Za-z0-9._-]+)=([A-Za-z0-9._-]+)$/.exec(word);
    if (!match) throw this.error(`'${word}' at position ${at} is not a label selector (write key=value, e.g. role=storage)`, at);
    const [, key = '', value = ''] = match;
    const values = this.index.labels.get(key);
    if (!values) {
      const known = [...this.index.labels.keys()].sort();
      const inUse = known.length > 0 ? `labels in use: ${known.join(', ')}` : 'no host has labels';
      throw this.error(`unknown label '${key}' in '${word}'${didYouMean(key, known)} (${inUse})`, at);
    }
    const hosts = values.get(value);
    if (!hosts) {
      const known = [...values.keys()].sort();
      throw this.error(`no host has label ${key}=${value}${didYouMean(value, known)} (values of ${key}: ${known.join(', ')})`, at);
    }
    return new Set(hosts);
  }

  private nodeSet(word: string, at: number): Set<string> {
    let names: string[];
    try {
      names = this.maxHosts === undefined ? expandNodeSet(word) : expandNodeSet(word, { limit: this.maxHosts, limitName: 'limits.max_hosts' });
    } catch (error) {
      if (!(error instanceof NodeSetError)) throw error;
      const where = error.position === undefined ? undefined : at + error.position;
      throw this.error(`${error.message.replace(/position \d+/, `position ${where ?? at}`)} in '${word}'`, where ?? at);
    }
    const unknown = names.filter((n) => !this.inventory.hosts.has(n));
    if (unknown.length > 0) {
      throw this.error(`node set '${word}' names ${unknown.length === 1 ? 'a host' : 'hosts'} not in the inventory: ${foldNodeSet(unknown)}`, at);
    }
    return new Set(names);
  }

  private textAt(token: Token): string {
    return token.kind === 'word' ? token.text : token.kind === 'op' ? token.op : token.kind === 'open' ? '(' : ')';
  }

  private error(message: string, position?: number): TargetError {
    return new TargetError(message, this.expression, position);
  }
}
