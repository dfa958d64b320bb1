// How long a Sentinel failover keeps work away: the fault suite's forced failover during
// submissions (test/integration/redis-sentinel.test.ts — a primary, a replica, three sentinels,
// a separate worker process, real sshd nodes), run `--runs` times, with the timing line each
// run prints: how long the sentinels took to name the new primary, how long submissions were
// refused ("unavailable"), and how long after the failover a job approved after the switch
// started on the worker (BullMQ's fetch retry after a failed Redis command, `runRetryDelay`,
// is part of this). The test itself still asserts that nothing was lost or ran twice.
// `--replicas 2` runs test/integration/redis-sentinel-replicas.test.ts instead: two replicas,
// the primary SIGKILLed for good during submissions (times counted from the kill).
//
//   npm run bench:failover -- --runs 3 [--replicas 2]
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { spread, type Spread } from './stats.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, replicas: { type: 'string', default: '1' } } });
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs <= 0) throw new Error(`--runs: a positive whole number, not '${values.runs}'`);
const SCENARIOS: Record<string, { args: string[]; asked: string }> = {
  '1': { args: ['test/integration/redis-sentinel.test.ts', '-t', 'a failover forced during submissions'], asked: 'FAILOVER asked' },
  '2': { args: ['test/integration/redis-sentinel-replicas.test.ts'], asked: 'primary killed' },
};
const chosen = SCENARIOS[values.replicas];
if (chosen === undefined) throw new Error(`--replicas: 1 (a forced failover) or 2 (the primary killed), not '${values.replicas}'`);
const scenario = chosen;

interface Timing {
  readonly switchMs: number;
  readonly refused: number;
  readonly refusedForMs: number;
  readonly firstStartAfterFailoverMs: number | null;
  readonly approvedToStartAfterSwitchMs: number | null;
}

function runOnce(): Promise<{ timing: Timing | undefined; passed: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', ...scenario.args], { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.on('exit', (code) => {
      const line = /failover timing: (\{.*\})/.exec(out)?.[1];
      resolve({ timing: line === undefined ? undefined : (JSON.parse(line) as Timing), passed: code === 0 });
    });
  });
}

const shown = (s: Spread): string => (s.n === 0 ? 'n/a' : `${(s.median / 1000).toFixed(1)} s (${(s.min / 1000).toFixed(1)}–${(s.max / 1000).toFixed(1)})`);

const timings: Timing[] = [];
let failed = 0;
for (let i = 0; i < runs; i++) {
  const { timing, passed } = await runOnce();
  if (!passed) failed += 1;
  if (timing) timings.push(timing);
  process.stdout.write(`run ${i + 1}/${runs}: ${passed ? 'passed' : 'FAILED'} ${timing ? JSON.stringify(timing) : '(no timing line)'}\n`);
}
const pick = (f: (t: Timing) => number | null): Spread => spread(timings.map(f).filter((v): v is number => v !== null));
process.stdout.write(
  [
    '',
    `| Sentinel failover, ${values.replicas} replica(s) (median, min–max of ${timings.length}) | Time |`,
    '|---|---|',
    `| ${scenario.asked} → every sentinel names the new primary | ${shown(pick((t) => t.switchMs))} |`,
    `| submissions refused ("unavailable", the caller told at once) for | ${shown(pick((t) => t.refusedForMs))} |`,
    `| ${scenario.asked} → first job approved after the switch starts on the worker | ${shown(pick((t) => t.firstStartAfterFailoverMs))} |`,
    `| that job: approved → started | ${shown(pick((t) => t.approvedToStartAfterSwitchMs))} |`,
    '',
  ].join('\n'),
);
process.exit(failed > 0 ? 1 : 0);
