// Rows for the Hosts page: inventory facts, the host keys pinned in known_hosts, and each
// host's last jobs and last contact, read per host from the job index by host (exact however
// many jobs are retained, and however long ago a quiet host was last reached).
import type { Identity } from '../../auth/types.js';
import type { Inventory } from '../../config/types.js';
import { fingerprint, KnownHosts } from '../ssh/known-hosts.js';
import type { Runtime } from '../runtime.js';
import type { HostRow } from './pages/hosts.js';

/** Jobs read per host: the recent ones shown, and where its last contact is looked for. */
const PER_HOST = 5;
const SHOWN = 3;

export async function hostRows(runtime: Runtime, viewer: Identity, inventory: Inventory): Promise<HostRow[]> {
  const known = await KnownHosts.load(runtime.config.knownHosts).catch(() => undefined);
  const hosts = [...inventory.hosts.values()];
  const pages = await Promise.all(hosts.map((host) => runtime.service.page(viewer, { host: host.name, limit: PER_HOST })));
  return hosts.map((host, i) => {
    const jobs = pages[i]?.jobs ?? [];
    let last: HostRow['last'];
    for (const job of jobs) {
      // A cancelled or skipped outcome says nothing about the host: it was never reached.
      const outcome = job.result?.hosts.find((h) => h.host === host.name && h.status !== 'cancelled' && h.status !== 'skipped');
      if (outcome !== undefined) {
        last = { status: outcome.status, at: job.finishedAt ?? job.updatedAt, jobId: job.id, tool: job.tool };
        break;
      }
    }
    return {
      name: host.name,
      address: host.address,
      port: host.port,
      user: host.user ?? runtime.config.ssh.user,
      groups: host.groups,
      labels: host.labels,
      fingerprints: (known?.pinnedKeys({ name: host.name, address: host.address, port: host.port }) ?? []).map((entry) => ({ type: entry.keyType, fingerprint: fingerprint(entry.key) })),
      last,
      recentJobs: jobs.slice(0, SHOWN).map((job) => ({ id: job.id, tool: job.tool, state: job.state, at: job.createdAt })),
    };
  });
}
