// Shared by the runbook tests: a lab of real sshd nodes shaped like the rack (node01 the
// Kubernetes control plane; color=blue/green labels; every node a Kubernetes node managing
// boot environments with kbe), with the zfs/kbe/kubectl stand-ins installed and the lab's
// "upgrade", "reboot" and "version" commands named in the inventory, as an operator would
// name real ones. Nothing on this machine is upgraded or rebooted.
// Optionally a real 3-member etcd (Debian's etcd-server) that node01, the control plane, names
// in etcd_endpoints, for its etcd gate.
import { readFile, writeFile } from 'node:fs/promises';
import { parse, stringify } from 'yaml';
import type { Lab } from '../../src/lab/sshd-lab.js';
import { startLabWorld, type LabWorld } from '../fixtures/node-programs/lab-world.js';
import { startEtcd, type EtcdCluster } from '../support/etcd.js';

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
