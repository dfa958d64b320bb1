// etcd membership changes a control-plane node's expansion makes, run by Castellan itself
// with etcdctl on an existing control-plane host (over SSH, like any step):
// - add_learner: `member add <name> --learner --peer-urls=<url>`, unless the cluster already
//   lists a member with that peer URL (an earlier try etcdctl gave up on may have been
//   committed: it is then listed unstarted, and is not added twice);
// - promote: `member promote <id>` of the member with that peer URL, once it has caught up
//   (etcd refuses a learner that is not yet in sync: retried); a voting member is left alone;
// - remove_learner (a rollback): `member remove <id>` of that member while it is still a
//   learner (a learner holds no vote, so removing it cannot cost quorum); a voting member is
//   not removed, and the result says so for a person to decide.
// Every try starts from `member list`, so a repeated or resumed step never changes twice.
// Refusals etcd says are passing — "unhealthy cluster" for about 5 s after a member (re)connects,
// a learner not yet in sync, a timed-out request — are retried with backoff up to `retryForMs`.
// The id is looked up at run time (etcd assigns it); the result lists every command as run.
import { parseMemberList, type EtcdListedMember } from '../etcd-health.js';
import type { HostResult } from '../host-result.js';
import { showArgv } from '../planning.js';
import { asRootArgv, defineStepKind, notRunResult, type StepIO } from './kind.js';

export type EtcdMemberOp = 'add_learner' | 'promote' | 'remove_learner';

export interface EtcdMemberAction {
  readonly kind: 'etcd_member';
  readonly op: EtcdMemberOp;
  /**
   * etcdctl with its connection flags (endpoints, TLS files) as the host runs it; no output
   * format (`member list` gets `--write-out=json`; etcdctl 3.4 panics printing `member promote`
   * as JSON, after promoting).
   */
  readonly etcdctl: readonly string[];
  readonly asRoot: boolean;
  /** The member the change is about: the name it starts with, and its peer URL (how it is found). */
  readonly name: string;
  readonly peerUrl: string;
  /** How long passing refusals are retried (backoff 0.5 s doubling to 5 s). */
  readonly retryForMs: number;
  /** Per etcdctl call. */
  readonly commandTimeoutMs: number;
}

const ID_PLACEHOLDER = '<id of the member with that peer URL>';

/** The change itself, as an approver reads it (the id is etcd's, looked up from `member list`). */
export function etcdMemberArgv(a: EtcdMemberAction): string[] {
  const base = [...a.etcdctl, 'member'];
  switch (a.op) {
    case 'add_learner':
      return [...base, 'add', a.name, '--learner', `--peer-urls=${a.peerUrl}`];
    case 'promote':
      return [...base, 'promote', ID_PLACEHOLDER];
    case 'remove_learner':
      return [...base, 'remove', ID_PLACEHOLDER];
  }
}

/** Refusals that pass on their own: worth another try after a pause. */
const PASSING = [
  /unhealthy cluster/i,
  /can only promote a learner member which is in sync with leader/i,
  /learner.*not.*(ready|in sync)/i,
  /request timed out/i,
  /context deadline exceeded/i,
  /leader changed/i,
  /no leader/i,
  /too many requests/i,
];

const OP_WORDS: Readonly<Record<EtcdMemberOp, string>> = { add_learner: 'add as a learner', promote: 'promote', remove_learner: 'remove the learner' };

type Attempt = { readonly done: true; readonly ok: boolean; readonly line: string } | { readonly done: false; readonly line: string };

export const etcdMemberKind = defineStepKind<EtcdMemberAction>({
  kind: 'etcd_member',
  command: (a, loginUser) => asRootArgv(etcdMemberArgv(a), a.asRoot, loginUser),
  async run(a, step, hosts, io) {
    const results: HostResult[] = [];
    for (const host of hosts) results.push(await changeOn(host, step.subject ?? host, a, io));
    return { results };
  },
});

async function changeOn(host: string, subject: string, a: EtcdMemberAction, io: StepIO): Promise<HostResult> {
  const started = io.now();
  const log: string[] = [];
  let pause = 500;
  for (let tries = 1; ; tries++) {
    if (io.signal.aborted) return finish(host, started, io, log, io.abortStatus(), 'stopped before the change was made');
    const attempt = await tryOnce(host, a, io, log);
    if (attempt.done) return finish(host, started, io, log, attempt.ok ? 'ok' : 'failed', attempt.line);
    const left = a.retryForMs - (io.now() - started);
    if (left <= 0) return finish(host, started, io, log, 'failed', `etcd still refused after ${tries} tries in ${Math.round((io.now() - started) / 1000)}s: ${attempt.line}`);
    log.push(`# etcd refused, passing: ${attempt.line}; trying again in ${(Math.min(pause, left) / 1000).toFixed(1)}s`);
    io.progress(subject, `${OP_WORDS[a.op]}: etcd refused (${attempt.line}); trying again`);
    await io.sleep(Math.min(pause, left));
    pause = Math.min(pause * 2, 5000);
  }
}

