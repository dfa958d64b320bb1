// `CASTELLAN_BENCH_PHASES=1` (bench/castellan-client.ts, pipeline shape): where a warm fan-out's
// wall time goes, from the job's own progress stream. Its entry ids are Redis's clock in ms,
// on the same machine as the client's: submit → queued → running → first and last host
// finished → final event → the waiter returns. Medians over the warm fan-outs, to stderr.
import type { Runtime } from '../src/runtime.js';

const MARKS = ['queued', 'running', 'first host done', 'last host done', 'final event', 'waiter returned'] as const;

export function jobPhases(runtime: Runtime): { add(jobId: string, startedAt: number, returnedAt: number): Promise<void>; reset(): Promise<void>; print(): Promise<void> } {
  let rows: number[][] = [];
  return {
    async add(jobId, startedAt, returnedAt) {
      const events = await runtime.ctx.events.read(jobId, '0', 100_000);
      const at = (test: (e: (typeof events)[number]['event']) => boolean, last = false): number => {
        const hits = events.filter((e) => test(e.event));
        return (last ? hits.at(-1) : hits[0])?.at ?? Number.NaN;
      };
      const marks = [
        at((e) => e.type === 'state' && e.state === 'queued'),
        at((e) => e.type === 'state' && e.state === 'running'),
        at((e) => e.type === 'host_finished'),
        at((e) => e.type === 'host_finished', true),
        at((e) => e.type === 'state' && ['succeeded', 'failed'].includes(e.state)),
        returnedAt,
      ];
      rows.push(marks.map((m) => m - startedAt));
    },
    async reset() {
      rows = [];
      await runtime.ctx.redis.config('RESETSTAT');
      await runtime.ctx.redis.config('SET', 'slowlog-log-slower-than', '300');
      await runtime.ctx.redis.config('SET', 'slowlog-max-len', '10000');
      await runtime.ctx.redis.slowlog('RESET');
    },
    async print() {
      // Redis's own time per fan-out, by command (scripts by EVALSHA): what the pipeline waits for.
      const stats = (await runtime.ctx.redis.info('commandstats')).split('\n').flatMap((l) => {
        const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(l);
        return m ? [{ cmd: m[1]!, calls: Number(m[2]), usec: Number(m[3]) }] : [];
      });
      const n = Math.max(rows.length, 1);
      const total = stats.reduce((sum, x) => sum + x.usec, 0);
      const top = stats.sort((a, b) => b.usec - a.usec).slice(0, 8).map((x) => `${x.cmd} ${(x.usec / n / 1000).toFixed(1)} ms/${(x.calls / n).toFixed(0)}`);
      // Commands over 0.3 ms, by their first argument (a script's sha) and what they touched.
      const slow = (await runtime.ctx.redis.slowlog('GET', 10000)) as Array<[number, number, number, string[]]>;
      const bySha = new Map<string, { n: number; us: number; key: string }>();
      for (const [, , us, args] of slow) {
        const name = `${args[0]} ${args[0]?.toLowerCase() === 'evalsha' ? (args[3] ?? '') : (args[1] ?? '')}`.slice(0, 80);
        const e = bySha.get(name) ?? { n: 0, us: 0, key: name };
        e.n++;
        e.us += us;
        bySha.set(name, e);
      }
      const slowTop = [...bySha.values()].sort((a, b) => b.us - a.us).slice(0, 10).map((e) => `${e.key} ${(e.us / n / 1000).toFixed(2)} ms/${(e.n / n).toFixed(1)}`);
      process.stderr.write(`phases slow: ${slowTop.join(' | ')}\n`);
      process.stderr.write(`phases redis: ${(total / n / 1000).toFixed(1)} ms a fan-out: ${top.join(', ')}\n`);
      const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
      const line = MARKS.map((name, i) => `${name} +${median(rows.map((r) => r[i]!))} ms`).join(', ');
      process.stderr.write(`phases (median of ${rows.length}, from submit): ${line}\n`);
    },
  };
}
