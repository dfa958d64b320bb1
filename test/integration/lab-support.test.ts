// The vitest helpers other test files use to get a lab or a farm.
import { describe, expect, it } from 'vitest';
import { isAlive } from '../../src/lab/processes.js';
import { useFarm, useLab } from '../support/lab.js';
import { runOnce } from '../support/ssh2-client.js';

describe('useLab() and useFarm()', () => {
  const lab = useLab({ nodes: 1 });
  const farm = useFarm({ nodes: 2 });

  it('give a running sshd node reachable over ssh2 with its pinned key', async () => {
    const { nodes, loginUser, clientKeyFile, knownHostsFile } = lab.current;
    const node = nodes[0]!;
    expect(isAlive(node.pid!)).toBe(true);
    const outcome = await runOnce({ address: node.address, port: node.port, user: loginUser, clientKeyFile, knownHostsFile }, 'hostname');
    expect(outcome.code).toBe(0);
    expect(outcome.stdout.trim().length).toBeGreaterThan(0); // the machine's real hostname
  });

  it('give a running farm', async () => {
    const { nodes, loginUser, clientKeyFile, knownHostsFile } = farm.current;
    const outcome = await runOnce({ address: nodes[1]!.address, port: nodes[1]!.port, user: loginUser, clientKeyFile, knownHostsFile }, 'hostname');
    expect(outcome).toMatchObject({ code: 0, stdout: 'node02\n' });
  });
});
