// Structured logs (pino). Every line passes through the Redactor before it is written, so a
// secret value that slipped into a message or an error is still scrubbed; field paths that
// always hold secrets are censored by pino itself. CR/LF inside values are escaped by JSON
// serialization, which keeps one event per line (log injection, CWE-117).
import { Writable } from 'node:stream';
import { pino, type Logger, type Level } from 'pino';
import type { Redactor } from '../queues/redact.js';

export type { Logger };

export interface LoggerOptions {
  readonly level?: Level | 'silent';
  readonly redactor: Redactor;
  /** Where lines go (default: stderr, so CLI stdout stays clean for results). */
  readonly destination?: NodeJS.WritableStream;
  readonly name?: string;
}

const SECRET_PATHS = [
  'authorization',
  'token',
  'password',
  'secret',
  'clientSecret',
  'client_secret',
  '*.authorization',
  '*.token',
  '*.password',
  '*.secret',
  '*.clientSecret',
  '*.client_secret',
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'headers.cookie',
];

export function createLogger(options: LoggerOptions): Logger {
  const target = options.destination ?? process.stderr;
  const scrubbing = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      const line = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
      target.write(options.redactor.scrub(line));
      callback();
    },
  });
  return pino(
    {
      level: options.level ?? 'info',
      name: options.name ?? 'castellan',
      redact: { paths: SECRET_PATHS, censor: '[REDACTED]' },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    scrubbing,
  );
}
