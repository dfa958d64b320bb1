// Loopback addresses and ports for the labs. Every 127.x.y.z address is local on Linux, so a
// lab can give each simulated node its own address while all nodes share one port; that keeps
// inventories realistic (one host, one address) and lets one sshd-per-node or one fake-node
// listener-per-address coexist. Ports are picked by actually binding, never by guessing, so
// two labs started by two parallel test files do not collide.
import net from 'node:net';

/** Bind `address` on port 0 (or `port`) and report the port the kernel gave, then release it. */
export async function findFreePort(address = '127.0.0.1', port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: address, port, exclusive: true }, () => {
      const bound = server.address();
      if (bound === null || typeof bound === 'string') {
        server.close();
        reject(new Error(`could not read the bound port on ${address}`));
        return;
      }
      server.close(() => resolve(bound.port));
    });
  });
}

/** True when `port` can be bound on every address right now. */
export async function isPortFreeOn(addresses: readonly string[], port: number): Promise<boolean> {
  for (const address of addresses) {
    try {
      await findFreePort(address, port);
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * One port that is free on every address: the kernel proposes one on the first address, and
 * we check the rest. A few attempts cover the rare case where another lab holds the proposal
 * on one of our addresses.
 */
export async function findPortFreeOnAll(addresses: readonly string[], attempts = 10): Promise<number> {
  const first = addresses[0] ?? '127.0.0.1';
  for (let attempt = 0; attempt < attempts; attempt++) {
    const port = await findFreePort(first);
    if (await isPortFreeOn(addresses.slice(1), port)) return port;
  }
  throw new Error(`no port free on all ${addresses.length} addresses after ${attempts} attempts`);
}

function toNumber(address: string): number {
  const parts = address.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new Error(`not an IPv4 address: ${address}`);
  }
  const [a = 0, b = 0, c = 0, d = 0] = parts;
  return ((a << 24) >>> 0) + (b << 16) + (c << 8) + d;
}

function toAddress(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

/**
 * `count` consecutive loopback addresses from `base` (inclusive), skipping x.y.z.0 and x.y.z.255
 * because some tools treat them as network/broadcast addresses even on loopback.
 */
export function allocateLoopbackAddresses(count: number, base = '127.0.0.2'): string[] {
  if (!Number.isInteger(count) || count < 0) throw new Error(`invalid address count: ${count}`);
  let value = toNumber(base);
  if (value >>> 24 !== 127) throw new Error(`not a loopback address: ${base}`);
  const addresses: string[] = [];
  while (addresses.length < count) {
    if (value >>> 24 !== 127) throw new Error(`ran out of loopback addresses after ${base}`);
    const last = value & 255;
    if (last !== 0 && last !== 255) addresses.push(toAddress(value));
    value++;
  }
  return addresses;
}

/**
 * Resolve once `address:port` accepts a TCP connection and sends an SSH identification line
 * ("SSH-2.0-…"): a listening socket alone does not prove the daemon is ready to talk.
 */
export async function waitForSshBanner(address: string, port: number, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let lastError = 'no attempt';
  while (Date.now() < deadline) {
    try {
      return await readBanner(address, port, Math.max(100, deadline - Date.now()));
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`no SSH banner from ${address}:${port} within ${timeoutMs} ms (${lastError})`);
}

function readBanner(address: string, port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: address, port });
    let received = '';
    const finish = (error: Error | null, banner?: string): void => {
      socket.destroy();
      if (error) reject(error);
      else resolve(banner ?? '');
    };
    socket.setTimeout(timeoutMs, () => finish(new Error('timed out waiting for the banner')));
    socket.on('error', (error) => finish(error));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      const line = received.split(/\r?\n/).find((l) => l.startsWith('SSH-'));
      if (line !== undefined) finish(null, line);
      else if (received.length > 8192) finish(new Error('no SSH identification line'));
    });
    socket.on('end', () => finish(new Error('closed before an SSH banner')));
  });
}
