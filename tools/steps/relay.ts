// One source host's file streamed through the Castellan server to each step host.
import { defineStepKind } from './kind.js';

export interface RelayAction {
  readonly kind: 'relay';
  readonly fromHost: string;
  readonly remotePath: string;
  readonly destPath: string;
}

export const relayKind = defineStepKind<RelayAction>({
  kind: 'relay',
  command: (a) => ['relay', `${a.fromHost}:${a.remotePath}`, a.destPath],
  async run(a, _step, hosts, io) {
    return { results: await io.relay(a.fromHost, a.remotePath, hosts, a.destPath) };
  },
});
