// Rows for the Hosts page: inventory facts, the host keys pinned in known_hosts, and the last
// status and jobs seen for each host in the newest job results.
import type { Inventory } from '../../config/types.js';
import type { JobRecord } from '../../queues/records.js';
import { fingerprint, KnownHosts } from '../ssh/known-hosts.js';
import type { Runtime } from '../runtime.js';
import type { HostRow } from './pages/hosts.js';

export async function hostRows(runtime: Runtime, inventory: Inventory, newestJobs: readonly JobRecord[]): Promise<HostRow[]> {
  const known = await KnownHosts.load(runtime.config.knownHosts).catch(() => undefined);
  const last = new Map<string, HostRow['last']>();
  const recent = new Map<string, HostRow['recentJobs'][number][]>();
  for (const job of newestJobs) {
    for (const host of job.plan.hosts) {
      const list = recent.get(host) ?? [];
      if (list.length < 3) list.push({ id: job.id, tool: job.tool, state: job.state, at: job.createdAt });
      recent.set(host, list);
    }
    for (const outcome of job.result?.hosts ?? []) {
      if (!last.has(outcome.host)) last.set(outcome.host, { status: outcome.status, at: job.finishedAt ?? job.updatedAt, jobId: job.id, tool: job.tool });
    }
  }
  return [...inventory.hosts.values()].map((host) => ({
    name: host.name,
    address: host.address,
    port: host.port,
    user: host.user ?? runtime.config.ssh.user,
    groups: host.groups,
    labels: host.labels,
    fingerprints: (known?.pinnedKeys({ name: host.name, address: host.address, port: host.port }) ?? []).map((entry) => ({ type: entry.keyType, fingerprint: fingerprint(entry.key) })),
    last: last.get(host.name),
    recentJobs: recent.get(host.name) ?? [],
  }));
}
