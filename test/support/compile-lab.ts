// Compile the lab modules alone to plain JS, so a test can run them as separate processes
// (`node fake-farm.js …`, a parent that dies with its Redis) without building the whole repo,
// whose other files may be mid-edit. The output lives under the repo's .lab/ (git-ignored) so
// the compiled files still resolve node_modules.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const run = promisify(execFile);
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface CompiledLab {
  /** Absolute path of the compiled JS for `src/lab/<name>.ts`. */
  file(name: string): string;
  remove(): Promise<void>;
}

export async function compileLab(entries: readonly string[]): Promise<CompiledLab> {
  mkdirSync(path.join(repo, '.lab'), { recursive: true });
  const outDir = await mkdtemp(path.join(repo, '.lab', 'compiled-'));
  const tsc = path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
  await run(process.execPath, [
    // Root src/, not src/lab: the fake farm speaks the node helper's protocol (src/ssh/helper-protocol.ts).
    tsc, '--ignoreConfig', '--outDir', outDir, '--rootDir', path.join(repo, 'src'),
    '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022',
    '--types', 'node', '--skipLibCheck', '--strict',
    ...entries.map((name) => path.join(repo, 'src', 'lab', `${name}.ts`)),
  ], { cwd: repo, timeout: 120_000 });
  return {
    file: (name) => path.join(outDir, 'lab', `${name}.js`),
    remove: () => rm(outDir, { recursive: true, force: true }),
  };
}
