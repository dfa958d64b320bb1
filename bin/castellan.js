#!/usr/bin/env node
// Thin launcher: the CLI is compiled TypeScript in dist/. A checkout that was never built
// (a fresh clone, `castellan up --help` before anything else) is compiled on first use, so
// help and every command work without a separate build step. Installed packages ship dist/.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const entry = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
if (!existsSync(entry)) {
  const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
  const project = fileURLToPath(new URL('../tsconfig.build.json', import.meta.url));
  if (!existsSync(tsc) || !existsSync(project)) {
    process.stderr.write(`castellan: not built, and no TypeScript compiler in ${root}: run ./scripts/up there (or npm ci && npm run build)\n`);
    process.exit(70);
  }
  process.stderr.write('castellan: first run in this checkout: compiling (about 15 s)…\n');
  const build = spawnSync(process.execPath, [tsc, '-p', project], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  if (build.status !== 0 || !existsSync(entry)) {
    process.stderr.write(`castellan: the build failed; run npm run build in ${root} to see why\n`);
    process.exit(70);
  }
}
await import(entry);
