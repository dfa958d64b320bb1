// A real etcd cluster on loopback for tests: N members of Debian's etcd-server, each on free
// client and peer ports, data in a temporary directory. Members can be stopped (SIGKILL, like
// a crashed node) and the whole cluster torn down; every process is ours and is reaped.
// Healthy is not yet ready to reconfigure: a member refuses `member add` ("unhealthy cluster")
// until it has been connected to every peer for 5 s (etcd's HealthInterval), which starts again
// whenever a peer connection is re-made (a starved member on a loaded machine). Retry it, as kubeadm does.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { findFreePort } from '../../src/lab/net.js';

export interface EtcdMemberProcess {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  process: ChildProcess | undefined;
}

export interface EtcdCluster {
  readonly members: EtcdMemberProcess[];
  stop(name: string): Promise<void>;
  down(): Promise<void>;
}

async function waitHealthy(url: string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      const r = await fetch(`${url}/health`);
      if (r.ok && ((await r.json()) as { health?: string }).health === 'true') return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`etcd at ${url} did not become healthy within ${timeoutMs} ms`);
}

function kill(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    p.once('exit', () => resolve());
    p.kill('SIGKILL');
  });
}

/** The last few KB a member wrote to stderr, kept to say why it did not come up. */
function keepTail(p: ChildProcess): () => string {
  let tail = '';
  p.stderr?.setEncoding('utf8');
  p.stderr?.on('data', (chunk: string) => {
    tail = (tail + chunk).slice(-4096);
  });
  return () => tail.trim();
}

/**
 * Distinct ports for every member's client and peer listeners. They are free when picked, not
 * reserved: on a loaded machine another lab, or an outgoing connection's ephemeral port, can
 * take one before etcd binds it, and that member exits. startEtcd starts again on new ports.
 */
async function pickMembers(size: number): Promise<EtcdMemberProcess[]> {
  const taken = new Set<number>();
  const next = async (): Promise<number> => {
    let port = await findFreePort();
    while (taken.has(port)) port = await findFreePort();
    taken.add(port);
    return port;
  };
  const members: EtcdMemberProcess[] = [];
  for (let i = 1; i <= size; i++) {
    const client = await next();
    const peer = await next();
    members.push({ name: `etcd${i}`, clientUrl: `http://127.0.0.1:${client}`, peerUrl: `http://127.0.0.1:${peer}`, process: undefined });
  }
  return members;
}

async function startOnce(size: number): Promise<EtcdCluster> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-etcd-'));
  const members = await pickMembers(size);
  const initial = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  const tails = new Map<string, () => string>();
  for (const m of members) {
    m.process = spawn('etcd', [
      `--name=${m.name}`,
      `--data-dir=${path.join(dir, m.name)}`,
      `--listen-client-urls=${m.clientUrl}`,
      `--advertise-client-urls=${m.clientUrl}`,
      `--listen-peer-urls=${m.peerUrl}`,
      `--initial-advertise-peer-urls=${m.peerUrl}`,
      `--initial-cluster=${initial}`,
      '--initial-cluster-state=new',
      `--initial-cluster-token=castellan-${path.basename(dir)}`,
      '--log-level=error',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    tails.set(m.name, keepTail(m.process));
  }
  const cluster: EtcdCluster = {
    members,
    async stop(name) {
      const m = members.find((x) => x.name === name);
      await kill(m?.process);
    },
    async down() {
      await Promise.all(members.map((m) => kill(m.process)));
      await rm(dir, { recursive: true, force: true });
    },
  };
  // A member that exits (a port taken under it) fails the start at once, with its own words.
  const exited = new Promise<never>((_, reject) => {
    for (const m of members) {
      m.process?.once('exit', (code, signal) => {
        reject(new Error(`etcd member ${m.name} exited (${signal ?? `code ${code}`}) while starting: ${tails.get(m.name)?.() || 'no stderr'}`));
      });
    }
  });
  exited.catch(() => undefined);
  try {
    await Promise.race([Promise.all(members.map((m) => waitHealthy(m.clientUrl, 45_000))), exited]);
  } catch (err) {
    const said = members.map((m) => `${m.name}: ${tails.get(m.name)?.() || '-'}`).join('\n');
    await cluster.down();
    throw new Error(`${(err as Error).message}\nstderr of the members:\n${said}`, { cause: err });
  }
  return cluster;
}

export async function startEtcd(size = 3): Promise<EtcdCluster> {
  const attempts = 2;
  let last: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      return await startOnce(size);
    } catch (err) {
      last = err;
    }
  }
  throw new Error(`etcd did not start in ${attempts} attempts; the last: ${(last as Error).message}`, { cause: last });
}
