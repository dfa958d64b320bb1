// The etcd_member step kind (tools/steps/etcd-member.ts) against scripted etcdctl answers: the
// words are etcd 3.4.23's (Debian bookworm's etcd-server/etcd-client), as the node-expand
// integration test meets them against a real cluster; here the timing cases a real cluster
// produces only by chance (a 5 s "unhealthy cluster" window, a learner slow to catch up, a
// change etcdctl crashed after making) are made to happen every time, on a fake clock.
import { describe, expect, it } from 'vitest';
import type { HostResult } from '../../tools/host-result.js';
import { etcdMemberKind, type EtcdMemberAction } from '../../tools/steps/etcd-member.js';
import { notRunResult, type ExecRequestSpec, type StepIO } from '../../tools/steps/kind.js';
import type { PlanStep } from '../../tools/types.js';

const PEER = 'http://10.0.0.4:2380';
const action = (op: EtcdMemberAction['op'], retryForMs = 60_000): EtcdMemberAction => ({ kind: 'etcd_member', op, etcdctl: ['etcdctl', '--endpoints=http://10.0.0.1:2379'], asRoot: false, name: 'cp4', peerUrl: PEER, retryForMs, commandTimeoutMs: 30_000 });
const step = (a: EtcdMemberAction): PlanStep => ({ id: `etcd-${a.op}`, subject: 'cp4', description: '', hosts: ['cp1'], action: a, timeoutMs: 120_000 });

// `etcdctl member list -w json`, ids in decimal as etcdctl prints them.
const voter = { ID: '10276657743932975437', name: 'cp1', peerURLs: ['http://10.0.0.1:2380'], clientURLs: ['http://10.0.0.1:2379'] };
const list = (...extra: object[]): string => JSON.stringify({ header: { cluster_id: '14841639068965178418', member_id: '10276657743932975437', raft_term: 2 }, members: [voter, ...extra] }).replace(/"(ID|cluster_id|member_id)":"?(\d+)"?/g, '"$1":$2');
// 1945597398932735019 is 1b002686af4f442b in hex.
const learner = (started: boolean): object => ({ ID: '1945597398932735019', ...(started ? { name: 'cp4', clientURLs: ['http://10.0.0.4:2379'] } : {}), peerURLs: [PEER], isLearner: true });
const promoted = { ID: '1945597398932735019', name: 'cp4', peerURLs: [PEER], clientURLs: ['http://10.0.0.4:2379'] };

type Answer = { code: number; stdout?: string; stderr?: string };

/** A StepIO whose etcdctl answers come from `script` (by subcommand, in order), on a fake clock. */
function scripted(script: Record<string, Answer[]>) {
  let now = 0;
  const ran: string[] = [];
  const io: StepIO = {
    runId: 'j.s',
    signal: new AbortController().signal,
    abortStatus: () => 'cancelled',
    async exec(hosts, r: ExecRequestSpec): Promise<HostResult[]> {
      const words = r.argv.slice(2);
      const key = `${words[0]} ${words[1]}`;
      ran.push(words.join(' '));
      const a = script[key]?.shift();
      if (!a) throw new Error(`unscripted etcdctl ${key}`);
      now += 200;
      return hosts.map((h) => ({ ...notRunResult(h, a.code === 0 ? '' : `exit ${a.code}`, a.code === 0 ? 'ok' : 'failed'), exitCode: a.code, stdout: a.stdout ?? '', stderr: a.stderr ?? '' }));
    },
    upload: () => Promise.reject(new Error('no')),
    download: () => Promise.reject(new Error('no')),
    relay: () => Promise.reject(new Error('no')),
    observe: () => Promise.reject(new Error('no')),
    condition: () => undefined,
    progress: () => undefined,
    sleep: (ms) => {
      now += ms;
      return Promise.resolve();
    },
    now: () => now,
  };
  return { io, ran, clock: () => now };
}

const UNHEALTHY = { code: 1, stderr: '{"level":"warn","msg":"retrying of unary invoker failed"}\nError: etcdserver: unhealthy cluster\n' };
const NOT_IN_SYNC = { code: 1, stderr: 'Error: etcdserver: can only promote a learner member which is in sync with leader\n' };

async function run(a: EtcdMemberAction, script: Record<string, Answer[]>) {
  const s = scripted(script);
  const { results } = await etcdMemberKind.run(a, step(a), ['cp1'], s.io);
  return { result: results[0]!, ran: s.ran, elapsed: s.clock() };
}

