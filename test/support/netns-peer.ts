// A peer that is not on loopback: a network namespace joined to this host by a veth pair
// (host side 10.253.N.1, the namespace 10.253.N.2). What it sends to a server listening on the
// host arrives from 10.253.N.2, a real non-loopback peer address. Needs root and `ip netns`
// (the WireGuard mesh tests need the same).
import { execFile } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);
const IP = 'ip';

export interface NetnsPeer {
  /** The host's address on the link (a server listening on 0.0.0.0 answers there). */
  readonly hostAddress: string;
  /** The peer's own address: what the server sees as the remote address. */
  readonly peerAddress: string;
  /** GET `url` from inside the namespace with curl; the status and body. */
  get(url: string, headers?: Record<string, string>): Promise<{ status: number; body: string }>;
  close(): Promise<void>;
}

export async function startNetnsPeer(): Promise<NetnsPeer> {
  const id = randomBytes(3).toString('hex');
  const netns = `castellan-peer-${id}`;
  const veth = `cp${id}`;
  const subnet = randomInt(1, 250);
  const hostAddress = `10.253.${subnet}.1`;
  const peerAddress = `10.253.${subnet}.2`;
  const close = async (): Promise<void> => {
    await run(IP, ['netns', 'del', netns]).catch(() => undefined);
    await run(IP, ['link', 'del', veth]).catch(() => undefined);
  };
  try {
    await run(IP, ['netns', 'add', netns]);
    await run(IP, ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
    await run(IP, ['addr', 'add', `${hostAddress}/30`, 'dev', veth]);
    await run(IP, ['link', 'set', veth, 'up']);
    await run(IP, ['-n', netns, 'addr', 'add', `${peerAddress}/30`, 'dev', 'eth0']);
    await run(IP, ['-n', netns, 'link', 'set', 'eth0', 'up']);
    await run(IP, ['-n', netns, 'link', 'set', 'lo', 'up']);
  } catch (error) {
    await close();
    throw new Error(`cannot make a non-loopback peer (network namespace + veth; needs root and ip netns): ${error instanceof Error ? error.message.trim() : String(error)}`, { cause: error });
  }
  return {
    hostAddress,
    peerAddress,
    async get(url, headers = {}) {
      const args = ['netns', 'exec', netns, 'curl', '-sS', '--max-time', '30', '-o', '-', '-w', '\n%{http_code}'];
      for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
      const { stdout } = await run(IP, [...args, url]);
      const cut = stdout.lastIndexOf('\n');
      return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) };
    },
    close,
  };
}
