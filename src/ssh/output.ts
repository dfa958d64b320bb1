// Per-host, per-stream output capture with a byte cap. A chatty command on 100 hosts must not
// fill the server's memory or a Slack thread; what is cut is flagged, never silently lost.
import { StringDecoder } from 'node:string_decoder';

export class CappedOutput {
  private readonly decoder = new StringDecoder('utf8');
  private kept = 0;
  private text = '';
  truncated = false;

  constructor(private readonly maxBytes: number) {}

  /** Keep what fits; returns the decoded text kept from this chunk ('' when nothing). */
  push(chunk: Buffer): string {
    const room = this.maxBytes - this.kept;
    if (room <= 0) {
      if (chunk.length > 0) this.truncated = true;
      return '';
    }
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (part.length < chunk.length) this.truncated = true;
    this.kept += part.length;
    const decoded = this.decoder.write(part);
    this.text += decoded;
    return decoded;
  }

  /** Everything kept (a character cut by the cap becomes U+FFFD). */
  finish(): string {
    this.text += this.decoder.end();
    return this.text;
  }
}
