// A local file (on the Castellan server, under the files root) copied to each host.
import { defineStepKind } from './kind.js';

export interface UploadAction {
  readonly kind: 'upload';
  readonly localPath: string;
  readonly remotePath: string;
  readonly mode?: number | undefined;
}

export const uploadKind = defineStepKind<UploadAction>({
  kind: 'upload',
  command: (a) => ['upload', a.localPath, a.remotePath],
  async run(a, _step, hosts, io) {
    return { results: await io.upload(hosts, a.localPath, a.remotePath, a.mode) };
  },
});
