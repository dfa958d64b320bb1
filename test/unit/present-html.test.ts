// The HTML renderer of the shared job view (src/present/render/html.ts): it shows what the view
// says (summary, next step, exact commands, script size and sha256, votes, per-host status,
// folded output, event lines in the terminal's words), with untrusted text escaped and its
// control characters visible.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { StampedEvent } from '../../queues/events.js';
import type { JobRecord } from '../../queues/records.js';
import { jobView } from '../../src/present/job-view.js';
import { approvalCard, factsList, jobRow, logLines, nodeGrid, planCard, progressNote, resultSection, summaryBlock, timeline } from '../../src/present/render/html.js';
import { jobOutcome, outcomeText } from '../../src/present/render/mcp.js';
import { slackJobMessage } from '../../src/present/render/slack.js';
import { eventText, jobText, planText } from '../../src/present/render/text.js';

const SCRIPT = 'echo "<script>alert(1)</script>"\nrm -rf /tmp/x\u202e\n';

const record = (over: Partial<JobRecord> = {}): JobRecord => ({
  id: 'jtest0001abcd',
  tool: 'exec',
  risk: 'destructive',
  input: { targets: 'node[01-03]' },
  plan: {
    tool: 'exec',
    hosts: ['node01', 'node02', 'node03'],
    failureBudget: 1,
    batches: [
      { steps: [{ id: 'run', description: 'run the script', hosts: ['node01', 'node02'], timeoutMs: 60_000, action: { kind: 'exec', asRoot: true, argv: ['sh', '-s', 'a\u001bb'], stdin: SCRIPT } }] },
      { steps: [{ id: 'run', description: 'run the script', hosts: ['node03'], timeoutMs: 60_000, action: { kind: 'exec', asRoot: true, argv: ['sh', '-s', 'a\u001bb'], stdin: SCRIPT } }] },
    ],
  },
  planHash: 'abcdef0123456789abcdef',
  requester: { subject: 'oscar', displayName: 'Oscar <b>Op</b>', groups: ['ops'], roles: ['operator'], origin: 'cli' },
  replyTo: { kind: 'cli' },
  createdAt: '2026-11-29T05:00:00.000Z',
  approvalsRequired: 2,
  expiresAt: Date.parse('2026-11-29T05:15:00.000Z'),
  timeoutMs: 600_000,
  state: 'awaiting_approval',
  votes: [{ subject: 'april', displayName: 'April', origin: 'dashboard', decision: 'approve', at: '2026-11-29T05:01:00.000Z', planHash: 'abcdef0123456789abcdef' }],
  updatedAt: '2026-11-29T05:01:00.000Z',
  attempt: 0,
  ...over,
});

const places = { publicUrl: 'https://castellan.example' };

