// A file's version, to notice that it changed without reading it: its mtime and size, or
// 'missing' when it cannot be stat'ed. Used on every job's path (the inventory at submission and
// in the worker's re-plan, known_hosts for each binding and fan-out), so it is a synchronous
// stat: a few microseconds on a local file, where the asynchronous one is a round trip through
// libuv's thread pool (and, on busy cores, a wait to be scheduled).
import { statSync } from 'node:fs';

export function fileStamp(file: string): string {
  try {
    const s = statSync(file, { throwIfNoEntry: false });
    return s ? `${s.mtimeMs}:${s.size}` : 'missing';
  } catch {
    return 'missing';
  }
}
