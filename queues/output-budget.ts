// How much of what hosts printed a job keeps (config limits.output_per_host / output_per_job).
// Redis runs under `noeviction`, so stored output must be bounded: each host's stdout+stderr is
// cut at the per-host limit, and the job as a whole stops keeping output once the per-job limit
// is spent. Every cut is visible: the text ends with a marker naming the limit, and the host's
// `truncated` flag is set. The tool's structured data was computed from the whole output first.
import type { HostResult } from '../tools/host-result.js';
import type { OutputGroup } from './fold.js';
import type { HostOutcome, JobResult } from './records.js';

export interface OutputLimits {
  readonly outputPerHostBytes: number;
  readonly outputPerJobBytes: number;
}

/** The marker appended where output was cut. */
export function cutMarker(droppedBytes: number, setting: string): string {
  return `\n[… ${droppedBytes} more bytes of output not kept (${setting})]`;
}

/** The longest prefix of `text` within `bytes` UTF-8 bytes (never half a character). */
function prefixWithin(text: string, bytes: number): string {
  if (Buffer.byteLength(text) <= bytes) return text;
  return Buffer.from(text, 'utf8').subarray(0, Math.max(0, bytes)).toString('utf8').replace(/\uFFFD+$/, '');
}

class Budget {
  private left: number;
  constructor(
    private readonly limits: OutputLimits,
  ) {
    this.left = limits.outputPerJobBytes;
  }

  /** `texts` of one host (stdout, stderr): cut to the per-host limit and what the job has left. */
  take(texts: readonly string[]): { texts: string[]; cut: boolean } {
    let hostLeft = this.limits.outputPerHostBytes;
    let cut = false;
    const out = texts.map((text) => {
      const size = Buffer.byteLength(text);
      const jobBinds = this.left < hostLeft;
      const allowed = Math.min(hostLeft, this.left);
      const kept = size <= allowed ? text : prefixWithin(text, allowed);
      const keptBytes = kept === text ? size : Buffer.byteLength(kept);
      hostLeft -= keptBytes;
      this.left -= keptBytes;
      if (kept === text) return text;
      cut = true;
      return kept + cutMarker(size - keptBytes, jobBinds ? 'limits.output_per_job' : 'limits.output_per_host');
    });
    return { texts: out, cut };
  }
}

/**
 * The result as it is stored: folded groups first (what every front end shows), then per-host
 * output, then per-step results, all drawn from one per-job budget.
 */
export function boundResult(result: JobResult, limits: OutputLimits): JobResult {
  const budget = new Budget(limits);
  const folded: OutputGroup[] = result.folded.map((g) => ({ ...g, text: budget.take([g.text]).texts[0] ?? '' }));
  const hosts: HostOutcome[] = result.hosts.map((h) => {
    const { texts, cut } = budget.take([h.stdout, h.stderr]);
    return cut ? { ...h, stdout: texts[0] ?? '', stderr: texts[1] ?? '', truncated: true } : h;
  });
  const steps = result.steps.map((s) => ({
    ...s,
    results: s.results.map((r): HostResult => {
      const { texts, cut } = budget.take([r.stdout, r.stderr]);
      return cut ? { ...r, stdout: texts[0] ?? '', stderr: texts[1] ?? '', truncated: true } : r;
    }),
  }));
  return { ...result, folded, hosts, steps };
}
