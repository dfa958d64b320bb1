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
const U32_MAX = 0xffff_ffff;
function u32(value) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(Math.min(Math.max(Math.round(value), 0), U32_MAX));
    return b;
}
export function encodeFrame(type, id, payload = Buffer.alloc(0)) {
    const head = Buffer.alloc(9);
    head.writeUInt32BE(5 + payload.length, 0);
    head.write(type, 4, 1, 'latin1');
    head.writeUInt32BE(id, 5);
    return Buffer.concat([head, payload]);
}
export function encodeStart(id, spec) {
    const strings = [Buffer.from(spec.runId, 'utf8'), spec.stdin, ...spec.argv.map((arg) => Buffer.from(arg, 'utf8'))];
    const parts = [u32(spec.deadlineMs), u32(spec.killGraceMs), u32(strings.length)];
    for (const s of strings)
        parts.push(u32(s.length), s);
    return encodeFrame('S', id, Buffer.concat(parts));
}
export function encodeCancel(id) {
    return encodeFrame('C', id);
}
export function decodeStart(payload) {
    const deadlineMs = payload.readUInt32BE(0);
    const killGraceMs = payload.readUInt32BE(4);
    const n = payload.readUInt32BE(8);
    const strings = [];
    let offset = 12;
    for (let i = 0; i < n; i++) {
        const length = payload.readUInt32BE(offset);
        strings.push(payload.subarray(offset + 4, offset + 4 + length));
        offset += 4 + length;
    }
    const [runId, stdin, ...argv] = strings;
    return { runId: runId?.toString('utf8') ?? '', stdin: stdin ?? Buffer.alloc(0), argv: argv.map((a) => a.toString('utf8')), deadlineMs, killGraceMs };
}
export function encodeExit(id, exit) {
    const payload = Buffer.alloc(6);
    payload.writeUInt8(exit.signal !== null ? 1 : 0, 0);
    payload.writeUInt32BE(exit.signal ?? exit.code ?? 0, 1);
    payload.writeUInt8(exit.deadline ? 1 : 0, 5);
    return encodeFrame('X', id, payload);
}
export function decodeExit(payload) {
    if (payload.length < 6)
        throw new FrameError(`exit frame of ${payload.length} bytes`);
    const kind = payload.readUInt8(0);
    const value = payload.readUInt32BE(1);
    return { code: kind === 0 ? value : null, signal: kind === 1 ? value : null, deadline: payload.readUInt8(5) === 1 };
}
export function helloLine(pid) {
    return `${HELLO_PREFIX}${PROTOCOL_VERSION} ${pid}\n`;
}
export class FrameError extends Error {
    constructor(message) {
        super(message);
        this.name = 'FrameError';
    }
}
/** Splits a byte stream into frames, whatever the chunking. */
export class FrameReader {
    pending = Buffer.alloc(0);
    /** Throws FrameError on a length no frame can have (the stream is not the protocol). */
    push(chunk) {
        this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
        const frames = [];
        while (this.pending.length >= 4) {
            const length = this.pending.readUInt32BE(0);
            if (length < 5 || length > MAX_FRAME_BYTES)
                throw new FrameError(`frame length ${length}`);
            if (this.pending.length < 4 + length)
                break;
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
    pending = Buffer.alloc(0);
    skipped = [];
    push(chunk) {
        this.pending = Buffer.concat([this.pending, chunk]);
        for (;;) {
            const newline = this.pending.indexOf(0x0a);
            if (newline < 0) {
                if (this.pending.length > 64 * 1024)
                    throw new FrameError('no helper hello within 64 KiB of output');
                return null;
            }
            const line = this.pending.toString('utf8', 0, newline);
            this.pending = this.pending.subarray(newline + 1);
            if (line.startsWith(HELLO_PREFIX)) {
                const version = Number(line.slice(HELLO_PREFIX.length).split(' ')[0]);
                if (version !== PROTOCOL_VERSION)
                    throw new FrameError(`helper speaks protocol ${version}, not ${PROTOCOL_VERSION}`);
                return this.pending;
            }
            this.skipped.push(line);
        }
    }
}
