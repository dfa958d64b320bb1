// ipmitool against one node's BMC, run from the Castellan server or, when the node's inventory
// names a jump host (bmc_via), over SSH on that host. The action is the exact argv approvers
// see; the password is not in it (nor anywhere in the plan): it names the configured
// credential, and the worker hands its password to ipmitool at run time — on the server in
// the IPMI_PASSWORD environment variable (`-E`), on a jump host on ipmitool's stdin
// (`-f /dev/stdin`). Why stdin there: sshd refuses to pass environment variables it was not
// told to AcceptEnv, and a password file on the jump host would need a shell to create, mode
// and remove (and survives a crash); stdin exists only in the pipe between sshd and ipmitool.
// Either way it never appears in a process list, the plan, the job or the audit.
import { defineStepKind, notRunResult } from './kind.js';

export interface IpmiAction {
  readonly kind: 'ipmi';
  /** Everything after `ipmitool`: -I lanplus -H bmc -p port -U user (-E | -f /dev/stdin) [-C n] chassis power status. */
  readonly args: readonly string[];
  /** The configured credential (config bmc.credentials) whose password ipmitool gets. */
  readonly credential: string;
  /** The inventory host ipmitool runs on over SSH (the step's host); absent: the Castellan server. */
  readonly via?: string | undefined;
}

export const ipmiKind = defineStepKind<IpmiAction>({
  kind: 'ipmi',
  command: (a) => ['ipmitool', ...a.args],
  details: (a) => ({
    runs_on: a.via ?? 'the Castellan server',
    password: a.via === undefined ? `IPMI_PASSWORD from bmc credential '${a.credential}' (never in argv)` : `on ipmitool's stdin from bmc credential '${a.credential}' (never in argv or a file)`,
  }),
  async run(a, step, hosts, io) {
    if (!io.ipmi) return { results: hosts.map((h) => notRunResult(h, 'this worker cannot run ipmitool', 'failed')) };
    const about = step.subject ?? hosts[0] ?? '';
    return { results: await Promise.all(hosts.map((h) => io.ipmi!({ host: h, about, args: a.args, credential: a.credential, via: a.via !== undefined, timeoutMs: step.timeoutMs }))) };
  },
});
