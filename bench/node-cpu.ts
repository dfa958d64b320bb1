// Node-side CPU: what the fleet spends serving a client (sshd's session, the login shell,
// Castellan's remote wrapper and the command). On a Raspberry Pi this, not the client, is what
// limits a fan-out. Measured without touching the nodes' configuration:
//   - cgroup: the fleet's listeners are moved into a cpuacct cgroup of their own (v1
//     `cpuacct.usage`, or v2 `cpu.stat` usage_usec); everything they fork inherits it, and the
//     counter keeps the CPU of processes that already exited, wherever they were reparented;
//   - proc (when no cgroup can be made): user + sys of every live process in the listeners'
//     families plus the reaped children's (cutime + cstime), from /proc/<pid>/stat, at clock-tick
//     resolution. A process reparented to init when it ended (an orphaned lifeline) is missed.
// The source is plain data, so a client process can read it around its own measured request.
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { processFamily } from '../src/lab/processes.js';

export type NodeCpuSource =
  | { readonly kind: 'cgroup-v1'; readonly dir: string }
  | { readonly kind: 'cgroup-v2'; readonly dir: string }
  | { readonly kind: 'proc'; readonly roots: readonly number[] };

export interface NodeCpuMeter {
  readonly source: NodeCpuSource;
  /** Move what is left back to the parent cgroup and remove ours (after the fleet stopped). */
  release(): Promise<void>;
}

const CLOCK_TICK_MS = 10; // USER_HZ is 100 on Linux
const V1_ROOT = '/sys/fs/cgroup/cpuacct';
const V2_ROOT = '/sys/fs/cgroup';

/** CPU milliseconds the fleet has used so far (NaN when it cannot be read). */
export function readNodeCpuMs(source: NodeCpuSource | undefined): number {
  if (!source) return Number.NaN;
  try {
    if (source.kind === 'cgroup-v1') return Number(readFileSync(path.join(source.dir, 'cpuacct.usage'), 'utf8')) / 1e6;
    if (source.kind === 'cgroup-v2') {
      const match = /^usage_usec (\d+)$/m.exec(readFileSync(path.join(source.dir, 'cpu.stat'), 'utf8'));
      return match ? Number(match[1]) / 1000 : Number.NaN;
    }
    let ticks = 0;
    for (const pid of processFamily(source.roots)) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        // Fields after the command name (which may hold spaces): utime is field 14.
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
      } catch {
        // ended between listing and reading: its time moved to its parent's cutime
      }
    }
    return ticks * CLOCK_TICK_MS;
  } catch {
    return Number.NaN;
  }
}

function ownV2Cgroup(): string | null {
  try {
    const line = readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::'));
    readFileSync(path.join(V2_ROOT, 'cgroup.controllers'), 'utf8');
    return line ? path.join(V2_ROOT, line.slice(3)) : null;
  } catch {
    return null;
  }
}

async function tryCgroup(kind: 'cgroup-v1' | 'cgroup-v2', parent: string, name: string, pids: readonly number[]): Promise<NodeCpuMeter | null> {
  const dir = path.join(parent, name);
  try {
    await mkdir(dir);
  } catch {
    return null;
  }
  try {
    for (const pid of pids) writeFileSync(path.join(dir, 'cgroup.procs'), String(pid));
    const source: NodeCpuSource = { kind, dir };
    if (!Number.isFinite(readNodeCpuMs(source))) throw new Error('unreadable');
    return { source, release: () => removeCgroup(dir, parent) };
  } catch {
    await removeCgroup(dir, parent);
    return null;
  }
}

async function removeCgroup(dir: string, parent: string): Promise<void> {
  try {
    const left = readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
    for (const pid of left) {
      try {
        writeFileSync(path.join(parent, 'cgroup.procs'), pid);
      } catch {
        // exited meanwhile
      }
    }
    await rmdir(dir);
  } catch {
    // a cgroup that cannot be removed now is empty and harmless; the next boot drops it
  }
}

/** Start accounting the CPU of `pids` (the fleet's listeners) and everything they start from now on. */
export async function meterNodeCpu(pids: readonly number[], label: string): Promise<NodeCpuMeter> {
  const name = `castellan-bench-${process.pid}-${label.replace(/[^a-z0-9-]/gi, '-')}`;
  const v1 = await tryCgroup('cgroup-v1', V1_ROOT, name, pids);
  if (v1) return v1;
  const own = ownV2Cgroup();
  const v2 = own ? await tryCgroup('cgroup-v2', own, name, pids) : null;
  if (v2) return v2;
  return { source: { kind: 'proc', roots: [...pids] }, release: async () => undefined };
}

export function describeNodeCpu(source: NodeCpuSource | undefined): string {
  if (!source) return 'not measured';
  if (source.kind === 'proc') return '/proc accounting of the listeners\' process families (clock ticks; orphans reparented to init are missed)';
  return `${source.kind} cpuacct of the listeners and everything they forked`;
}
