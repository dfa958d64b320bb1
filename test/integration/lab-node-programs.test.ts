// The zfs/kbe/kubectl stand-ins reached over real SSH on lab nodes: installed on the session
// PATH, state per node, recorded formats and exit codes, and a simulated reboot that really
// takes the node's sshd away and brings it back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLabWorld, type LabWorld } from '../fixtures/node-programs/lab-world.js';
import { useLab } from '../support/lab.js';
import { runSsh } from '../support/openssh.js';

const lab = useLab({ nodes: 2, nodeBinDirs: true });
let world: LabWorld;

beforeAll(async () => {
  world = await startLabWorld({ lab: lab.current, controlPlane: ['node01'] });
});
afterAll(async () => {
  await world.stop();
});

function on(name: string, command: string[]) {
  const node = lab.current.nodes.find((n) => n.name === name)!;
  return runSsh({ address: node.address, port: node.port, user: lab.current.loginUser, clientKeyFile: lab.current.clientKeyFile, knownHostsFile: lab.current.knownHostsFile }, command);
}

async function eventually(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('condition not met in time');
}

describe('lab stand-ins for zfs, zpool, kbe and kubectl', () => {
  it('lists boot environments in zfs list -H -p format, per node', async () => {
    const listed = await on('node02', ['zfs', 'list', '-H', '-p', '-o', 'name,used,creation,mounted', '-r', '-d', '1', 'rpool/ROOT']);
    expect(listed.code).toBe(0);
    expect(listed.stdout.split('\n')[1]).toMatch(/^rpool\/ROOT\/debian\t2654208000\t\d{10}\tyes$/);
    expect((await on('node02', ['zpool', 'get', '-H', '-o', 'value', 'bootfs', 'rpool'])).stdout).toBe('rpool/ROOT/debian\n');
    const missing = await on('node02', ['zfs', 'list', 'rpool/ROOT/nope']);
    expect(missing).toMatchObject({ code: 1, stderr: "cannot open 'rpool/ROOT/nope': dataset does not exist\n" });
  });

  it('kbe create and activate change only that node', async () => {
    expect((await on('node02', ['kbe', 'create', 'pre-upgrade-20261129-050000'])).code).toBe(0);
    expect((await on('node02', ['kbe', 'create', 'pre-upgrade-20261129-050000'])).code).toBe(1);
    expect((await on('node02', ['kbe', 'activate', 'pre-upgrade-20261129-050000'])).code).toBe(0);
    expect(world.node('node02').bootfs).toBe('pre-upgrade-20261129-050000');
    expect(world.node('node01').bes.map((b) => b.name)).toEqual(['debian']);
  });

  it('kubectl drains and reports nodes as kubectl does', async () => {
    const drained = await on('node01', ['kubectl', 'drain', '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=5m0s', '--', 'node02']);
    expect(drained.code).toBe(0);
    expect(drained.stdout).toContain('node/node02 cordoned\nevicting pod default/web-node02\npod/web-node02 evicted\nnode/node02 drained\n');
    const got = JSON.parse((await on('node01', ['kubectl', 'get', 'nodes', '-o', 'json'])).stdout);
    expect(got.kind).toBe('List');
    expect(got.items.find((n: { metadata: { name: string } }) => n.metadata.name === 'node02').spec.unschedulable).toBe(true);
    expect(await on('node01', ['kubectl', 'get', 'node', 'node09', '-o', 'json'])).toMatchObject({ code: 1, stderr: 'Error from server (NotFound): nodes "node09" not found\n' });
  });

  it('a requested reboot takes sshd away, boots the activated environment and comes back', async () => {
    world.updateNode('node02', (w) => { w.faults.kubeletNotReadyOn = ['12.8']; });
    expect((await on('node02', ['lab-upgrade'])).stdout).toContain('Setting up castellan-lab-os (12.8)');
    expect((await on('node02', ['lab-reboot'])).code).toBe(0);
    await eventually(async () => (await on('node02', ['true'])).code !== 0, 15_000);
    await eventually(async () => (await on('node02', ['true'])).code === 0, 30_000);
    expect(world.node('node02').booted).toBe('pre-upgrade-20261129-050000');
    expect(world.boots('node02')).toBe(1);
    // The pre-upgrade environment was cloned before the upgrade: it still holds 12.7, so the kubelet is Ready.
    await eventually(async () => world.cluster().nodes.node02?.ready === true, 10_000);
  });
});