async function tryOnce(host: string, a: EtcdMemberAction, io: StepIO, log: string[]): Promise<Attempt> {
  const listing = await list(host, a, io, log);
  if ('attempt' in listing) return listing.attempt;
  const { members } = listing;
  const mine = members.find((m) => m.peer_urls.includes(a.peerUrl));
  const sameName = members.find((m) => m.name === a.name && !m.peer_urls.includes(a.peerUrl));
  if (sameName) return { done: true, ok: false, line: `another member is named ${a.name} (id ${sameName.id}, peer ${sameName.peer_urls.join(',')}): not changed` };
  if (mine && mine.name !== '' && mine.name !== a.name) return { done: true, ok: false, line: `peer URL ${a.peerUrl} belongs to member ${mine.name} (id ${mine.id}), not ${a.name}: not changed` };
  const state = (m: EtcdListedMember): string => `${m.learner ? 'learner' : 'voting member'}, ${m.started ? 'started' : 'not started'}`;
  log.push(`# ${members.length} member(s); ${mine ? `${a.name} is id ${mine.id} (${state(mine)})` : `${a.name} (${a.peerUrl}) is not a member`}`);
  switch (a.op) {
    case 'add_learner': {
      if (mine) return { done: true, ok: true, line: `already added (id ${mine.id}, ${state(mine)}): not added again` };
      const added = await etcdctl(host, a, ['member', 'add', a.name, '--learner', `--peer-urls=${a.peerUrl}`], io, log);
      if (added.status === 'ok') return { done: true, ok: true, line: `added ${a.name} as a learner` };
      return afterFailure(host, a, io, log, added, (m) => m !== undefined, `added ${a.name} as a learner`);
    }
    case 'promote': {
      if (!mine) return { done: true, ok: false, line: `${a.name} (${a.peerUrl}) is not a member: nothing to promote` };
      if (!mine.learner) return { done: true, ok: true, line: `${a.name} is already a voting member (id ${mine.id})` };
      const promoted = await etcdctl(host, a, ['member', 'promote', mine.id], io, log);
      const line = `promoted ${a.name} (id ${mine.id}) to a voting member`;
      return promoted.status === 'ok' ? { done: true, ok: true, line } : afterFailure(host, a, io, log, promoted, (m) => m !== undefined && !m.learner, line);
    }
    case 'remove_learner': {
      if (!mine) return { done: true, ok: true, line: `${a.name} (${a.peerUrl}) is not a member: nothing to remove` };
      if (!mine.learner) return { done: true, ok: false, line: `${a.name} (id ${mine.id}) is a voting member: not removed (that changes quorum; decide by hand: etcdctl member remove ${mine.id})` };
      const removed = await etcdctl(host, a, ['member', 'remove', mine.id], io, log);
      const line = `removed learner ${a.name} (id ${mine.id}, ${mine.started ? 'had started' : 'never started'})`;
      return removed.status === 'ok' ? { done: true, ok: true, line } : afterFailure(host, a, io, log, removed, (m) => m === undefined, line);
    }
  }
}

async function list(host: string, a: EtcdMemberAction, io: StepIO, log: string[]): Promise<{ members: EtcdListedMember[] } | { attempt: Attempt }> {
  const listed = await etcdctl(host, a, ['member', 'list', '--write-out=json'], io, log);
  if (listed.status !== 'ok') return { attempt: refusal(listed) };
  try {
    return { members: parseMemberList(listed.stdout) ?? [] };
  } catch (err) {
    return { attempt: { done: true, ok: false, line: `member list: ${err instanceof Error ? err.message : String(err)}` } };
  }
}

/**
 * A change command failed. Whether it took effect is etcd's to say, not etcdctl's exit: a
 * timed-out request may have been committed, and etcdctl 3.4 crashes printing some answers
 * after the change was made. So list again: done when the change shows; else the refusal
 * decides (passing: the next try lists first anyway).
 */
async function afterFailure(host: string, a: EtcdMemberAction, io: StepIO, log: string[], failed: HostResult, shows: (mine: EtcdListedMember | undefined) => boolean, line: string): Promise<Attempt> {
  const listing = await list(host, a, io, log);
  if (!('attempt' in listing) && shows(listing.members.find((m) => m.peer_urls.includes(a.peerUrl)))) return { done: true, ok: true, line: `${line} (etcdctl failed, but member list shows the change made)` };
  return refusal(failed);
}

/** A failed etcdctl call: passing (retry) or final, with etcd's own words. */
function refusal(r: HostResult): Attempt {
  const said = `${r.stderr}\n${r.stdout}\n${r.error ?? ''}`;
  const words = said.split('\n').map((l) => l.trim()).find((l) => l !== '' && !l.startsWith('{')) ?? r.status;
  // Not answering at all (connection lost, timed out) passes too: the next try lists again first.
  const passing = PASSING.some((p) => p.test(said)) || r.status === 'unreachable' || r.status === 'timed_out';
  return passing ? { done: false, line: words } : { done: true, ok: false, line: words };
}

async function etcdctl(host: string, a: EtcdMemberAction, args: readonly string[], io: StepIO, log: string[]): Promise<HostResult> {
  const argv = [...a.etcdctl, ...args];
  log.push(`$ ${showArgv(asRootArgv(argv, a.asRoot, io.loginUser?.(host)))}`);
  // Quiet: the step reports one outcome per host, not one per etcdctl call.
  const [r] = await io.exec([host], { argv, asRoot: a.asRoot, commandTimeoutMs: a.commandTimeoutMs, quiet: true });
  const result = r ?? notRunResult(host, 'no result', 'failed');
  if (result.status !== 'ok') log.push(`# exit ${result.exitCode ?? '-'}: ${(result.stderr.trim() || result.error) ?? result.status}`);
  return result;
}

/** One result per host: every command as run, then what came of it (the error too, when it failed). */
function finish(host: string, started: number, io: StepIO, log: readonly string[], status: HostResult['status'], line: string): HostResult {
  const base = notRunResult(host, status === 'ok' ? '' : line, status);
  return { ...base, exitCode: status === 'ok' ? 0 : null, stdout: `${[...log, line].join('\n')}\n`, durationMs: io.now() - started };
}
