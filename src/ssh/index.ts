// The SSH executor's public surface. Everything else in src/ssh is an implementation detail.
export * from './types.js';
export { QuotingError, quoteArg, quoteArgv } from './quote.js';
export {
  KnownHosts,
  PINNABLE_KEY_TYPES,
  fingerprint,
  hostFieldMatches,
  keyTypeOf,
  lookupNames,
  type HostIdentity,
  type HostKeyVerdict,
  type KnownHostEntry,
  type PinnableKeyType,
} from './known-hosts.js';
export { scanHostKeys, trustHosts, type ScannedHostKey, type TrustResult, type TrustOptions, type ScanOptions } from './trust.js';
export { splitBatches } from './batches.js';
export { sshMetrics, type SshObserver } from './metrics.js';
export { ConnectError, DEFAULT_MAX_CHANNELS_PER_HOST, DEFAULT_IDLE_CLOSE_MS, DEFAULT_KEEPALIVE_MS } from './pool.js';
export { RUN_ENV, RUN_ID_PATTERN, RunIdError } from './remote-run.js';
export { DEFAULT_MAX_TRANSFER_BYTES, type TransferOptions, type UploadOptions } from './transfer.js';
export {
  DEFAULT_LIMITS,
  DEFAULT_WINDOW,
  SshExecutor,
  type ExecutorOptions,
  type RemoteKillReport,
  type RemoteProcess,
  type RemoteRunOptions,
  type RemoteRunState,
  type RequestFor,
} from './executor.js';
