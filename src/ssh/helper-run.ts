// One command on a node helper (helper-session.ts), with the executor's guarantees: the per-host
// timeout and cancellation stop the run on the node (the helper TERMs, waits the kill grace,
// KILLs and says what it verified), output is capped, and a node that stops answering after a
// stop is dropped without waiting for the keepalive (its helper's lifeline and deadline stop
// the command once it runs again). If the helper dies while the connection lives, the run is
// stopped and verified over a control channel, like a wrapper run after a worker crash.
import { constants } from 'node:os';
import type { Logger } from 'pino';
import type { StartSpec } from './helper-protocol.js';
import type { NodeHelper } from './helper-session.js';
import { CappedOutput } from './output.js';
import type { PooledConnection } from './pool.js';
import type { ExecLimits } from './types.js';

/** What the executor needs to make a HostResult of a run (wrapper or helper). */
export interface RunRecord {
  exitCode: number | null;
  exitSignal: string | null;
  outcome: { status: 'timed_out' | 'cancelled'; reason: string } | null;
  report: StopReport | null;
  /** The run started on the node (the wrapper reported its session / the helper its pid). */
  wrapperSeen: boolean;
  stdout: CappedOutput;
  stderr: CappedOutput;
  limits: ExecLimits;
  /** The run ended without an exit status, and why (helper died, connection lost). */
  lost?: string | undefined;
  /** The helper's own deadline stopped it. */
  remoteDeadline?: boolean | undefined;
}

export interface StopReport {
  readonly outcome: 'gone' | 'terminated' | 'killed' | 'survivors' | 'unknown';
  readonly error?: string | undefined;
}

export interface HelperRunOptions {
  readonly host: string;
  readonly connection: PooledConnection;
  readonly helper: NodeHelper;
  readonly spec: StartSpec;
  readonly limits: ExecLimits;
  readonly signal?: AbortSignal | undefined;
  readonly onOutput: (stream: 'stdout' | 'stderr', text: string) => void;
  /** Stop and verify over a control channel (used only when the helper died mid-run). */
  readonly killOverControl: () => Promise<StopReport>;
  readonly logger?: Logger | undefined;
  /** After the helper's stop report, how long its exit may take. */
  readonly closeAfterKillMs: number;
  /** Beyond the kill grace, how long a node may stay silent after a stop before it is dropped. */
  readonly unansweredStopMs: number;
}

/** Signal numbers as OpenSSH names them (TERM, not SIGTERM); the first name wins (ABRT, not IOT). */
const SIGNAL_NAMES = new Map<number, string>();
for (const [name, number] of Object.entries(constants.signals)) if (!SIGNAL_NAMES.has(number)) SIGNAL_NAMES.set(number, name.replace(/^SIG/, ''));

export function parseStopWord(text: string): StopReport {
  const word = text.trim().split(/\s+/)[0];
  if (word === 'gone' || word === 'terminated' || word === 'killed') return { outcome: word };
  if (word === 'survivors') return { outcome: 'survivors', error: `still running: ${text.trim().slice('survivors'.length).trim()}` };
  return { outcome: 'unknown', error: `the node helper answered ${JSON.stringify(text.slice(0, 80))}` };
}

export function runOnHelper(options: HelperRunOptions): Promise<RunRecord> {
  const { helper, limits, connection, signal } = options;
  return new Promise<RunRecord>((resolve) => {
    const record: RunRecord = {
      exitCode: null,
      exitSignal: null,
      outcome: null,
      report: null,
      wrapperSeen: false,
      stdout: new CappedOutput(limits.maxOutputBytes),
      stderr: new CappedOutput(limits.maxOutputBytes),
      limits,
    };
    let exited = false;
    let settled = false;
    let stopAt = 0;
    let abandonTimer: NodeJS.Timeout | undefined;
    let closeTimer: NodeJS.Timeout | undefined;
    let id = 0;

    const settle = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(abandonTimer);
      clearTimeout(closeTimer);
      signal?.removeEventListener('abort', onAbort);
      helper.forget(id);
      resolve(record);
    };
    const stop = (status: 'timed_out' | 'cancelled', reason: string): void => {
      if (record.outcome || settled) return;
      record.outcome = { status, reason };
      stopAt = Date.now();
      helper.cancel(id);
      abandonTimer = setTimeout(abandon, limits.killGraceMs + options.unansweredStopMs);
    };
    const abandon = (): void => {
      if (settled) return;
      if (connection.lastHeardAt > stopAt) {
        // The node answers: the stop is merely slow (a loaded node). Look again later.
        abandonTimer = setTimeout(abandon, options.unansweredStopMs);
        return;
      }
      const why = `${options.host} did not answer for ${Math.round((limits.killGraceMs + options.unansweredStopMs) / 1000)} s after the stop`;
      options.logger?.warn({ host: options.host, runId: options.spec.runId }, `${why}: dropping its connection`);
      record.report = { outcome: 'unknown', error: `${why}; its connection was dropped (the helper's deadline and lifeline stop the command once the node runs again)` };
      settle();
      connection.destroy(why);
    };
    const timer = setTimeout(() => stop('timed_out', `command timeout after ${limits.commandTimeoutMs} ms`), limits.commandTimeoutMs);
    const onAbort = (): void => stop('cancelled', 'cancelled');

    try {
      id = helper.start(options.spec, {
        started: () => {
          record.wrapperSeen = true;
        },
        output: (stream, chunk) => {
          const text = (stream === 'stdout' ? record.stdout : record.stderr).push(chunk);
          if (text !== '') options.onOutput(stream, text);
        },
        exit: (info) => {
          exited = true;
          record.remoteDeadline = info.deadline;
          record.exitCode = info.deadline ? 124 : info.code;
          record.exitSignal = info.signal !== null ? SIGNAL_NAMES.get(info.signal) ?? String(info.signal) : null;
          // After a stop, the helper's report says what was verified; it follows shortly.
          if (!record.outcome || record.report) settle();
        },
        stopped: (word) => {
          record.report = parseStopWord(word);
          if (exited) settle();
          else closeTimer = setTimeout(settle, options.closeAfterKillMs);
        },
        lost: (reason, started) => {
          record.wrapperSeen ||= started;
          if (connection.isClosed) {
            record.lost = `connection lost while the command ran (the helper's lifeline stops it)`;
            settle();
            return;
          }
          record.lost = reason;
          if (!started) {
            settle();
            return;
          }
          // The helper died and its run may live on: stop it the way a crashed worker's run is.
          clearTimeout(abandonTimer);
          void options.killOverControl().then((report) => {
            record.report = report;
            settle();
          });
        },
      });
    } catch (error) {
      record.lost = error instanceof Error ? error.message : String(error);
      settle();
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
  });
}
