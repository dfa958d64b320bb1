// The node helper's wire format (node-helper.ts runs the Perl side; the fake farm speaks it in
// JS). One helper per pooled connection multiplexes commands over its exec channel's stdin and
// stdout. After a hello line, both directions carry frames:
//
//   u32 length (of what follows) | u8 type | u32 id | payload
//
// Client → helper: 'S' start {u32 deadline ms, u32 kill grace ms, u32 n, n × (u32 len, bytes):
// run id, stdin bytes, argv…}; 'C' cancel (no payload).
// Helper → client: 'R' started {u32 pid = session id}; 'O' / 'E' stdout / stderr bytes;
// 'X' exit {u8 kind (0 code, 1 signal), u32 value, u8 remote deadline reached}; 'K' stopped
// {ASCII: gone | terminated | killed | survivors PID…}; 'F' could not start {message}.
// Lengths make every byte of argv, stdin and output opaque: nothing is parsed or quoted.

/** The helper's first stdout line; anything a login script prints before it is skipped. */
export const HELLO_PREFIX = '\u001ecastellan-helper ';
export const PROTOCOL_VERSION = 1;
/** A frame larger than this is a broken stream (the helper refuses the same size). */
export const MAX_FRAME_BYTES = 256 * 1024 * 1024;

export type ClientFrameType = 'S' | 'C';
export type HelperFrameType = 'R' | 'O' | 'E' | 'X' | 'K' | 'F';

export interface Frame<T extends string = string> {
  readonly type: T;
  readonly id: number;
  readonly payload: Buffer;
}

export interface StartSpec {
  readonly runId: string;
  readonly argv: readonly string[];
  readonly stdin: Buffer;
  readonly deadlineMs: number;
  readonly killGraceMs: number;
}

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: number | null;
  /** The helper's own deadline stopped the command (reported as exit 124, like timeout(1)). */
  readonly deadline: boolean;
}

const U32_MAX = 0xffff_ffff;

function clampU32(value: number): number {
  return Math.min(Math.max(Math.round(value), 0), U32_MAX);
}

export function encodeFrame(type: string, id: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUInt32BE(5 + payload.length, 0);
  head.write(type, 4, 1, 'latin1');
  head.writeUInt32BE(id, 5);
  return Buffer.concat([head, payload]);
}

export function encodeStart(id: number, spec: StartSpec): Buffer {
  // One buffer written in place: a fan-out encodes one start per host, and the parts-then-concat
  // form allocated ten small buffers each (measurable garbage at N = 1000).
  const args = spec.argv.map((arg) => Buffer.from(arg, 'utf8'));
  const runId = Buffer.from(spec.runId, 'utf8');
  let payloadLength = 12 + 4 + runId.length + 4 + spec.stdin.length;
  for (const a of args) payloadLength += 4 + a.length;
  const frame = Buffer.allocUnsafe(9 + payloadLength);
  frame.writeUInt32BE(5 + payloadLength, 0);
  frame.write('S', 4, 1, 'latin1');
  frame.writeUInt32BE(id, 5);
  let at = frame.writeUInt32BE(clampU32(spec.deadlineMs), 9);
  at = frame.writeUInt32BE(clampU32(spec.killGraceMs), at);
  at = frame.writeUInt32BE(2 + args.length, at);
  for (const s of [runId, spec.stdin, ...args]) {
    at = frame.writeUInt32BE(s.length, at);
    at += s.copy(frame, at);
  }
  return frame;
}

export function encodeCancel(id: number): Buffer {
  return encodeFrame('C', id);
}

export function decodeStart(payload: Buffer): StartSpec {
  const deadlineMs = payload.readUInt32BE(0);
  const killGraceMs = payload.readUInt32BE(4);
  const n = payload.readUInt32BE(8);
  const strings: Buffer[] = [];
  let offset = 12;
  for (let i = 0; i < n; i++) {
    const length = payload.readUInt32BE(offset);
    strings.push(payload.subarray(offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  const [runId, stdin, ...argv] = strings;
  return { runId: runId?.toString('utf8') ?? '', stdin: stdin ?? Buffer.alloc(0), argv: argv.map((a) => a.toString('utf8')), deadlineMs, killGraceMs };
}

export function encodeExit(id: number, exit: ExitInfo): Buffer {
  const payload = Buffer.alloc(6);
  payload.writeUInt8(exit.signal !== null ? 1 : 0, 0);
  payload.writeUInt32BE(exit.signal ?? exit.code ?? 0, 1);
  payload.writeUInt8(exit.deadline ? 1 : 0, 5);
  return encodeFrame('X', id, payload);
}

export function decodeExit(payload: Buffer): ExitInfo {
  if (payload.length < 6) throw new FrameError(`exit frame of ${payload.length} bytes`);
  const kind = payload.readUInt8(0);
  const value = payload.readUInt32BE(1);
  return { code: kind === 0 ? value : null, signal: kind === 1 ? value : null, deadline: payload.readUInt8(5) === 1 };
}

export function helloLine(pid: number): string {
  return `${HELLO_PREFIX}${PROTOCOL_VERSION} ${pid}\n`;
}

export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

/** Splits a byte stream into frames, whatever the chunking. */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  /** Throws FrameError on a length no frame can have (the stream is not the protocol). */
  push(chunk: Buffer): Frame[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const frames: Frame[] = [];
    while (this.pending.length >= 4) {
      const length = this.pending.readUInt32BE(0);
      if (length < 5 || length > MAX_FRAME_BYTES) throw new FrameError(`frame length ${length}`);
      if (this.pending.length < 4 + length) break;
      frames.push({
        type: this.pending.toString('latin1', 4, 5),
        id: this.pending.readUInt32BE(5),
        payload: this.pending.subarray(9, 4 + length),
      });
      this.pending = this.pending.subarray(4 + length);
    }
    return frames;
  }
}

/**
 * Finds the hello line at the start of the helper's stdout. Returns the bytes after it (the
 * first frames) once seen, null while still waiting; lines before it are returned in `skipped`.
 */
export class HelloScanner {
  private pending: Buffer = Buffer.alloc(0);
  readonly skipped: string[] = [];

  push(chunk: Buffer): Buffer | null {
    this.pending = Buffer.concat([this.pending, chunk]);
    for (;;) {
      const newline = this.pending.indexOf(0x0a);
      if (newline < 0) {
        if (this.pending.length > 64 * 1024) throw new FrameError('no helper hello within 64 KiB of output');
        return null;
      }
      const line = this.pending.toString('utf8', 0, newline);
      this.pending = this.pending.subarray(newline + 1);
      if (line.startsWith(HELLO_PREFIX)) {
        const version = Number(line.slice(HELLO_PREFIX.length).split(' ')[0]);
        if (version !== PROTOCOL_VERSION) throw new FrameError(`helper speaks protocol ${version}, not ${PROTOCOL_VERSION}`);
        return this.pending;
      }
      this.skipped.push(line);
    }
  }
}
