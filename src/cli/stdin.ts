// Reading scripts for pipe / heredoc / batch.
import { readFile } from 'node:fs/promises';
import { CastellanError, errorMessage } from '../../config/errors.js';

const MAX_SCRIPT_BYTES = 1024 * 1024;

export async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('» reading commands from stdin (end with Ctrl-D)\n');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buf.length;
    if (size > MAX_SCRIPT_BYTES) throw new CastellanError('invalid_input', `stdin is over ${MAX_SCRIPT_BYTES} bytes`);
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export async function readTextFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new CastellanError('invalid_input', `cannot read ${path}: ${errorMessage(err)}`);
  }
}

/** Command lines of a script: blank lines and `#` comments dropped, as the bash CLI did. */
export function scriptLines(text: string): string[] {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length === 0) throw new CastellanError('invalid_input', 'no commands: every line was blank or a # comment');
  return lines;
}
