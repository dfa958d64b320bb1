// YAML text → its tree of values (mappings as Maps, so key order and non-string keys survive),
// or the first error with where it is. A large file (a 1000-host inventory: ~300 ms on a free
// core, seconds on a loaded one) is parsed in a worker thread: parsing on the event loop would
// stall everything a server does meanwhile — Slack's 3-second acks, MCP answers, health checks.
// Only the text goes to the thread; the tree comes back by structured clone (Maps included).
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { parseDocument } from 'yaml';

export type YamlTree =
  | { readonly ok: true; readonly root: unknown }
  | { readonly ok: false; readonly message: string; readonly line: number | undefined; readonly col: number | undefined };

const OPTIONS = { prettyErrors: true, uniqueKeys: true } as const;

/** Texts at least this long are parsed off the event loop by parseYamlTreeOffThread. */
export const OFF_THREAD_MIN_CHARS = 32 * 1024;

/** Parse on this thread (small files, the CLI). */
export function parseYamlTree(text: string): YamlTree {
  const doc = parseDocument(text, OPTIONS);
  const error = doc.errors[0];
  if (error) return { ok: false, message: error.message, line: error.linePos?.[0].line, col: error.linePos?.[0].col };
  return { ok: true, root: doc.toJS({ mapAsMap: true }) as unknown };
}

// The same steps as parseYamlTree, as a script for the thread: it runs compiled or not (tests
// run this repository's TypeScript directly), so it is plain JavaScript loading the `yaml`
// package by its resolved path. test/unit/yaml-tree.test.ts holds the two to the same answers.
const THREAD_SCRIPT = `
const { parentPort, workerData } = require('node:worker_threads');
const { parseDocument } = require(workerData.yaml);
const doc = parseDocument(workerData.text, workerData.options);
const error = doc.errors[0];
parentPort.postMessage(error
  ? { ok: false, message: error.message, line: error.linePos?.[0].line, col: error.linePos?.[0].col }
  : { ok: true, root: doc.toJS({ mapAsMap: true }) });
`;

let yamlPath: string | undefined;

/** Parse in a worker thread of its own (it ends after answering). */
export function parseYamlTreeOffThread(text: string): Promise<YamlTree> {
  yamlPath ??= createRequire(import.meta.url).resolve('yaml');
  return new Promise((resolve, reject) => {
    const worker = new Worker(THREAD_SCRIPT, { eval: true, workerData: { yaml: yamlPath, text, options: OPTIONS } });
    let answered = false;
    worker.once('message', (tree: YamlTree) => {
      answered = true;
      resolve(tree);
      void worker.terminate();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (!answered) reject(new Error(`the YAML parser thread ended (exit code ${code}) without an answer`));
    });
  });
}

/** Off the event loop when the text is large enough for its parse to be felt, else here. */
export async function parseYamlTreeSized(text: string, offThread: boolean): Promise<YamlTree> {
  if (!offThread || text.length < OFF_THREAD_MIN_CHARS) return parseYamlTree(text);
  // A thread that cannot start (resource limits) costs a stall, not the inventory.
  return parseYamlTreeOffThread(text).catch(() => parseYamlTree(text));
}
