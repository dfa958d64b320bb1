// A minimal ssh2 client for lab tests: pins the host key from a known_hosts file (never the
// ssh2 default of accepting any key) and runs one command line.
import { readFileSync } from 'node:fs';
import ssh2 from 'ssh2';

export interface PinnedTarget {
  address: string;
  port: number;
  user: string;
  clientKeyFile: string;
  knownHostsFile: string;
  readyTimeoutMs?: number;
}

export interface ExecOutcome {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** The connection closed before the channel reported an exit status. */
  cutOff: boolean;
}

/** Key blob pinned for `[address]:port` in an OpenSSH known_hosts file. */
export function pinnedKey(knownHostsFile: string, address: string, port: number): Buffer | null {
  const host = `[${address}]:${port}`;
  for (const line of readFileSync(knownHostsFile, 'utf8').split('\n')) {
    const [hosts, , blob] = line.trim().split(/\s+/);
    if (hosts?.split(',').includes(host) && blob) return Buffer.from(blob, 'base64');
  }
  return null;
}

export function connect(target: PinnedTarget): Promise<ssh2.Client> {
  const pinned = pinnedKey(target.knownHostsFile, target.address, target.port);
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    client.once('ready', () => resolve(client));
    // ssh2 may report several errors for one failure (timeout, then connection lost): keep
    // listening so none of them goes unhandled; only the first one settles the promise.
    client.on('error', reject);
    client.connect({
      host: target.address,
      port: target.port,
      username: target.user,
      privateKey: readFileSync(target.clientKeyFile),
      readyTimeout: target.readyTimeoutMs ?? 10_000,
      hostVerifier: (key: Buffer) => pinned !== null && key.equals(pinned),
    });
  });
}

export function exec(client: ssh2.Client, command: string, stdin?: string): Promise<ExecOutcome> {
  return new Promise((resolve, reject) => {
    client.exec(command, (error, channel) => {
      if (error) return reject(error);
      let stdout = '';
      let stderr = '';
      let code: number | null = null;
      let signal: string | null = null;
      let exited = false;
      channel.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      channel.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      channel.on('exit', (exitCode: number | null, exitSignal?: string) => {
        exited = true;
        code = exitCode;
        signal = exitSignal ?? null;
      });
      channel.on('close', () => resolve({ code, signal, stdout, stderr, cutOff: !exited }));
      if (stdin !== undefined) channel.end(stdin);
    });
  });
}

/** Connect, run one command, disconnect. */
export async function runOnce(target: PinnedTarget, command: string): Promise<ExecOutcome> {
  const client = await connect(target);
  client.on('error', () => undefined);
  try {
    return await exec(client, command);
  } finally {
    client.end();
  }
}
