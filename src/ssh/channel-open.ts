// Opening a session channel, retried while sshd refuses it for want of a free session.
//
// OpenSSH frees a session only once it has read our CHANNEL_CLOSE and then run its channel
// cleanup, which happens after it has processed everything it read in that turn. A slot
// handed straight to the next waiter sends CLOSE and the next CHANNEL_OPEN back to back; a
// busy node reads both at once, still counts the closed session, and refuses the open once
// MaxSessions is reached ("open failed"; sshd logs "no more sessions"). The channel budget in
// slots.ts cannot see when the node has really let go, so a refusal is waited out here.
//
// Dropbear (2022.83, measured) refuses the exec request itself — CHANNEL_FAILURE, which ssh2
// reports as "Unable to exec" — for a fifth to a third of the channels opened while others on
// the same connection open and close (none when one runs at a time), and closes the channel.
//
// Retrying is safe only because a refusal ran nothing: ssh2 sends the exec or subsystem request
// after the open is confirmed, and an open failure reaches us before that; a server answers an
// exec request with CHANNEL_FAILURE only when it did not start the command (OpenSSH and Dropbear
// both fail the request before or at the fork, never after the command exists). Any other error
// (connection lost, a channel that closes later) is not retried.
import type { Client, ClientChannel } from 'ssh2';

/** ssh2 gives a CHANNEL_OPEN_FAILURE (or a CLOSE in place of the confirmation) a `reason`. */
export function isOpenRefusal(error: unknown): boolean {
  return error instanceof Error && Object.hasOwn(error, 'reason');
}

/** ssh2's error for an exec request the server answered with CHANNEL_FAILURE (nothing started). */
export function isExecRefusal(error: unknown): boolean {
  return error instanceof Error && error.message === 'Unable to exec' && !Object.hasOwn(error, 'reason');
}

export class ChannelOpenCancelled extends Error {
  constructor() {
    super('cancelled while opening a channel');
    this.name = 'ChannelOpenCancelled';
  }
}

export interface OpenRetryOptions {
  /** How long refusals are waited out before the last one is reported. */
  readonly budgetMs: number;
  readonly signal?: AbortSignal | undefined;
  /** False once the connection is gone: no point asking again. */
  readonly alive?: (() => boolean) | undefined;
  /** Called before each retry (for a debug log line). */
  readonly onRefused?: ((error: Error, attempt: number) => void) | undefined;
}

const FIRST_PAUSE_MS = 10;
const LONGEST_PAUSE_MS = 250;

/**
 * `open()` until it does not fail with an open refusal, pausing 10 ms, 20 ms, … (at most
 * 250 ms) between tries, for at most `budgetMs`. The last refusal is reported with how long
 * and how often the node refused, since a node whose MaxSessions is below Castellan's channel
 * budget refuses for as long as our other channels stay open.
 */
export async function openRetryingRefusals<T>(open: () => Promise<T>, options: OpenRetryOptions): Promise<T> {
  const started = performance.now();
  let pause = FIRST_PAUSE_MS;
  for (let attempt = 1; ; attempt++) {
    try {
      return await open();
    } catch (error) {
      const execRefused = isExecRefusal(error);
      if (!isOpenRefusal(error) && !execRefused) throw error;
      const waited = performance.now() - started;
      if (waited + pause > options.budgetMs || options.alive?.() === false) {
        if (attempt === 1) throw error;
        const detail = execRefused
          ? `the node refused to start the command ${attempt} times over ${Math.round(waited)} ms`
          : `refused ${attempt} times over ${Math.round(waited)} ms; is the node's MaxSessions below max_channels_per_host + 2?`;
        throw new Error(`${(error as Error).message} (${detail})`, { cause: error });
      }
      options.onRefused?.(error as Error, attempt);
      await pauseFor(pause, options.signal);
      pause = Math.min(pause * 2, LONGEST_PAUSE_MS);
    }
  }
}

function pauseFor(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new ChannelOpenCancelled());
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new ChannelOpenCancelled());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

type ExitListener = (code: number | null, signalName?: string) => void;
const earlyExits = new WeakMap<ClientChannel, [number | null, string | undefined]>();

/**
 * `client.exec` as a promise (ssh2 throws at once when the connection is no longer writable).
 * ssh2 emits a channel's 'exit' the moment it parses exit-status; for a command that ends at
 * once (`true`) that is in the same read as the open confirmation, before the awaiting caller
 * has attached its listeners a microtask later. The exit is kept here for `onChannelExit`
 * (output is not at risk: the channel's streams hold data until they are read).
 */
export function execChannel(client: Client, command: string): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    client.exec(command, (error, stream) => {
      if (error) return reject(error);
      stream.once('exit', (code: number | null, signalName?: string) => earlyExits.set(stream, [code, signalName]));
      resolve(stream);
    });
  });
}

/** The channel's exit, whether it came before this call (see `execChannel`) or comes later. */
export function onChannelExit(stream: ClientChannel, listener: ExitListener): void {
  const seen = earlyExits.get(stream);
  if (seen) listener(seen[0], seen[1]);
  else stream.once('exit', listener);
}
