// One node helper (node-helper.ts) on a pooled connection: starts it, demultiplexes its frames to
// the runs that own them, and reports its death to every run still in flight. The executor
// decides what a run's result is (helper-run.ts); this module only moves frames.
import type { Client, ClientChannel } from 'ssh2';
import { execChannel, onChannelExit } from './channel-open.js';
import { FrameError, FrameReader, HelloScanner, decodeExit, encodeCancel, encodeStart, type ExitInfo, type Frame, type StartSpec } from './helper-protocol.js';
import { helperCommand } from './node-helper.js';

export interface HelperRunEvents {
  started(pid: number): void;
  output(stream: 'stdout' | 'stderr', chunk: Buffer): void;
  exit(info: ExitInfo): void;
  /** The helper's report after a stop: gone | terminated | killed | survivors PID… */
  stopped(word: string): void;
  /** The command could not start ('F'), or the helper died with the run in flight. */
  lost(reason: string, started: boolean): void;
}

/** Why a node cannot have a helper (the connection then uses the wrapper). */
export class HelperUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HelperUnavailable';
  }
}

/** How long the helper may write (stderr) before its hello: a missing perl says so there. */
const STDERR_KEPT = 2048;

export class NodeHelper {
  private nextId = 1;
  private readonly runs = new Map<number, { events: HelperRunEvents; started: boolean }>();
  private readonly reader = new FrameReader();
  /** Set once the helper is gone (channel closed, protocol broken): why. */
  brokenReason: string | null = null;
  private readonly brokenListeners: ((reason: string) => void)[] = [];

  private constructor(private readonly channel: ClientChannel) {}

  /**
   * Start the helper on `client` and wait for its hello. Throws HelperUnavailable when it does
   * not come (no perl: exit 127; a node that closes the channel; the timeout).
   */
  static start(client: Client, timeoutMs: number): Promise<NodeHelper> {
    return new Promise<NodeHelper>((resolve, reject) => {
      let settled = false;
      let stderr = '';
      let exit = '';
      const scanner = new HelloScanner();
      const fail = (why: string, channel?: ClientChannel): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        channel?.close();
        const said = stderr.trim().replaceAll(/\s+/g, ' ').slice(0, 300);
        reject(new HelperUnavailable(`${why}${exit}${said ? `: ${said}` : ''}`));
      };
      let opened: ClientChannel | undefined;
      const timer = setTimeout(() => fail(`no helper hello within ${timeoutMs} ms`, opened), timeoutMs);
      execChannel(client, helperCommand()).then((channel) => {
        opened = channel;
        if (settled) {
          channel.close();
          return;
        }
        const helper = new NodeHelper(channel);
        const onData = (chunk: Buffer): void => {
          if (settled) {
            helper.onData(chunk);
            return;
          }
          let rest: Buffer | null;
          try {
            rest = scanner.push(chunk);
          } catch (error) {
            fail(error instanceof Error ? error.message : String(error), channel);
            return;
          }
          if (rest === null) return;
          settled = true;
          clearTimeout(timer);
          resolve(helper);
          if (rest.length > 0) helper.onData(rest);
        };
        channel.on('data', onData);
        channel.stderr.on('data', (chunk: Buffer) => {
          if (!settled && stderr.length < STDERR_KEPT) stderr += chunk.toString('utf8');
        });
        onChannelExit(channel, (code, signalName) => {
          exit = code !== null ? ` (exit ${code}${code === 127 ? ': is perl installed?' : ''})` : signalName ? ` (signal ${signalName})` : '';
        });
        channel.on('error', () => undefined);
        channel.once('close', () => {
          fail('the helper channel closed before its hello');
          helper.broke(`its channel closed${exit}`);
        });
      }, (error: unknown) => fail(`could not open the helper channel: ${error instanceof Error ? error.message : String(error)}`));
    });
  }

  get broken(): boolean {
    return this.brokenReason !== null;
  }

  get inFlight(): number {
    return this.runs.size;
  }

  /** Called once when the helper dies (after every in-flight run heard `lost`). */
  onBroken(listener: (reason: string) => void): void {
    if (this.brokenReason !== null) listener(this.brokenReason);
    else this.brokenListeners.push(listener);
  }

  /** Start a command; returns its id (for cancel / forget). */
  start(spec: StartSpec, events: HelperRunEvents): number {
    if (this.brokenReason !== null) throw new HelperUnavailable(`the node helper is gone: ${this.brokenReason}`);
    const id = this.nextId++;
    this.runs.set(id, { events, started: false });
    this.channel.write(encodeStart(id, spec));
    return id;
  }

  /** Ask the helper to stop run `id` (it answers `stopped`, `gone` if the run had ended). */
  cancel(id: number): void {
    if (this.brokenReason === null) this.channel.write(encodeCancel(id));
  }

  /** The run's result is settled: later frames for it are dropped. */
  forget(id: number): void {
    this.runs.delete(id);
  }

  /** Close the helper's channel: its lifeline stops whatever still runs. */
  close(): void {
    this.channel.close();
  }

  private onData(chunk: Buffer): void {
    if (this.brokenReason !== null) return;
    let frames: Frame[];
    try {
      frames = this.reader.push(chunk);
    } catch (error) {
      this.broke(`protocol broken: ${error instanceof Error ? error.message : String(error)}`);
      this.channel.close();
      return;
    }
    for (const frame of frames) {
      const run = this.runs.get(frame.id);
      if (!run) continue;
      try {
        this.dispatch(frame, run);
      } catch (error) {
        if (!(error instanceof FrameError)) throw error;
        this.broke(`protocol broken: ${error.message}`);
        this.channel.close();
        return;
      }
    }
  }

  private dispatch(frame: Frame, run: { events: HelperRunEvents; started: boolean }): void {
    switch (frame.type) {
      case 'R':
        run.started = true;
        run.events.started(frame.payload.length >= 4 ? frame.payload.readUInt32BE(0) : 0);
        return;
      case 'O':
        run.events.output('stdout', frame.payload);
        return;
      case 'E':
        run.events.output('stderr', frame.payload);
        return;
      case 'X':
        run.events.exit(decodeExit(frame.payload));
        return;
      case 'K':
        run.events.stopped(frame.payload.toString('latin1'));
        return;
      case 'F':
        this.runs.delete(frame.id);
        run.events.lost(`the node helper could not start the command: ${frame.payload.toString('utf8')}`, false);
        return;
      default:
        throw new FrameError(`unknown frame type ${JSON.stringify(frame.type)}`);
    }
  }

  private broke(reason: string): void {
    if (this.brokenReason !== null) return;
    this.brokenReason = reason;
    const runs = [...this.runs.values()];
    this.runs.clear();
    for (const run of runs) run.events.lost(`the node helper stopped (${reason})`, run.started);
    for (const listener of this.brokenListeners.splice(0)) listener(reason);
  }
}
