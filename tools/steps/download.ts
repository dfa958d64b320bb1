// Each host's file copied to the Castellan server, saved as `<localDir>/<host>/<basename>`.
import { defineStepKind } from './kind.js';

export interface DownloadAction {
  readonly kind: 'download';
  readonly remotePath: string;
  readonly localDir: string;
}

export const downloadKind = defineStepKind<DownloadAction>({
  kind: 'download',
  command: (a) => ['download', a.remotePath, a.localDir],
  async run(a, _step, hosts, io) {
    return { results: await io.download(hosts, a.remotePath, a.localDir) };
  },
});
