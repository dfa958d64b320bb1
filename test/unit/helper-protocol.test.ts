// The node helper's framing (src/ssh/helper-protocol.ts): whatever the chunking of the stream,
// the same frames come out, argv and stdin bytes are opaque, and a stream that is not the
// protocol is refused instead of being read as output.
import { describe, expect, it } from 'vitest';
import {
  FrameError,
  FrameReader,
  HelloScanner,
  decodeExit,
  decodeStart,
  encodeExit,
  encodeFrame,
  encodeStart,
  helloLine,
} from '../../src/ssh/helper-protocol.js';

const ARGV = ['sh', '-c', "echo '$(id)' \"`x`\"; exit 3", '', 'line1\nline2', 'é中🚀', '\u0001\u001b[0m'];

describe('node helper protocol', () => {
  it('a start frame carries run id, argv, stdin bytes, deadline and grace unchanged', () => {
    const stdin = Buffer.from([0, 1, 2, 255, 10, 0]);
    const frame = encodeStart(7, { runId: 'job-1.step', argv: ARGV, stdin, deadlineMs: 305_000, killGraceMs: 5_000 });
    const [decoded] = new FrameReader().push(frame);
    expect(decoded).toMatchObject({ type: 'S', id: 7 });
    const spec = decodeStart(decoded!.payload);
    expect(spec).toMatchObject({ runId: 'job-1.step', argv: ARGV, deadlineMs: 305_000, killGraceMs: 5_000 });
    expect(spec.stdin.equals(stdin)).toBe(true);
  });

  it('frames come out the same whatever the chunk boundaries (byte by byte included)', () => {
    const frames = [
      encodeFrame('O', 1, Buffer.from('out\u0000put')),
      encodeFrame('E', 2, Buffer.alloc(70_000, 0x41)),
      encodeExit(1, { code: 3, signal: null, deadline: false }),
      encodeFrame('K', 2, Buffer.from('terminated')),
      encodeExit(2, { code: null, signal: 15, deadline: false }),
    ];
    const stream = Buffer.concat(frames);
    const whole = new FrameReader().push(stream);
    for (const size of [1, 2, 5, 9, 4096]) {
      const reader = new FrameReader();
      const got = [];
      for (let i = 0; i < stream.length; i += size) got.push(...reader.push(stream.subarray(i, i + size)));
      expect(got.map((f) => [f.type, f.id, f.payload.toString('latin1')])).toEqual(whole.map((f) => [f.type, f.id, f.payload.toString('latin1')]));
    }
    expect(whole.map((f) => f.type)).toEqual(['O', 'E', 'X', 'K', 'X']);
    expect(decodeExit(whole[2]!.payload)).toEqual({ code: 3, signal: null, deadline: false });
    expect(decodeExit(whole[4]!.payload)).toEqual({ code: null, signal: 15, deadline: false });
  });

  it('refuses a length no frame can have (the stream is not the protocol)', () => {
    expect(() => new FrameReader().push(Buffer.from('hello world\n'))).toThrow(FrameError);
    expect(() => new FrameReader().push(Buffer.from([0, 0, 0, 2, 0x4f, 0]))).toThrow(FrameError);
  });

  it('skips what a login script prints before the hello and hands over the first frames', () => {
    const scanner = new HelloScanner();
    const first = encodeFrame('R', 1, Buffer.from([0, 0, 1, 0]));
    expect(scanner.push(Buffer.from('Welcome to node01\nlast login: '))).toBeNull();
    const rest = scanner.push(Buffer.concat([Buffer.from(`yesterday\n${helloLine(4242)}`), first]));
    expect(rest?.equals(first)).toBe(true);
    expect(scanner.skipped).toEqual(['Welcome to node01', 'last login: yesterday']);
    expect(() => new HelloScanner().push(Buffer.from('\u001ecastellan-helper 2 1\n'))).toThrow(/protocol 2/);
  });
});
