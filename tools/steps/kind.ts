// What a step kind is. A plan step carries an action — pure data, hashed and shown to
// approvers — and the kind named by `action.kind` knows three things about it: how it reads
// (the argv an approver sees and the audit records), what else a reader needs to see (stdin,
// a gate's check), and how it runs, written against `StepIO` so it needs neither SSH nor
// Redis. Adding a kind is one module in tools/steps/ plus one line in its index.
import type { HostResult, HostStatus } from '../host-result.js';
import type { Plan, PlanStep, StepResults } from '../types.js';

export interface ExecRequestSpec {
  readonly argv: readonly string[];
  readonly asRoot: boolean;
  readonly stdin?: string | undefined;
  readonly commandTimeoutMs: number;
  readonly connectTimeoutMs?: number | undefined;
  /** No per-host progress events: the kind runs several commands and reports one outcome itself. */
  readonly quiet?: boolean | undefined;
}

/** What a read check saw: the tool's summarized data and the raw per-step, per-host results. */
export interface Observation {
  readonly tool: string;
  readonly data: unknown;
  readonly results: StepResults;
}

/** A gate condition's judgement of one subject. `failed` ends the gate at once (no point waiting). */
export interface Verdict {
  readonly state: 'holds' | 'waiting' | 'failed';
  /** One line an operator reads: what was seen (`w1: Ready, cordoned, 3 pods left`). */
  readonly observed: string;
}

/** A named predicate over a read tool's observation, declared by that tool (or generic, in gate.ts). */
export interface ConditionDefinition {
  /** Human text for plans: `node w1 is Ready and schedulable`. */
  describe(args: ConditionArgs, subject: string | undefined): string;
  judge(observation: Observation, subject: string, args: ConditionArgs): Verdict;
}

export type ConditionArgs = Readonly<Record<string, string | number | boolean>>;

/** Per-subject record of a gate: how it ended and the last thing it saw. */
export interface GateObservation {
  readonly subject: string;
  readonly state: Verdict['state'] | 'timed_out' | 'stopped';
  readonly observed: string;
  readonly polls: number;
  readonly waitedMs: number;
  /** The check's data at the last poll (structured, for clients that want more than the line). */
  readonly data?: unknown;
}

export interface IpmiRequest {
  /** Where the result belongs: the node itself, or its jump host when `via`. */
  readonly host: string;
  /** The node whose BMC this is (error messages name it). */
  readonly about: string;
  readonly args: readonly string[];
  readonly credential: string;
  /** Run on `host` over SSH, the password on stdin; else on the server, the password in IPMI_PASSWORD. */
  readonly via: boolean;
  readonly timeoutMs: number;
}

/** What a kind may do while it runs. The job runner implements it over the SSH executor. */
export interface StepIO {
  /** `<job>.<step>`: each host's remote run is tagged `<job>.<step>.<host>` (hostRunId) so it can be found and killed. */
  readonly runId: string;
  readonly signal: AbortSignal;
  /** Status for hosts stopped by the job's abort (cancelled, or timed_out at the job deadline). */
  abortStatus(): HostStatus;
  /** The user a host is logged in as (what `as root` runs as there: asRootArgv). */
  loginUser?(host: string): string;
  exec(hosts: readonly string[], request: ExecRequestSpec): Promise<HostResult[]>;
  upload(hosts: readonly string[], localPath: string, remotePath: string, mode: number | undefined): Promise<HostResult[]>;
  download(hosts: readonly string[], remotePath: string, localDir: string): Promise<HostResult[]>;
  relay(fromHost: string, remotePath: string, hosts: readonly string[], destPath: string): Promise<HostResult[]>;
  /** Run ansible-playbook from the Castellan server with these plan-fixed args (absent: this worker cannot). */
  playbook?(hosts: readonly string[], args: readonly string[], timeoutMs: number): Promise<HostResult[]>;
  /**
   * Run ipmitool with these plan-fixed args, the password of `credential` handed over at run
   * time: on the server (`host` is the node) or, `via`, over SSH on `host` (absent: this worker cannot).
   */
  ipmi?(run: IpmiRequest): Promise<HostResult>;
  /** Pin each host's key in known_hosts if it has exactly this fingerprint (absent: this worker cannot). */
  pinHostKey?(hosts: readonly string[], fingerprint: string): Promise<HostResult[]>;
  /** Run a read tool's embedded plan once (only on `hosts` when given) and summarize it. */
  observe(check: { readonly tool: string; readonly input: unknown; readonly plan: Plan }, hosts?: readonly string[]): Promise<Observation>;
  /** The condition `name` of read tool `tool`, or a generic one; undefined when neither has it. */
  condition(tool: string, name: string): ConditionDefinition | undefined;
  /** A progress line for people following the job (a gate's poll). */
  progress(subject: string, text: string): void;
  sleep(ms: number): Promise<void>;
  now(): number;
}

export interface StepRun {
  readonly results: readonly HostResult[];
  /** Gates: the last observation per subject. */
  readonly observations?: readonly GateObservation[] | undefined;
}

/**
 * What runs for `argv` on a host: as root (`asRoot`) through `sudo -n --`, unless the login
 * user is root already — a root login runs it directly (and minimal nodes lack sudo). The one
 * rule for the remote command line (src/ssh/remote-run.ts) and for what people are shown.
 * `loginUser` unknown (a plan not bound to hosts yet): the sudo form, what most logins run.
 */
export function asRootArgv(argv: readonly string[], asRoot: boolean, loginUser?: string): string[] {
  return asRoot && loginUser !== 'root' ? ['sudo', '-n', '--', ...argv] : [...argv];
}

export interface StepKind<A extends { readonly kind: string }> {
  readonly kind: A['kind'];
  /**
   * The argv as it will run (or a transfer written like a command) for a host whose login user
   * is `loginUser` (asRootArgv): approvals and audit show this.
   */
  command(action: A, loginUser?: string): string[];
  /** Extra, kind-specific facts a reader must see before approving (stdin, a gate's check). */
  details?(action: A): Record<string, unknown>;
  run(action: A, step: PlanStep, hosts: readonly string[], io: StepIO): Promise<StepRun>;
}

/** Keeps the action type for inference in kind modules. */
export function defineStepKind<A extends { readonly kind: string }>(kind: StepKind<A>): StepKind<A> {
  return kind;
}

export function notRunResult(host: string, error: string, status: HostStatus): HostResult {
  return { host, status, exitCode: null, signal: null, stdout: '', stderr: '', truncated: false, startedAt: new Date().toISOString(), durationMs: 0, connectMs: 0, error: error || undefined };
}
