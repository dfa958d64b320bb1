// The fake node's side of the node helper (src/ssh/node-helper.ts, protocol in
// src/ssh/helper-protocol.ts): when the executor starts the helper on a fake node, the farm
// answers its frames in JS, so benchmarks at N = 1000 measure what helper mode costs the
// client. Commands are answered by fake-shell.ts as in the wrapper; a cancel or the remote
// deadline ends a sleep (exit by TERM / 124), EOF on the channel (the lifeline) ends them all.
import type { ServerChannel } from 'ssh2';
import { FrameReader, decodeStart, encodeExit, encodeFrame, helloLine } from '../ssh/helper-protocol.js';
import { quoteArgv } from '../ssh/quote.js';
import { answerStep, parseCommandLine, withHold, type NodeIdentity } from './fake-shell.js';

export interface FakeHelperFault {
  readonly neverAnswerExec?: boolean | undefined;
  readonly exitCode?: number | undefined;
  readonly closeMidOutput?: boolean | undefined;
  readonly holdMs?: number | undefined;
}

export interface FakeHelperHost {
  readonly who: NodeIdentity;
  fault(): FakeHelperFault;
  /** A command started (for the farm's exec count and log). */
  onStart(runId: string, argv: readonly string[]): void;
  /** A command that onStart announced ended (not told for a neverAnswerExec run). */
  onEnd?(): void;
  /** Drop the TCP connection (closeMidOutput). */
  cut(): void;
  nextSession(): number;
}

const SIGTERM = 15;

const pause = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted || ms <= 0) return resolve();
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });

export function serveHelper(channel: ServerChannel, host: FakeHelperHost): void {
  const reader = new FrameReader();
  const runs = new Map<number, AbortController>();
  let closed = false;
  const send = (frame: Buffer): void => {
    if (!closed) channel.write(frame);
  };
  channel.write(helloLine(host.nextSession()));

  const run = async (id: number, payload: Buffer): Promise<void> => {
    const spec = decodeStart(payload);
    host.onStart(spec.runId, spec.argv);
    const fault = host.fault();
    const cancel = new AbortController();
    runs.set(id, cancel);
    if (fault.neverAnswerExec) return; // started, silent, never ends (a hung command)
    try {
      await respond(id, spec, fault, cancel.signal);
    } finally {
      host.onEnd?.();
    }
  };
  const respond = async (id: number, spec: ReturnType<typeof decodeStart>, fault: FakeHelperFault, cancelled: AbortSignal): Promise<void> => {
    send(encodeFrame('R', id, Buffer.from([0, 0, 0, host.nextSession() & 0xff])));
    const deadline = spec.deadlineMs > 0 ? Date.now() + spec.deadlineMs : Infinity;
    const parsed = parseCommandLine(quoteArgv(spec.argv));
    if (parsed.unsupported) {
      send(encodeFrame('E', id, Buffer.from(`fake node: unsupported ${parsed.unsupported}\n`)));
      return end(id, { code: 2, signal: null, deadline: false });
    }
    let status = 0;
    for (const step of withHold(parsed.steps, fault.holdMs)) {
      if (step.connector === '&&' && status !== 0) continue;
      if (step.connector === '||' && status === 0) continue;
      const answer = answerStep(step.argv, host.who);
      if (answer.sleepMs > 0) {
        const until = Math.min(Date.now() + answer.sleepMs, deadline);
        await pause(until - Date.now(), cancelled);
        if (cancelled.aborted) return end(id, { code: null, signal: SIGTERM, deadline: false });
        if (until === deadline) return end(id, { code: 124, signal: null, deadline: true });
      }
      const stdout = answer.readsStdin ? spec.stdin.toString() : answer.stdout;
      if (fault.closeMidOutput) {
        send(encodeFrame('O', id, Buffer.from(stdout.slice(0, Math.ceil(stdout.length / 2)) || 'partial')));
        host.cut();
        return;
      }
      if (stdout) send(encodeFrame('O', id, Buffer.from(stdout)));
      if (answer.stderr) send(encodeFrame('E', id, Buffer.from(answer.stderr)));
      status = answer.exitCode;
    }
    end(id, { code: fault.exitCode ?? status, signal: null, deadline: false });
  };
  const end = (id: number, exit: { code: number | null; signal: number | null; deadline: boolean }): void => {
    if (!runs.delete(id)) return;
    send(encodeExit(id, exit));
  };

  channel.on('data', (chunk: Buffer) => {
    let frames;
    try {
      frames = reader.push(chunk);
    } catch {
      channel.close();
      return;
    }
    for (const frame of frames) {
      if (frame.type === 'S') {
        void run(frame.id, frame.payload).catch(() => channel.close());
      } else if (frame.type === 'C') {
        const running = runs.get(frame.id);
        send(encodeFrame('K', frame.id, Buffer.from(running ? 'terminated' : 'gone')));
        running?.abort();
        // A run that never answers (the fault) is stopped all the same.
        if (running && host.fault().neverAnswerExec) end(frame.id, { code: null, signal: SIGTERM, deadline: false });
      }
    }
  });
  // The lifeline: EOF ends every run; the helper then exits.
  channel.once('end', () => {
    for (const controller of runs.values()) controller.abort();
    runs.clear();
    channel.exit(0);
    channel.end();
    closed = true;
  });
  channel.on('close', () => {
    closed = true;
    for (const controller of runs.values()) controller.abort();
  });
}
