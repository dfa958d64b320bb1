// Loopback addresses and ports: what lets parallel labs coexist.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { allocateLoopbackAddresses, findFreePort, findPortFreeOnAll, isPortFreeOn, waitForSshBanner } from '../../src/lab/net.js';

describe('lab networking', () => {
  it('allocates consecutive loopback addresses, skipping .0 and .255', () => {
    expect(allocateLoopbackAddresses(3)).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    const many = allocateLoopbackAddresses(300, '127.1.0.1');
    expect(many).toHaveLength(300);
    expect(new Set(many).size).toBe(300);
    expect(many.some((a) => a.endsWith('.0') || a.endsWith('.255'))).toBe(false);
    expect(many[254]).toBe('127.1.1.1');
    expect(() => allocateLoopbackAddresses(1, '10.0.0.1')).toThrow(/loopback/);
  });

  it('finds a port that is really free, and sees when it is taken', async () => {
    const addresses = allocateLoopbackAddresses(4, '127.0.0.50');
    const port = await findPortFreeOnAll(addresses);
    expect(await isPortFreeOn(addresses, port)).toBe(true);
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(port, addresses[2], resolve));
    try {
      expect(await isPortFreeOn(addresses, port)).toBe(false);
      await expect(findFreePort(addresses[2], port)).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });

  it('waits for an SSH banner, not just an open port', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      await expect(waitForSshBanner('127.0.0.1', port, 400)).rejects.toThrow(/no SSH banner/);
    } finally {
      silent.close();
    }
    const speaking = net.createServer((socket) => socket.end('SSH-2.0-Test\r\n'));
    await new Promise<void>((resolve) => speaking.listen(0, '127.0.0.1', resolve));
    try {
      expect(await waitForSshBanner('127.0.0.1', (speaking.address() as net.AddressInfo).port, 2000)).toBe('SSH-2.0-Test');
    } finally {
      speaking.close();
    }
  });
});
