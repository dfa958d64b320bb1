// Hooks the executor calls as it works. Kept as a plain interface so the executor does not
// depend on a metrics library; `sshMetrics(registry)` backs it with prom-client collectors.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { HostResult, HostStatus } from './types.js';

export interface SshObserver {
  /** A new SSH connection became ready after `ms` (TCP + handshake + auth). */
  connected?(host: string, ms: number): void;
  /** A connection attempt ended without a usable connection. */
  connectFailed?(host: string, status: HostStatus): void;
  /** A remote command (or transfer) started on a channel. */
  execStarted?(host: string): void;
  hostFinished?(result: HostResult): void;
  /** Open pooled connections. */
  poolSize?(connections: number): void;
}

export function sshMetrics(registry: Registry): SshObserver {
  const registers = [registry];
  const connects = new Counter({ name: 'castellan_ssh_connects_total', help: 'SSH connections made ready', registers });
  const connectFailures = new Counter({
    name: 'castellan_ssh_connect_failures_total',
    help: 'SSH connection attempts that failed, by status',
    labelNames: ['status'],
    registers,
  });
  const connectDuration = new Histogram({
    name: 'castellan_ssh_connect_seconds',
    help: 'TCP connect + SSH handshake + authentication',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15],
    registers,
  });
  const execs = new Counter({ name: 'castellan_ssh_execs_total', help: 'Remote commands and transfers started', registers });
  const results = new Counter({
    name: 'castellan_ssh_host_results_total',
    help: 'Per-host executor outcomes',
    labelNames: ['status'],
    registers,
  });
  const pool = new Gauge({ name: 'castellan_ssh_pool_connections', help: 'Open pooled SSH connections', registers });
  return {
    connected: (_host, ms) => {
      connects.inc();
      connectDuration.observe(ms / 1000);
    },
    connectFailed: (_host, status) => connectFailures.inc({ status }),
    execStarted: () => execs.inc(),
    hostFinished: (result) => results.inc({ status: result.status }),
    poolSize: (connections) => pool.set(connections),
  };
}
