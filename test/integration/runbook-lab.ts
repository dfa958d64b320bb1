// Shared by the runbook tests: a lab of real sshd nodes shaped like the rack (node01 the
// Kubernetes control plane; color=blue/green labels; every node a Kubernetes node managing
// boot environments with kbe), with the zfs/kbe/kubectl stand-ins installed and the lab's
// "upgrade", "reboot" and "version" commands named in the inventory, as an operator would
// name real ones. Nothing on this machine is upgraded or rebooted.
// Optionally a real 3-member etcd (Debian's etcd-server) that node01, the control plane, names
// in etcd_endpoints, for its etcd gate.
import { readFile, writeFile } from 'node:fs/promises';
import { parse, stringify } from 'yaml';
import type { Requester } from '../../auth/types.js';
import type { Lab } from '../../src/lab/sshd-lab.js';
import type { Runtime } from '../../src/runtime.js';
import type { CastellanOptions } from '../support/castellan.js';
import { startWorkerProcess, type WorkerProcess } from '../support/castellan-process.js';
import { startLabWorld, type LabWorld } from '../fixtures/node-programs/lab-world.js';
import { startEtcd, type EtcdCluster } from '../support/etcd.js';

/**
 * The lab a green-half roll runs on with its worker in a process of its own (startGreenRoll):
 * four nodes with their own bin dirs, no in-process worker, and a short BullMQ lock so a worker
 * that dies or stops is found stalled within seconds.
 */
export const GREEN_ROLL_LAB = {
  nodes: 4,
  worker: false,
  lab: { nodeBinDirs: true },
  config: { ssh: { connect_timeout: '3s' }, jobs: { worker: { lock_duration: '2s', stalled_interval: '1s' } } },
} satisfies Omit<CastellanOptions, 'prepare'>;

export interface RackShape {
  /** Nodes labelled color=green; the rest are blue. */
  readonly green: readonly string[];
  /** A real etcd for node01's etcd gate. */
  readonly etcd?: boolean;
}

export interface Rack {
  readonly world: LabWorld;
  readonly etcd: EtcdCluster | undefined;
  stop(): Promise<void>;
}

type InventoryDoc = {
  all: { vars: Record<string, unknown>; children: Record<string, { hosts: Record<string, Record<string, unknown> | null> }> };
};

export async function shapeRack(lab: Lab, shape: RackShape): Promise<Rack> {
  const doc = parse(await readFile(lab.inventoryFile, 'utf8')) as InventoryDoc;
  const etcd = shape.etcd ? await startEtcd(3) : undefined;
  doc.all.vars = {
    ...doc.all.vars,
    castellan_be_tool: 'kbe',
    castellan_upgrade_command: ['lab-upgrade'],
    castellan_reboot_command: ['lab-reboot'],
    castellan_version_command: ['lab-os-version'],
  };
  const labHosts = doc.all.children.lab?.hosts ?? {};
  for (const [name, host] of Object.entries(labHosts)) {
    const vars = host ?? {};
    vars.castellan_labels = { ...((vars.castellan_labels) ?? {}), color: shape.green.includes(name) ? 'green' : 'blue' };
    if (name === 'node01' && etcd) vars.etcd_endpoints = etcd.members.map((m) => m.clientUrl);
    labHosts[name] = vars;
  }
  doc.all.children.k8s_cluster = { hosts: Object.fromEntries(Object.keys(labHosts).map((n) => [n, null])) };
  doc.all.children.k8s_control_plane = { hosts: { node01: null } };
  await writeFile(lab.inventoryFile, stringify(doc, { nullStr: '' }));
  const world = await startLabWorld({ lab, controlPlane: ['node01'] });
  return {
    world,
    etcd,
    async stop() {
      await Promise.all([world.stop(), etcd?.down()]);
    },
  };
}

/**
 * A rolling upgrade of the green nodes, one at a time, approved, with a separate worker process
 * to run it (started while the job is submitted and approved: a few seconds on a loaded machine).
 * The crash and pause tests then stop that process mid-roll.
 */
export async function startGreenRoll(
  c: { readonly configFile: string; readonly runtime: Runtime },
  people: { readonly requester: Requester; readonly approver: Requester },
  bootEnvironment: string,
): Promise<{ readonly jobId: string; readonly worker: WorkerProcess }> {
  const starting = startWorkerProcess(c.configFile);
  const { job } = await c.runtime.service.submit({
    tool: 'rolling_upgrade',
    input: { targets: 'color=green', batch_size: 1, boot_environment: bootEnvironment, ready_timeout: '60s', up_timeout: '60s', down_timeout: '30s', gate_interval: '200ms' },
    requester: people.requester,
    replyTo: { kind: 'cli' },
  });
  await c.runtime.service.approve(job.id, people.approver);
  return { jobId: job.id, worker: await starting };
}
