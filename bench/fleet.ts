// The nodes a benchmark runs against, described the same way for every client: a fake-node
// farm in its own process (so the farm's event loop never competes with the client under
// measurement inside one process), or a real OpenSSH lab. Both write a pinned known_hosts,
// an Ansible inventory and the client key; here we add the plain host lists the OpenSSH
// tools want (`address:port` for parallel-ssh, bare addresses for clush and pdsh).
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { labUp } from '../src/lab/sshd-lab.js';
import { stopProcessFamily } from '../src/lab/processes.js';
import { meterNodeCpu, type NodeCpuSource } from './node-cpu.js';

export type FleetKind = 'farm' | 'sshd';

export interface FleetNode {
  readonly name: string;
  readonly address: string;
  readonly port: number;
}

/** Everything a client needs to reach the fleet; plain data so it can be handed to a child process. */
export interface FleetFiles {
  readonly kind: FleetKind;
  readonly dir: string;
  readonly nodes: readonly FleetNode[];
  readonly port: number;
  readonly user: string;
  readonly clientKeyFile: string;
  readonly knownHostsFile: string;
  readonly inventoryFile: string;
  /** `address:port` per line (parallel-ssh -h). */
  readonly hostPortFile: string;
  /** One address per line (clush --hostfile, pdsh -w ^file). */
  readonly addressFile: string;
  /** Where the fleet's own CPU can be read (node-cpu.ts); absent: not measured. */
  readonly nodeCpu?: NodeCpuSource | undefined;
}

export interface Fleet extends FleetFiles {
  stop(): Promise<void>;
}

const FARM_READY_TIMEOUT_MS = 120_000;
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The compiled farm entry point (`npm run build` puts it there). */
export const FARM_SCRIPT = path.join(REPO, 'dist', 'src', 'lab', 'fake-farm.js');

interface FarmReady {
  ready: true;
  pid: number;
  dir: string;
  port: number;
  loginUser: string;
  inventoryFile: string;
  knownHostsFile: string;
  clientKeyFile: string;
  hostsFile: string;
  nodes: FleetNode[];
}

async function writeHostLists(dir: string, nodes: readonly FleetNode[]): Promise<{ hostPortFile: string; addressFile: string }> {
  const hostPortFile = path.join(dir, 'bench-hosts-port.txt');
  const addressFile = path.join(dir, 'bench-hosts.txt');
  await writeFile(hostPortFile, nodes.map((n) => `${n.address}:${n.port}\n`).join(''));
  await writeFile(addressFile, nodes.map((n) => `${n.address}\n`).join(''));
  return { hostPortFile, addressFile };
}

function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Start `node dist/src/lab/fake-farm.js` and wait for its JSON ready line. */
export async function startFarmProcess(nodes: number, dir: string, script = FARM_SCRIPT): Promise<Fleet> {
  const child = spawn(process.execPath, [script, '--nodes', String(nodes), '--dir', dir, '--no-record'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    if (stderr.length < 8192) stderr += chunk.toString('utf8');
  });
  const lines = createInterface({ input: child.stdout });
  const ready = await new Promise<FarmReady>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fake farm (${nodes} nodes) not ready within ${FARM_READY_TIMEOUT_MS} ms: ${stderr}`)), FARM_READY_TIMEOUT_MS);
    lines.once('line', (line) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(line) as FarmReady);
      } catch {
        reject(new Error(`fake farm said ${line.slice(0, 200)}`));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`fake farm exited (${code}) before it was ready: ${stderr}`));
    });
  }).catch(async (error: unknown) => {
    child.kill('SIGKILL');
    await waitExit(child);
    throw error;
  });
  lines.close();
  const lists = await writeHostLists(dir, ready.nodes);
  // The farm's process is every fake node at once: its CPU is the "node side" of the fake fleet.
  const meter = await meterNodeCpu([ready.pid], `farm-${nodes}`);
  return {
    kind: 'farm',
    dir: ready.dir,
    nodes: ready.nodes,
    port: ready.port,
    user: ready.loginUser,
    clientKeyFile: ready.clientKeyFile,
    knownHostsFile: ready.knownHostsFile,
    inventoryFile: ready.inventoryFile,
    ...lists,
    nodeCpu: meter.source,
    stop: async () => {
      child.kill('SIGTERM');
      const forced = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await waitExit(child);
      clearTimeout(forced);
      await meter.release();
    },
  };
}

/** A real OpenSSH lab (one sshd per node on 127.0.0.x), for the fidelity run. */
export async function startSshdFleet(nodes: number, dir: string): Promise<Fleet> {
  const lab = await labUp({ nodes, dir });
  try {
    const list = lab.nodes.map((n) => ({ name: n.name, address: n.address, port: n.port }));
    const lists = await writeHostLists(lab.dir, list);
    const meter = await meterNodeCpu(lab.nodes.flatMap((n) => (n.pid === null ? [] : [n.pid])), `sshd-${nodes}`);
    return {
      kind: 'sshd',
      dir: lab.dir,
      nodes: list,
      port: list[0]?.port ?? 22,
      user: lab.loginUser,
      clientKeyFile: lab.clientKeyFile,
      knownHostsFile: lab.knownHostsFile,
      inventoryFile: lab.inventoryFile,
      ...lists,
      nodeCpu: meter.source,
      stop: async () => {
        await lab.down();
        await meter.release();
      },
    };
  } catch (error) {
    await lab.down();
    throw error;
  }
}

/** For a farm started in this process (tests): the same description, stopped by its owner. */
export async function describeFarm(farm: { dir: string; nodes: readonly FleetNode[]; port: number; loginUser: string; clientKeyFile: string; knownHostsFile: string; inventoryFile: string; stop(): Promise<void> }): Promise<Fleet> {
  const lists = await writeHostLists(farm.dir, farm.nodes);
  return {
    kind: 'farm',
    dir: farm.dir,
    nodes: farm.nodes,
    port: farm.port,
    user: farm.loginUser,
    clientKeyFile: farm.clientKeyFile,
    knownHostsFile: farm.knownHostsFile,
    inventoryFile: farm.inventoryFile,
    ...lists,
    stop: () => farm.stop(),
  };
}

export { stopProcessFamily };
