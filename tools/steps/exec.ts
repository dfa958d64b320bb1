// Run one argv on each host (optionally as root, optionally with stdin). The executor quotes.
import { asRootArgv, defineStepKind } from './kind.js';

export interface ExecAction {
  readonly kind: 'exec';
  readonly argv: readonly string[];
  readonly asRoot: boolean;
  readonly stdin?: string | undefined;
  /** Shorter connect timeout than the configured one (reachability probes). */
  readonly connectTimeoutMs?: number | undefined;
}

export const execKind = defineStepKind<ExecAction>({
  kind: 'exec',
  command: (a, loginUser) => asRootArgv(a.argv, a.asRoot, loginUser),
  details: (a) => (a.stdin !== undefined ? { stdin: a.stdin } : {}),
  async run(a, step, hosts, io) {
    return { results: await io.exec(hosts, { argv: a.argv, asRoot: a.asRoot, stdin: a.stdin, commandTimeoutMs: step.timeoutMs, connectTimeoutMs: a.connectTimeoutMs }) };
  },
});
