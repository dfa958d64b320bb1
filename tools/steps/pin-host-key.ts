// Pin a new node's SSH host key in Castellan's known_hosts, but only the key whose
// fingerprint the approver saw: the server connects, compares what the node offers with the
// approved fingerprint, and refuses anything else (and any change to an existing pin).
import { defineStepKind, notRunResult } from './kind.js';

export interface PinHostKeyAction {
  readonly kind: 'pin_host_key';
  /** `SHA256:…`, as `ssh-keygen -lf` prints it. */
  readonly fingerprint: string;
}

export const pinHostKeyKind = defineStepKind<PinHostKeyAction>({
  kind: 'pin_host_key',
  command: (a) => ['pin-host-key', a.fingerprint],
  async run(a, _step, hosts, io) {
    if (!io.pinHostKey) return { results: hosts.map((h) => notRunResult(h, 'this worker cannot pin host keys', 'failed')) };
    return { results: await io.pinHostKey(hosts, a.fingerprint) };
  },
});