describe('HTML of a job view', () => {
  it('says what the view says: summary, next step with where to approve, M of N and the votes', () => {
    const view = jobView(record(), { places });
    const said: [string, string[]][] = [
      [summaryBlock(view).value, ['exec on node[01-03] (3 hosts) waits for approval (1 of 2)', 'needs 1 more approval from someone with the approver role other than Oscar &lt;b&gt;Op&lt;/b&gt;', 'https://castellan.example/ui/jobs/jtest0001abcd']],
      [approvalCard(view).value, ['<strong>1 of 2</strong>', 'approved</span> by April', 'data-countdown="2026-11-29T05:15:00.000Z"']],
    ];
    for (const [markup, phrases] of said) for (const phrase of phrases) expect(markup).toContain(phrase);
    expect(factsList(view).value).toContain('Oscar &lt;b&gt;Op&lt;/b&gt;');
  });

  it('says the requester may approve too where self-approval is allowed (castellan up\'s lab)', () => {
    const view = jobView(record(), { places: { ...places, selfApproval: true } });
    expect(view.next.text).toBe('needs 1 more approval from someone with the approver role (Oscar <b>Op</b> too: self-approval is allowed here)');
    expect(jobView(record(), { places: { ...places, selfApproval: false } }).next.text).toMatch(/other than Oscar/);
  });

  it('does not repeat a host\'s status when its error starts with it', () => {
    const finished = (status: 'cancelled' | 'timed_out' | 'failed', error: string | undefined, exitCode: number | null): StampedEvent => ({ id: '1-0', at: 0, event: { type: 'host_finished', step: 'run', host: 'node01', status, exitCode, durationMs: 4700, ...(error !== undefined ? { error } : {}) } });
    expect(eventText(finished('cancelled', 'cancelled; remote run stopped (terminated)', null), { color: false })).toBe('node01: cancelled: remote run stopped (terminated) (4.7 s)');
    expect(eventText(finished('timed_out', 'command timeout after 1500 ms; remote run stopped (killed)', null), { color: false })).toBe('node01: timed out: command timeout after 1500 ms; remote run stopped (killed) (4.7 s)');
    expect(eventText(finished('failed', undefined, 2), { color: false })).toBe('node01: failed exit 2 (4.7 s)');
    // Nor the exit code twice.
    expect(eventText(finished('failed', 'exit code 2', 2), { color: false })).toBe('node01: failed exit 2 (4.7 s)');
    expect(eventText(finished('failed', 'sudo needs a password here', 1), { color: false })).toBe('node01: failed exit 1: sudo needs a password here (4.7 s)');
  });

  it('shows each step with the exact command, the whole script escaped, and the sha256 the view computed', () => {
    const view = jobView(record(), { places });
    const plan = planCard(view.plan).value;
    expect(plan).toContain('2 batches');
    expect(plan).toContain(view.plan.batches[0]!.steps[0]!.command_display.replaceAll("'", '&#39;'));
    expect(plan).toContain("$&#39;a\\eb&#39;");
    expect(plan).not.toContain('<script>');
    expect(plan).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(plan).toContain('\\u{202e}');
    const sha = createHash('sha256').update(SCRIPT).digest('hex');
    expect(plan).toContain(`title="${sha}"`);
    expect(plan).toContain(`${Buffer.byteLength(SCRIPT)} bytes`);
  });

  it('a rolling plan\'s stop rule is in the shared view, in the same words in every front end', () => {
    const view = jobView(record(), { places });
    const rule = 'once more than 1 node(s)/host(s) have failed (rolled-back ones count), the remaining batches are skipped';
    expect(view.plan.stop_rule).toBe(rule);
    expect(planCard(view.plan).value).toContain(`<strong>Stop rule:</strong> ${rule}.`);
    expect(planText(view.plan, { color: false })).toContain(`  stop rule: ${rule}`);
    expect(JSON.stringify(slackJobMessage(view, 'card', 'https://castellan.example').blocks)).toContain(`stop rule: ${rule}`);
    const answer = jobOutcome(record(), places);
    expect(answer.content.plan.stop_rule).toBe(rule);
    expect(outcomeText(answer)).toContain(`stop rule: ${rule}`);
    // One batch has nothing to stop: no rule anywhere.
    const single = jobView(record({ plan: { ...record().plan, batches: record().plan.batches.slice(0, 1) } }), { places });
    expect(single.plan.stop_rule).toBeUndefined();
    expect(planCard(single.plan).value).not.toContain('Stop rule');
  });

  it('colours the node × batch grid from the events while it runs, and from the result once it ended', () => {
    const running = jobView(record({ state: 'running', startedAt: '2026-11-29T05:02:00.000Z' }));
    const events: StampedEvent[] = [
      { id: '1-0', at: Date.parse('2026-11-29T05:02:01Z'), event: { type: 'host_started', step: 'run', host: 'node01' } },
      { id: '2-0', at: Date.parse('2026-11-29T05:02:02Z'), event: { type: 'host_finished', step: 'run', host: 'node02', status: 'failed', exitCode: 3, durationMs: 1200 } },
    ];
    const grid = nodeGrid(running, events).value;
    expect(grid).toContain('data-host="node01" data-status="running"');
    expect(grid).toContain('data-host="node02" data-status="failed"');
    expect(grid).toContain('data-host="node03" data-status="pending"');
    // node03 is in the second batch: its cell is in the second column.
    expect(grid).toMatch(/<th scope="row">node03<\/th><td class="cell empty">.*?<\/td><td class="cell tone-wait" data-host="node03"/);

    const done = jobView(record({
      state: 'partially_failed',
      startedAt: '2026-11-29T05:02:00.000Z',
      finishedAt: '2026-11-29T05:02:09.000Z',
      result: {
        hosts: [
          { host: 'node01', status: 'ok', step: 'run', exitCode: 0, stdout: 'fine\n', stderr: '', durationMs: 900, truncated: false },
          { host: 'node02', status: 'ok', step: 'run', exitCode: 0, stdout: 'fine\n', stderr: '', durationMs: 800, truncated: false },
          { host: 'node03', status: 'unreachable', step: 'run', exitCode: null, stdout: '', stderr: '', durationMs: 5000, truncated: false, error: 'connect \u001b[31mrefused' },
        ],
        folded: [
          { nodeset: 'node[01-02]', count: 2, status: 'ok', text: 'fine\n' },
          { nodeset: 'node03', count: 1, status: 'unreachable', text: '' },
        ],
      } as unknown as JobRecord['result'],
    }));
    expect(nodeGrid(done, events).value).toContain('data-host="node02" data-status="ok"');
    const result = resultSection(done).value;
    expect(result).toContain('<code>node[01-02]</code>');
    expect(result).toContain('(2 hosts)');
    expect(result).toContain('connect \\x1b[31mrefused');
    const row = jobRow(done).value;
    expect(row).toContain('2 ok</span> · <span class="count tone-text-bad">1 unreachable');
    expect(row).toContain('9.0 s');
  });

  it('says a host\'s error once: in its folded group, not again per host', () => {
    const error = 'cancelled; remote run stopped (terminated)';
    const host = (name: string) => ({ host: name, status: 'cancelled', step: 'run', exitCode: null, stdout: '', stderr: '', durationMs: 4100, truncated: false, error });
    const view = jobView(record({
      state: 'cancelled',
      startedAt: '2026-11-29T05:02:00.000Z',
      finishedAt: '2026-11-29T05:02:05.000Z',
      result: {
        hosts: [host('node01'), host('node02'), { ...host('node03'), error: 'connect refused' }],
        folded: [
          { nodeset: 'node[01-02]', count: 2, status: 'cancelled', text: error },
          { nodeset: 'node03', count: 1, status: 'unreachable', text: '' },
        ],
      } as unknown as JobRecord['result'],
    }));
    const text = jobText(view, { color: false });
    expect(text).toContain(`node[01-02] (2) [cancelled]: ${error}`);
    expect(text).not.toContain(`node01: ${error}`);
    // An error no group shows is still said.
    expect(text).toContain('node03: connect refused');
  });

  it('words the timeline as the terminal does', () => {
    const events: StampedEvent[] = [
      { id: '1-0', at: Date.parse('2026-11-29T05:02:00Z'), event: { type: 'state', state: 'running' } },
      { id: '2-0', at: Date.parse('2026-11-29T05:02:02Z'), event: { type: 'host_finished', step: 'run', host: 'node<02>', status: 'ok', exitCode: 0, durationMs: 1200 } },
      { id: '3-0', at: Date.parse('2026-11-29T05:02:03Z'), event: { type: 'output', step: 'run', host: 'node02', stream: 'stdout', text: 'not a timeline line' } },
    ];
    const html = timeline(events).value;
    expect(html).toContain(eventText(events[0]!, { color: false })!.replace('» ', ''));
    expect(html).toContain('node&lt;02&gt;: ok (1.2 s)');
    expect(html).not.toContain('not a timeline line');
  });

  it('keeps hosts\' log lines whole when output chunks end mid-line', () => {
    const out = (id: string, host: string, text: string): StampedEvent => ({ id, at: 0, event: { type: 'output', step: 'run', host, stream: 'stdout', text } });
    const log = logLines([out('1-0', 'node01', 'tick-1 aa'), out('2-0', 'node02', 'tock-1\n'), out('3-0', 'node01', 'aa\ntick-2\n')]);
    expect(log).toBe('node02: tock-1\nnode01: tick-1 aaaa\nnode01: tick-2\n');
  });

  it('draws the tool\'s result view as a table: alike hosts folded, its words and units, raw output folded away', () => {
    const host = (name: string, status: 'ok' | 'unreachable', latency: number) => ({ host: name, status, step: 'ping', exitCode: status === 'ok' ? 0 : null, stdout: '', stderr: '', durationMs: latency, truncated: false });
    const view = jobView(record({
      tool: 'ping',
      risk: 'read',
      approvalsRequired: 0,
      votes: [],
      state: 'partially_failed',
      result: {
        hosts: [host('node01', 'ok', 12), host('node02', 'ok', 31), host('node03', 'unreachable', 5000)],
        folded: [{ nodeset: 'node[01-02]', count: 2, status: 'ok', text: '' }],
        data: {
          hosts: [
            { host: 'node01', status: 'ok', reachable: true, latency_ms: 12, connect_ms: 5 },
            { host: 'node02', status: 'ok', reachable: true, latency_ms: 31, connect_ms: 6 },
            { host: 'node03', status: 'unreachable', reachable: false, latency_ms: 5000, connect_ms: 5000, error: 'connect <refused>' },
          ],
        },
      } as unknown as JobRecord['result'],
    }));
    expect(view.result?.view).toBeDefined();
    const html = resultSection(view).value;
    expect(html).toContain('data-result-table');
    expect(html).toContain(view.result!.view!.summary.replaceAll('<', '&lt;').replaceAll('>', '&gt;'));
    expect(html).toMatch(/<th scope="row"><code>node\[01-02\]<\/code> <span class="muted">\(2\)<\/span><\/th>/);
    expect(html).toContain('p50 12 ms  max 31 ms');
    expect(html).toContain('connect &lt;refused&gt;');
    expect(html).toContain('<details class="raw">');
  });
});

