// A node that stops answering in the middle of a command (its sshd processes SIGSTOPped, the
// TCP connection still open): the per-host timeout must still hold. The host is reported
// timed out once its deadline and the kill grace have passed (not when the keepalive gives
// up, a minute later), its pooled connection is dropped, and the other hosts of the same
// fan-out finish normally.
import { afterEach, describe, expect, it } from 'vitest';
import { processFamily, readCommandLine } from '../../src/lab/processes.js';
import { KnownHosts, SshExecutor, type SshTarget } from '../../src/ssh/index.js';
import { useLab } from '../support/lab.js';

const lab = useLab({ nodes: 2 });

/** The sshd processes (listener and per-connection children) of one lab node, not the commands they run. */
function sshdFamily(listener: number): number[] {
  return [...processFamily([listener])].filter((pid) => {
    const argv0 = readCommandLine(pid)?.[0] ?? '';
    return /(^|\/)sshd\b/.test(argv0) || argv0.startsWith('sshd:');
  });
}

function signalAll(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // gone already
    }
  }
}

const frozen: number[] = [];
afterEach(() => {
  signalAll(frozen.splice(0), 'SIGCONT');
});

describe('a node that stops answering mid-command', () => {
  it('is reported timed out after its deadline plus the kill grace; its connection is dropped; the other host is unaffected', async () => {
    const l = lab.current;
    const targets: SshTarget[] = l.nodes.map((n) => ({ name: n.name, address: n.address, port: n.port, user: l.loginUser, privateKeyFile: l.clientKeyFile }));
    // A keepalive of 20 s × 3 would keep the old behaviour waiting a minute: the fix must not rely on it.
    const ssh = new SshExecutor({ knownHosts: await KnownHosts.load(l.knownHostsFile), keepaliveIntervalMs: 20_000, limits: { connectTimeoutMs: 5_000, killGraceMs: 1_000 } });
    try {
      // Warm the pool, so the hung host's connection is already open when it freezes.
      const warm = await ssh.fanout(targets, { argv: ['true'], runId: `warm-${process.pid}` });
      expect(warm.map((r) => r.status)).toEqual(['ok', 'ok']);
      expect(ssh.openConnections).toBe(2);

      const hung = l.nodes[0]!;
      const run = ssh.fanout(
        targets,
        (t) => ({ argv: ['sh', '-c', t.name === hung.name ? 'echo started; sleep 30' : 'sleep 1; echo fine'], runId: `hung-${process.pid}-${t.name}` }),
        {
          commandTimeoutMs: 3_000,
          onEvent: (event) => {
            if (event.type === 'output' && event.host === hung.name && event.chunk.includes('started')) {
              // Freeze the node's sshd (listener and the session's processes), not the command.
              const pids = sshdFamily(hung.pid!);
              frozen.push(...pids);
              signalAll(pids, 'SIGSTOP');
            }
          },
        },
      );
      const [hungResult, okResult] = await run;
      expect(frozen.length).toBeGreaterThan(0);
      expect(okResult).toMatchObject({ host: l.nodes[1]!.name, status: 'ok', stdout: 'fine\n' });
      expect(hungResult!.status).toBe('timed_out');
      expect(hungResult!.error).toMatch(/command timeout after 3000 ms; remote stop NOT verified: node01 did not answer for \d+ s after the stop; its connection was dropped/);
      // Only the hung node's connection was dropped.
      expect(ssh.openConnections).toBe(1);

      // Once the node runs again, a new connection works and the remote deadline has the
      // command gone (or about to be): nothing of the run stays beyond the wrapper's deadline.
      signalAll(frozen.splice(0), 'SIGCONT');
      const again = await ssh.exec(targets[0]!, { argv: ['echo', 'back'], runId: `back-${process.pid}` });
      expect(again).toMatchObject({ status: 'ok', stdout: 'back\n' });
    } finally {
      await ssh.close();
    }
  }, 90_000);
});