describe('etcd_member step', () => {
  it('adds a learner, retrying "unhealthy cluster" with backoff, listing first each time', async () => {
    const { result, ran } = await run(action('add_learner'), { 'member list': [{ code: 0, stdout: list() }, { code: 0, stdout: list() }, { code: 0, stdout: list() }, { code: 0, stdout: list() }], 'member add': [UNHEALTHY, { code: 0, stdout: 'Member 1b002686af4f442b added to cluster\n' }] });
    expect(result.status).toBe('ok');
    expect(ran).toEqual(['member list --write-out=json', 'member add cp4 --learner --peer-urls=http://10.0.0.4:2380', 'member list --write-out=json', 'member list --write-out=json', 'member add cp4 --learner --peer-urls=http://10.0.0.4:2380']);
    expect(result.stdout).toContain('# etcd refused, passing: Error: etcdserver: unhealthy cluster; trying again in 0.5s\n');
    expect(result.stdout).toMatch(/added cp4 as a learner\n$/);
  });

  it('does not add a member etcd already lists (unstarted), and refuses a peer URL another member has', async () => {
    const again = await run(action('add_learner'), { 'member list': [{ code: 0, stdout: list(learner(false)) }] });
    expect(again.result.status).toBe('ok');
    expect(again.ran).toEqual(['member list --write-out=json']);
    expect(again.result.stdout).toMatch(/already added \(id 1b002686af4f442b, learner, not started\): not added again\n$/);
    const taken = await run(action('add_learner'), { 'member list': [{ code: 0, stdout: list({ ...promoted, name: 'cp9' }) }] });
    expect(taken.result).toMatchObject({ status: 'failed', error: 'peer URL http://10.0.0.4:2380 belongs to member cp9 (id 1b002686af4f442b), not cp4: not changed' });
  });

  it('promotes once the learner is in sync; a crash of etcdctl after the change counts when member list shows it', async () => {
    const { result, ran } = await run(action('promote'), {
      'member list': [{ code: 0, stdout: list(learner(true)) }, { code: 0, stdout: list(learner(true)) }, { code: 0, stdout: list(learner(true)) }, { code: 0, stdout: list(promoted) }],
      'member promote': [NOT_IN_SYNC, { code: 2, stderr: 'panic: runtime error: invalid memory address or nil pointer dereference\n' }],
    });
    expect(ran).toEqual(['member list --write-out=json', 'member promote 1b002686af4f442b', 'member list --write-out=json', 'member list --write-out=json', 'member promote 1b002686af4f442b', 'member list --write-out=json']);
    expect(result).toMatchObject({ status: 'ok' });
    expect(result.stdout).toMatch(/promoted cp4 \(id 1b002686af4f442b\) to a voting member \(etcdctl failed, but member list shows the change made\)\n$/);
  });

  it('gives up after retry_for with etcd\'s words, and fails at once on a refusal that does not pass', async () => {
    const lists = Array.from({ length: 40 }, () => ({ code: 0, stdout: list(learner(true)) }));
    const slow = await run(action('promote', 10_000), { 'member list': lists, 'member promote': Array.from({ length: 40 }, () => NOT_IN_SYNC) });
    expect(slow.result.status).toBe('failed');
    expect(slow.result.error).toMatch(/^etcd still refused after \d+ tries in 1\ds: Error: etcdserver: can only promote a learner member which is in sync with leader$/);
    expect(slow.elapsed).toBeLessThan(12_000);
    const bad = await run(action('add_learner'), { 'member list': [{ code: 0, stdout: list() }, { code: 0, stdout: list() }], 'member add': [{ code: 1, stderr: 'Error: etcdserver: Peer URLs already exists\n' }] });
    expect(bad.result).toMatchObject({ status: 'failed', error: 'Error: etcdserver: Peer URLs already exists' });
  });

  it('removes a learner (it holds no vote) but never a voting member', async () => {
    const gone = await run(action('remove_learner'), { 'member list': [{ code: 0, stdout: list(learner(false)) }], 'member remove': [{ code: 0 }] });
    expect(gone.result.status).toBe('ok');
    expect(gone.result.stdout).toMatch(/removed learner cp4 \(id 1b002686af4f442b, never started\)\n$/);
    const voting = await run(action('remove_learner'), { 'member list': [{ code: 0, stdout: list(promoted) }] });
    expect(voting.result).toMatchObject({ status: 'failed', error: 'cp4 (id 1b002686af4f442b) is a voting member: not removed (that changes quorum; decide by hand: etcdctl member remove 1b002686af4f442b)' });
    expect(voting.ran).toEqual(['member list --write-out=json']);
    const none = await run(action('remove_learner'), { 'member list': [{ code: 0, stdout: list() }] });
    expect(none.result.stdout).toMatch(/cp4 \(http:\/\/10\.0\.0\.4:2380\) is not a member: nothing to remove\n$/);
  });
});
