// `castellan doctor`: everything a first deployment gets wrong, checked in one go, each problem
// with the command that fixes it. Order follows dependency: no inventory, no host checks.
import type { Finding } from './finding.js';
import { skipped } from './finding.js';
import { checkConfig, checkFiles, checkInventory, checkKeyFiles, checkPins } from './local-checks.js';
import { checkOidc, checkRedis, checkSlack, checkSsh } from './remote-checks.js';

export interface DoctorOptions {
  /** Skip logging in to the hosts (large fleets, or no network to them from here). */
  readonly ssh?: boolean;
  readonly connectTimeoutMs?: number;
}

export async function runDoctor(configFile: string, options: DoctorOptions = {}): Promise<Finding[]> {
  const { finding, config } = await checkConfig(configFile);
  if (!config) return [finding];
  const findings: Finding[] = [finding];
  const inv = await checkInventory(config);
  findings.push(inv.finding);
  // Network checks run side by side: each has its own short deadline.
  const network = Promise.all([checkRedis(config), checkOidc(config), checkSlack(config)]);
  if (inv.inventory) {
    const pins = await checkPins(config, inv.inventory);
    findings.push(pins.finding, await checkKeyFiles(config, inv.inventory));
    findings.push(options.ssh === false ? skipped('ssh', 'skipped (--no-ssh)') : await checkSsh(config, inv.inventory, pins.pinned, options.connectTimeoutMs ?? Math.min(config.ssh.connectTimeoutMs, 10_000)));
  }
  const [redis, oidc, slack] = await network;
  findings.push(...redis, oidc, slack, await checkFiles(config));
  return findings;
}
