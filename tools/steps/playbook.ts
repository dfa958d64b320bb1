// An allowlisted Ansible playbook run from the Castellan server against the step's hosts
// (exactly them: --limit). The action carries the arguments the plan fixed; the executor
// adds Castellan's inventory, pinned known_hosts, key and forced host-key checking.
import { defineStepKind, notRunResult } from './kind.js';

export interface PlaybookAction {
  readonly kind: 'playbook';
  /** The allowlist key (config ansible.playbooks). */
  readonly playbook: string;
  /** Arguments after `ansible-playbook`: --limit, --tags, --extra-vars, --check --diff, -- path. */
  readonly args: readonly string[];
}

export const playbookKind = defineStepKind<PlaybookAction>({
  kind: 'playbook',
  command: (a) => ['ansible-playbook', ...a.args],
  details: (a) => ({ playbook: a.playbook }),
  async run(a, step, hosts, io) {
    if (!io.playbook) return { results: hosts.map((h) => notRunResult(h, 'this worker cannot run Ansible playbooks', 'failed')) };
    return { results: await io.playbook(hosts, a.args, step.timeoutMs) };
  },
});