describe('a rollback running after a cancel, in the shared view', () => {
  const at = (n: number): number => Date.parse('2026-11-29T05:02:00Z') + n * 1000;
  const events: StampedEvent[] = [
    { id: '1-0', at: at(1), event: { type: 'batch', index: 0, total: 2, hosts: ['node01', 'node02'] } },
    { id: '2-0', at: at(2), event: { type: 'step', step: 'run', description: 'run the script', hosts: ['node01', 'node02'] } },
    { id: '3-0', at: at(3), event: { type: 'host_finished', step: 'run', host: 'node02', status: 'cancelled', exitCode: null, durationMs: 900 } },
    {
      id: '4-0',
      at: at(4),
      event: { type: 'step', step: 'rb-activate-node02', description: 'on failure of node02: roll back: boot pre-upgrade-20261129-050000 next: sudo kbe activate pre-upgrade-20261129-050000', hosts: ['node02'], rollbackFor: 'node02' },
    },
  ];
  const cancelled = record({ state: 'running', startedAt: '2026-11-29T05:02:00.000Z', cancel: { by: 'oscar', at: '2026-11-29T05:02:02.500Z' } });

  it('says the job is rolling back node02 and what that step does, in the summary, the next step and the progress', () => {
    const view = jobView(cancelled, { events });
    expect(view.state).toBe('running');
    expect(view.progress?.rolling_back).toEqual({ subject: 'node02', step: 'rb-activate-node02', text: 'boot pre-upgrade-20261129-050000 next: sudo kbe activate pre-upgrade-20261129-050000' });
    expect(view.summary).toBe('exec on node[01-03] (3 hosts): cancellation requested; rolling back node02: boot pre-upgrade-20261129-050000 next: sudo kbe activate pre-upgrade-20261129-050000');
    expect(view.next.text).toBe('ends as cancelled once the rollback of node02 has run (each step within its own timeout); cancel again to stop the rollback too');
    // Without a cancel (a gate failed), the same phase, the job simply running.
    expect(jobView(record({ state: 'running', startedAt: '2026-11-29T05:02:00.000Z' }), { events }).summary).toBe('exec on node[01-03] (3 hosts) is running: rolling back node02: boot pre-upgrade-20261129-050000 next: sudo kbe activate pre-upgrade-20261129-050000');
  });

  it('ends the phase when the batch ends or a forward step starts; before any rollback it is "stopping"', () => {
    const over: StampedEvent = { id: '5-0', at: at(5), event: { type: 'state', state: 'running', reason: 'batch 1/2 stopped: 1 ok, 1 cancelled' } };
    expect(jobView(cancelled, { events: [...events, over] }).progress?.rolling_back).toBeUndefined();
    const forward: StampedEvent = { id: '5-0', at: at(5), event: { type: 'step', step: 'next', description: 'next step', hosts: ['node03'] } };
    expect(jobView(cancelled, { events: [...events, forward] }).progress?.rolling_back).toBeUndefined();
    const before = jobView(cancelled, { events: events.slice(0, 3) });
    expect(before.summary).toBe('exec on node[01-03] (3 hosts): cancellation requested; stopping on 2 hosts');
    expect(before.next.text).toBe('ends as cancelled once the commands on its hosts have stopped');
  });

  it('is shown by the terminal text and the HTML progress note', () => {
    const view = jobView(cancelled, { events });
    const text = jobText(view, { color: false });
    expect(text).toContain('cancellation requested; rolling back node02: boot pre-upgrade-20261129-050000');
    expect(text).toContain('phase: rolling back node02: boot pre-upgrade-20261129-050000 next: sudo kbe activate pre-upgrade-20261129-050000\nprogress: batch 1/2, step rb-activate-node02, 0/1 hosts done');
    expect(text).toContain('next: ends as cancelled once the rollback of node02 has run');
    expect(progressNote(view).value).toContain('<strong class="bad-count" data-rolling-back>rolling back node02: boot pre-upgrade-20261129-050000 next: sudo kbe activate pre-upgrade-20261129-050000</strong>');
  });
});
