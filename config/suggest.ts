// "Did you mean" for config keys, host and group names, label keys, tool names and options.
// Operators mistype names under pressure (`servce_status`) and abbreviate (`wireguard`); a near
// miss should cost one glance, not a trip to the inventory file or the tool list.

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      const row = d[i]!;
      const prev = d[i - 1]!;
      let best = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      row[j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * Up to `max` candidates close to `input`: within an edit distance that grows with the length
 * (1 for short names, about a third of the length for long ones), or starting with the input,
 * or (from three characters on) containing it.
 * Closest first, then alphabetical, so the same typo always gets the same hint.
 */
export function suggest(input: string, candidates: Iterable<string>, max = 3): string[] {
  const needle = input.toLowerCase();
  const limit = Math.max(1, Math.floor(needle.length / 3));
  const scored: Array<{ name: string; score: number }> = [];
  for (const name of new Set(candidates)) {
    const hay = name.toLowerCase();
    const distance = editDistance(needle, hay);
    if (distance <= limit) scored.push({ name, score: distance });
    else if (needle.length >= 2 && hay.startsWith(needle)) scored.push({ name, score: limit + 1 });
    else if (needle.length >= 3 && hay.includes(needle)) scored.push({ name, score: limit + 2 });
  }
  scored.sort((x, y) => x.score - y.score || (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
  return scored.slice(0, max).map((s) => s.name);
}

/** ` (did you mean 'a', 'b' or 'c'?)`, or '' when nothing is close. */
export function didYouMean(input: string, candidates: Iterable<string>): string {
  const close = suggest(input, candidates);
  if (close.length === 0) return '';
  const quoted = close.map((c) => `'${c}'`);
  const last = quoted.pop()!;
  return ` (did you mean ${quoted.length > 0 ? `${quoted.join(', ')} or ${last}` : last}?)`;
}
