// ipmitool against one node's BMC, run from the Castellan server. The action is the exact argv
// approvers see; the password is not in it (nor anywhere in the plan): it names the configured
// credential, and the server hands its password to ipmitool in the IPMI_PASSWORD environment
// variable (`-E`), so it never appears in a process list, the plan, the job or the audit.
import { defineStepKind, notRunResult } from './kind.js';

export interface IpmiAction {
  readonly kind: 'ipmi';
  /** Everything after `ipmitool`: -I lanplus -H bmc -p port -U user -E [-C n] chassis power status. */
  readonly args: readonly string[];
  /** The configured credential (config bmc.credentials) whose password goes to IPMI_PASSWORD. */
  readonly credential: string;
}

export const ipmiKind = defineStepKind<IpmiAction>({
  kind: 'ipmi',
  command: (a) => ['ipmitool', ...a.args],
  details: (a) => ({ password: `IPMI_PASSWORD from bmc credential '${a.credential}' (never in argv)` }),
  async run(a, step, hosts, io) {
    if (!io.ipmi) return { results: hosts.map((h) => notRunResult(h, 'this worker cannot run ipmitool', 'failed')) };
    return { results: await Promise.all(hosts.map((h) => io.ipmi!(h, a.args, a.credential, step.timeoutMs))) };
  },
});
