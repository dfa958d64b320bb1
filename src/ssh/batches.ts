// Fan-out shapes: a sliding window over hosts (like clush/pdsh: at most N in flight, the next
// host starts as soon as one finishes) and rolling batches for changes that must not take the
// whole cluster down at once.
import type { BatchSize } from './types.js';

/** Split hosts into consecutive batches of `size` hosts, or of a percentage of them ("25%", at least 1). */
export function splitBatches<T>(hosts: readonly T[], size: BatchSize): T[][] {
  let count: number;
  if (typeof size === 'number') {
    count = size;
  } else {
    const match = /^(\d+(?:\.\d+)?)%$/.exec(size);
    const percent = match ? Number(match[1]) : Number.NaN;
    if (!(percent > 0 && percent <= 100)) throw new RangeError(`batch size ${size} is not a percentage in (0, 100]`);
    count = Math.max(1, Math.ceil((hosts.length * percent) / 100));
  }
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`batch size must be a positive integer or a percentage, not ${String(size)}`);
  const batches: T[][] = [];
  for (let start = 0; start < hosts.length; start += count) batches.push(hosts.slice(start, start + count));
  return batches;
}

/** Run `task` on every item with at most `window` in flight; results keep the items' order. */
export async function slidingWindow<T, R>(items: readonly T[], window: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  if (!Number.isInteger(window) || window < 1) throw new RangeError(`window must be a positive integer, not ${window}`);
  const results = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(window, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index] as T, index);
    }
  });
  await Promise.all(lanes);
  return results;
}
