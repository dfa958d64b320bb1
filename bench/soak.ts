// The fault suite's chaos soak (test/integration/fault-soak.test.ts) for longer than CI runs it:
// two `castellan serve` and three `castellan worker` processes, real redis-server (AOF) and
// sshd nodes, workers and Redis SIGKILLed at random. Prints the soak's report (submitted,
// finished, interrupted, lost, run twice) and fails if anything was lost or ran twice.
//
//   npm run bench:soak -- --minutes 30 [--seed N] [--interval-ms 1500]
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const { values } = parseArgs({ options: { minutes: { type: 'string', default: '15' }, seed: { type: 'string' }, 'interval-ms': { type: 'string' } } });
const minutes = Number(values.minutes);
if (!Number.isFinite(minutes) || minutes <= 0) throw new Error(`--minutes: a positive number, not '${values.minutes}'`);

const env: NodeJS.ProcessEnv = { ...process.env, CASTELLAN_SOAK_SECONDS: String(Math.round(minutes * 60)) };
if (values.seed !== undefined) env.CASTELLAN_SOAK_SEED = values.seed;
if (values['interval-ms'] !== undefined) env.CASTELLAN_SOAK_INTERVAL_MS = values['interval-ms'];
const child = spawn(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', 'test/integration/fault-soak.test.ts'], { cwd: REPO, env, stdio: 'inherit' });
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
