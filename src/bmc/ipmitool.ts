// ipmitool for bmc_power's `ipmi` steps, from the Castellan server or over SSH on a jump host.
// On the server the password reaches ipmitool only through IPMI_PASSWORD in a minimal
// environment (`-E` is in the plan's args); on a jump host only on its stdin (`-f /dev/stdin`),
// so it is never in an argv that `ps` shows, never in the plan, the job or the audit. ipmitool runs
// with -v so its stderr says why a session failed; that decides the host status: the BMC
// refusing the user or password is `auth_failed`, a BMC that never answers `unreachable`.
import { spawn } from 'node:child_process';
import type { ExecEvent, ExecRequest, HostResult, HostStatus } from '../ssh/types.js';
import { waitForGroup } from '../local/process-group.js';

export interface IpmiRun {
  readonly host: string;
  /** The plan's args (after `ipmitool`). */
  readonly args: readonly string[];
  readonly password: string | undefined;
  readonly credential: string;
  readonly timeoutMs: number;
}

export interface IpmiEnvironment {
  readonly binary: string;
  readonly maxOutputBytes: number;
  readonly killGraceMs: number;
}

export interface IpmiCallOptions {
  readonly signal?: AbortSignal | undefined;
  readonly onEvent?: ((event: ExecEvent) => void) | undefined;
  readonly abortStatus?: (() => HostStatus) | undefined;
}

const AUTH_REFUSED = /RAKP 2 HMAC is invalid|unauthorized name|insufficient resources for session|invalid authentication algorithm|Activate Session command failed|Authentication type .* not supported|password is invalid/i;
const NO_ANSWER = /Get Auth Capabilities error|No response from remote controller|Unable to get Channel Authentication Capabilities|Address lookup for .* failed|unable to resolve/i;

/** ipmitool's stderr without its -v chatter, for error messages. */
function diagnostics(stderr: string): string[] {
  return stderr
    .split('\n')
    .map((l) => l.replace(/^>\s*/, '').trim())
    .filter((l) => l !== '' && !/^Loading IANA PEN Registry/.test(l) && !/^Running Get PICMG Properties/.test(l));
}

/** How a finished ipmitool run reads as a host result. */
export function ipmiOutcome(host: string, code: number | null, signal: string | null, stdout: string, stderr: string): Pick<HostResult, 'status' | 'error'> {
  if (code === 0) return { status: 'ok' };
  const lines = diagnostics(stderr);
  const why = lines.filter((l) => !/^Error: Unable to establish/.test(l)).join('; ') || lines.join('; ');
  if (AUTH_REFUSED.test(stderr)) return { status: 'auth_failed', error: `the BMC of ${host} refused the user or password${why ? ` (${why})` : ''}` };
  if (NO_ANSWER.test(stderr)) return { status: 'unreachable', error: `the BMC of ${host} did not answer${why ? ` (${why})` : ''}` };
  return { status: 'failed', error: `ipmitool exited ${code ?? signal ?? '?'}${why ? `: ${why}` : ''}` };
}

export async function runIpmitool(run: IpmiRun, env: IpmiEnvironment, options: IpmiCallOptions = {}): Promise<HostResult> {
  const startedAt = new Date().toISOString();
  const started = Date.now();
  const base = { host: run.host, signal: null, truncated: false, startedAt, connectMs: 0 };
  options.onEvent?.({ type: 'host_started', host: run.host });
  const finish = (result: HostResult): HostResult => {
    options.onEvent?.({ type: 'host_finished', host: run.host, result });
    return result;
  };
  if (run.password === undefined) {
    return finish(ipmiNotStarted(run.host, missingCredential(run.credential)));
  }
  // -v goes first so the verdict above can read why a session failed; it changes no stdout.
  const child = spawn(env.binary, ['-v', ...run.args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', IPMI_PASSWORD: run.password },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  let truncated = false;
  const keep = (text: string, chunk: string): string => {
    if (text.length + chunk.length <= env.maxOutputBytes) return text + chunk;
    truncated = true;
    return (text + chunk).slice(0, env.maxOutputBytes);
  };
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    stdout = keep(stdout, chunk);
    options.onEvent?.({ type: 'output', host: run.host, stream: 'stdout', chunk });
  });
  child.stderr.on('data', (chunk: string) => {
    stderr = keep(stderr, chunk);
  });
  const { code, signal, stopped, spawnError } = await waitForGroup(child, { signal: options.signal, abortStatus: options.abortStatus, timeoutMs: run.timeoutMs, killGraceMs: env.killGraceMs });
  if (spawnError !== undefined) stderr += `${spawnError}\n`;
  const durationMs = Date.now() - started;
  const shownErr = diagnostics(stderr).join('\n');
  if (stopped) return finish({ ...base, status: stopped, exitCode: null, signal, stdout, stderr: shownErr, truncated, durationMs, error: stopped === 'timed_out' ? `ipmitool did not finish within ${run.timeoutMs} ms` : 'ipmitool was stopped' });
  const outcome = ipmiOutcome(run.host, code, signal, stdout, stderr);
  return finish({ ...base, ...outcome, exitCode: code, signal, stdout, stderr: shownErr, truncated, durationMs });
}

/** What `ipmitool -f` reads: the first line, at most 20 bytes (IPMI 2.0's limit; ipmitool cuts the rest). */
const STDIN_PASSWORD_BYTES = 20;

/**
 * The request that runs ipmitool on a jump host: `-v` first (as on the server, for the
 * verdict), the password as the one line of stdin that `-f /dev/stdin` reads. A password
 * ipmitool would cut (a line break, more than 20 bytes) is refused rather than sent cut,
 * which the BMC would only answer with a confusing auth failure.
 */
export function jumpHostRequest(args: readonly string[], password: string, runId: string): ExecRequest | { refused: string } {
  if (/[\r\n\t]/.test(password) || Buffer.byteLength(password) > STDIN_PASSWORD_BYTES) {
    return { refused: `ipmitool -f reads at most ${STDIN_PASSWORD_BYTES} bytes on one line; this password is longer or has a line break` };
  }
  return { argv: ['ipmitool', '-v', ...args], asRoot: false, stdin: `${password}\n`, runId };
}

/**
 * How ipmitool run over SSH reads: the SSH layer's own verdicts stand (jump host unreachable,
 * host key, cancelled, timed out); an exit of ipmitool itself is read as on the server.
 */
export function jumpHostOutcome(about: string, result: HostResult): HostResult {
  const shownErr = diagnostics(result.stderr).join('\n');
  if (result.status !== 'failed' || result.exitCode === null) return { ...result, stderr: shownErr };
  return { ...result, ...ipmiOutcome(about, result.exitCode, result.signal, result.stdout, result.stderr), stderr: shownErr };
}

/** A result for a run that never started (no credential, a password ipmitool could not read). */
function ipmiNotStarted(host: string, error: string): HostResult {
  return { host, status: 'failed', exitCode: null, signal: null, stdout: '', stderr: '', truncated: false, startedAt: new Date().toISOString(), durationMs: 0, connectMs: 0, error };
}

export function missingCredential(credential: string): string {
  return `no BMC credential '${credential}' is configured (bmc.credentials in castellan.yaml)`;
}
