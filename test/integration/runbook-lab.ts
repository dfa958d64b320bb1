// Shared by the runbook tests: a lab of real sshd nodes shaped like the rack (node01 the
// Kubernetes control plane; color=blue/green labels; every node a Kubernetes node managing
// boot environments with kbe), with the zfs/kbe/kubectl stand-ins installed and the lab's
// "upgrade", "reboot" and "version" commands named in the inventory, as an operator would
// name real ones. Nothing on this machine is upgraded or rebooted.
import { readFile, writeFile } from 'node:fs/promises';
import { parse, stringify } from 'yaml';
import type { Lab } from '../../src/lab/sshd-lab.js';
import { startLabWorld, type LabWorld } from '../fixtures/node-programs/lab-world.js';

export interface RackShape {
  /** Nodes labelled color=green; the rest are blue. */
  readonly green: readonly string[];
}

export async function shapeRack(lab: Lab, shape: RackShape): Promise<LabWorld> {
  const doc = parse(await readFile(lab.inventoryFile, 'utf8')) as {
    all: { vars: Record<string, unknown>; children: Record<string, { hosts: Record<string, { castellan_labels?: Record<string, string> } | null> }> };
  };
  doc.all.vars = {
    ...doc.all.vars,
    castellan_be_tool: 'kbe',
    castellan_upgrade_command: ['lab-upgrade'],
    castellan_reboot_command: ['lab-reboot'],
    castellan_version_command: ['lab-os-version'],
  };
  const labHosts = doc.all.children.lab?.hosts ?? {};
  for (const [name, host] of Object.entries(labHosts)) {
    if (host) host.castellan_labels = { ...(host.castellan_labels ?? {}), color: shape.green.includes(name) ? 'green' : 'blue' };
  }
  doc.all.children.k8s_cluster = { hosts: Object.fromEntries(Object.keys(labHosts).map((n) => [n, null])) };
  doc.all.children.k8s_control_plane = { hosts: { node01: null } };
  await writeFile(lab.inventoryFile, stringify(doc, { nullStr: '' }));
  return startLabWorld({ lab, controlPlane: ['node01'] });
}
