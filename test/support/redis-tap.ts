// A TCP pass-through between a Castellan process and its Redis that can freeze the process's
// traffic at an exact point: once a command carrying a marker (a Slack trigger id) has gone
// through, Redis still answers it, but nothing the process sends afterwards reaches Redis.
// Crash tests use it to stop a real process between two writes (the command recorded, its job
// not yet submitted) and then kill it, with no test hook inside Castellan.
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface RedisTap {
  /** redis:// URL of the tap, to put in the tapped process's castellan.yaml. */
  readonly url: string;
  /** Freeze all traffic towards Redis right after the first chunk that contains `marker`. */
  freezeAfter(marker: string): void;
  /** True once frozen. */
  readonly frozen: boolean;
  stop(): Promise<void>;
}

export async function startRedisTap(redisUrl: string): Promise<RedisTap> {
  const target = new URL(redisUrl);
  let marker: string | undefined;
  let frozen = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    const close = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    client.on('data', (chunk: Buffer) => {
      if (frozen) return; // held: never reaches Redis
      upstream.write(chunk);
      if (marker !== undefined && chunk.includes(marker)) frozen = true;
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    freezeAfter(m) {
      marker = m;
    },
    get frozen() {
      return frozen;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
