// "Did you mean" for tool names and options: edit distance plus prefix/substring matches,
// because operators mistype (`servce_status`) and abbreviate (`wireguard`).

/** Levenshtein distance (insert, delete, substitute), iterative with one row. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] ?? 0;
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min(above + 1, (row[j - 1] ?? 0) + 1, diagonal + cost);
      diagonal = above;
    }
  }
  return row[b.length] ?? 0;
}

/** Up to `limit` candidates close to `input`, closest first. */
export function closeNames(input: string, candidates: readonly string[], limit = 3): string[] {
  const wanted = input.toLowerCase();
  const threshold = Math.max(2, Math.floor(wanted.length / 3));
  return candidates
    .map((name) => {
      const lower = name.toLowerCase();
      const contains = wanted.length >= 3 && (lower.includes(wanted) || wanted.includes(lower));
      return { name, score: contains ? 0 : editDistance(wanted, lower) };
    })
    .filter(({ score }) => score <= threshold)
    .sort((a, b) => a.score - b.score || a.name.localeCompare(b.name))
    .slice(0, limit)
    .map(({ name }) => name);
}

/** " (did you mean a or b?)", or "" when nothing is close. */
export function didYouMean(input: string, candidates: readonly string[]): string {
  const close = closeNames(input, candidates);
  if (close.length === 0) return '';
  const quoted = close.map((name) => `'${name}'`);
  const last = quoted.pop();
  return ` (did you mean ${quoted.length > 0 ? `${quoted.join(', ')} or ${last}` : last}?)`;
}
