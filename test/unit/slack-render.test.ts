// Slack rendering and parsing that need no Slack: words as the CLI splits them, untrusted text
// made visible and inert in mrkdwn, Block Kit limits, and the app manifest's scopes and URLs.
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { JobRecord } from '../../queues/records.js';
import { jobView } from '../../src/present/job-view.js';
import { planText } from '../../src/present/render/text.js';
import {
  BLOCKS_LIMIT,
  chunkLines,
  code,
  codeBlock,
  needsOutputReply,
  planPlacement,
  planReply,
  SECTION_LIMIT,
  slackJobMessage,
  slackOutputReply,
  slackResultText,
  THREAD_OUTPUT_LIMIT,
} from '../../src/present/render/slack.js';
import { SLACK_BOT_SCOPES, slackManifest } from '../../src/slack/manifest.js';
import { splitWords, WordsError } from '../../src/slack/words.js';

describe('slash command words', () => {
  it('splits like a shell: quotes, smart quotes, escapes, Slack entities', () => {
    expect(splitWords('exec all -- uname -a')).toEqual(['exec', 'all', '--', 'uname', '-a']);
    expect(splitWords(`exec web --command 'systemctl status nginx | head'`)).toEqual(['exec', 'web', '--command', 'systemctl status nginx | head']);
    expect(splitWords('journal web --unit \u201cnginx.service\u201d')).toEqual(['journal', 'web', '--unit', 'nginx.service']);
    expect(splitWords('exec all --command "a &amp;&amp; b &gt; /tmp/x"')).toEqual(['exec', 'all', '--command', 'a && b > /tmp/x']);
    expect(splitWords('a\\ b "" c')).toEqual(['a b', '', 'c']);
    expect(() => splitWords('uptime "all')).toThrow(WordsError);
  });
});

const job = (over: Partial<JobRecord> = {}): JobRecord => ({
  id: 'jtest0001abcd',
  tool: 'exec',
  risk: 'destructive',
  input: {},
  plan: {
    tool: 'exec',
    hosts: ['node01', 'node02', 'node03'],
    failureBudget: 0,
    batches: [{ steps: [{ id: 'exec', description: 'run', hosts: ['node01', 'node02', 'node03'], timeoutMs: 1000, action: { kind: 'exec', asRoot: false, argv: ['sh', '-c', 'echo <!channel> \u001b[2J `x` ```'], stdin: 'rm -rf /\u202e' } }] }],
  },
  planHash: 'abcdef0123456789abcdef',
  requester: { subject: 'oscar', displayName: 'Oscar <!here>', groups: ['ops'], roles: ['operator'], origin: 'slack' },
  replyTo: { kind: 'slack', channel: 'C1' },
  createdAt: '2026-11-29T05:00:00.000Z',
  approvalsRequired: 1,
  expiresAt: Date.parse('2026-11-29T05:15:00.000Z'),
  timeoutMs: 60_000,
  state: 'awaiting_approval',
  votes: [],
  updatedAt: '2026-11-29T05:00:00.000Z',
  attempt: 0,
  ...over,
});

const url = 'https://castellan.example.com';
const view = (over: Partial<JobRecord> = {}) => jobView(job(over));
const sectionTexts = (blocks: readonly unknown[]) => blocks.map((b) => (b as { text?: { text: string } }).text?.text ?? '');
/** The raw text inside the code fences of a run of blocks, entities undone. */
const fencedText = (blocks: readonly unknown[]) =>
  sectionTexts(blocks)
    .flatMap((t) => [...t.matchAll(/```([\s\S]*?)```/g)].map((m) => m[1] ?? ''))
    .join('')
    .replaceAll('\\x60\\x60\\x60', '```')
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&amp;', '&');

describe('Block Kit rendering of the job view', () => {
  it('shows the exact command with control characters visible and no live mentions or code fences', () => {
    const text = JSON.stringify(slackJobMessage(view(), 'card', url).blocks);
    expect(text).not.toContain('<!channel>');
    expect(text).not.toContain('<!here>');
    expect(text).toContain('&lt;!channel&gt;');
    // argv in bash's $'…' form, so ESC reads as \e; the script (stdin) with \u{…} escapes.
    expect(text).toContain("$'echo &lt;!channel&gt; \\\\e[2J");
    expect(text).toContain('\\\\u{202e}');
    expect(text).toContain('rm -rf /');
    expect(text).toContain('node[01-03]');
    expect(text).toContain('castellan_approve');
    expect(text).toContain('0 of 1 approval');
    // The plan hash the approval is cast on, and the script's size and sha256.
    expect(text).toContain('abcdef0123456789abcdef');
    expect(text).toMatch(/stdin: \d+ bytes, 1 line, sha256 [0-9a-f]{64}/);
    // Only the fences Castellan opens and closes remain.
    const fences = text.match(/```/g) ?? [];
    expect(fences.length % 2).toBe(0);
  });

  it('drops the buttons once decided, names who decided, and keeps every section within Slack limits', () => {
    const long = 'x'.repeat(50_000);
    const done = view({
      state: 'succeeded',
      votes: [{ subject: 'april', displayName: 'April', origin: 'slack', decision: 'approve', planHash: 'abc', at: '2026-11-29T05:01:00.000Z' }],
      startedAt: '2026-11-29T05:01:00.000Z',
      finishedAt: '2026-11-29T05:01:02.000Z',
      result: { hosts: [], steps: [], folded: [{ nodeset: 'node[01-03]', hosts: ['node01', 'node02', 'node03'], count: 3, status: 'ok', text: long }] },
    });
    const message = slackJobMessage(done, 'request', url);
    expect(message.blocks.some((b) => b.type === 'actions')).toBe(false);
    expect(JSON.stringify(message.blocks)).toContain('Approved by April');
    expect(message.blocks.length).toBeLessThanOrEqual(BLOCKS_LIMIT);
    for (const t of sectionTexts(message.blocks)) expect(t.length).toBeLessThanOrEqual(SECTION_LIMIT);
    expect(needsOutputReply(done)).toBe(true);
    const reply = slackOutputReply(done);
    for (const t of sectionTexts(reply.blocks)) expect(t.length).toBeLessThanOrEqual(SECTION_LIMIT);
    expect(reply.text.length).toBeLessThan(THREAD_OUTPUT_LIMIT + 500);
    expect(reply.text).toMatch(/truncated: \d+ more characters/);
    // What the reply shows is the start of the output, uncut up to the marker.
    expect(slackResultText(done).startsWith(`node[01-03] (3): ${'x'.repeat(100)}`)).toBe(true);
    expect(fencedText(reply.blocks) === slackResultText(done).slice(0, THREAD_OUTPUT_LIMIT)).toBe(true);
  });

  it('keeps inline code inline and blocks bounded', () => {
    expect(code('a`b')).toBe('`a\\x60b`');
    expect(codeBlock('y'.repeat(10_000), 100)).toMatch(/\[truncated: 9900 more characters\]```$/);
  });

  it('splits text into chunks within the limit and loses nothing', () => {
    const text = `${'short line <&>\n'.repeat(500)}${'z'.repeat(7000)}\n\`\`\`fence\`\`\`\nend`;
    const chunks = chunkLines(text, 1000);
    expect(chunks.join('')).toBe(text);
    for (const c of chunks) expect(c.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('```', '\\x60\\x60\\x60').length).toBeLessThanOrEqual(1000);
  });

  it("renders the tool's result view: its summary, the table in a code block, rows that need a look marked", () => {
    const base = view({ state: 'succeeded', startedAt: '2026-11-29T05:01:00.000Z', finishedAt: '2026-11-29T05:01:02.000Z', result: { hosts: [], steps: [], folded: [] } });
    const table = {
      title: 'Disk usage',
      summary: '4 hosts; fullest 95 %',
      key: 'hosts',
      header: true,
      output: false,
      columns: [
        { label: 'mount', align: 'left' as const },
        { label: 'used', align: 'right' as const },
      ],
      rows: [
        { key: 'node[01-02]', hosts: ['node01', 'node02'], count: 2, cells: ['/', '40 %'] },
        { key: 'node03', hosts: ['node03'], count: 1, cells: ['/', '95 %'], tones: ['' as const, 'bad' as const] },
        { key: 'node04', hosts: ['node04'], count: 1, cells: [], problem: { status: 'unreachable', text: 'connect timeout <!here>' } },
      ],
    };
    const done = { ...base, result: { ...base.result, hosts: [], folded: [], view: table } } as typeof base;
    const blocks = slackJobMessage(done, 'request', url).blocks;
    const text = JSON.stringify(blocks);
    expect(text).toContain('*Disk usage:* 4 hosts; fullest 95 %');
    const fenced = fencedText(blocks);
    expect(fenced).toMatch(/hosts +mount +used/);
    expect(fenced).toMatch(/node\[01-02\] \(2\) +\/ +40 %/);
    expect(fenced).toContain('node04');
    expect(text).toContain(':red_circle: `node03` used `95 %`');
    expect(text).toContain(':x: `node04` unreachable: connect timeout &lt;!here&gt;');
    expect(text).not.toContain('<!here>');
    expect(text).toContain('--raw');
  });

  it('puts a plan too long for the card whole into thread replies, and shows the buttons only once they are posted', () => {
    const script = Array.from({ length: 3000 }, (_, i) => `echo step ${i} <!channel> \u001b[31m`).join('\n');
    const big = view({ plan: { ...job().plan, batches: [{ steps: [{ id: 'exec', description: 'run', hosts: ['node01'], timeoutMs: 1000, action: { kind: 'exec', asRoot: true, argv: ['bash', '-s'], stdin: script } }] }] } });
    const placement = planPlacement(big);
    expect(placement.inline).toBe(false);
    if (placement.inline) return;
    const parts = placement.replies.length;
    expect(parts).toBeGreaterThan(1);
    // While the parts are being posted: no buttons, and the card says so.
    const pending = slackJobMessage(big, 'card', url, { planParts: { posted: parts - 1, total: parts } });
    expect(pending.blocks.some((b) => b.type === 'actions')).toBe(false);
    expect(JSON.stringify(pending.blocks)).toMatch(/buttons appear once it is all there/);
    const ready = slackJobMessage(big, 'card', url, { planParts: { posted: parts, total: parts } });
    expect(ready.blocks.some((b) => b.type === 'actions')).toBe(true);
    expect(JSON.stringify(ready.blocks)).toMatch(/shown whole, nothing left out/);
    // The replies together are exactly the terminal's plan card: every line of the script, visible.
    const replies = Array.from({ length: parts }, (_, i) => planReply(big, i));
    for (const r of replies) {
      expect(r.blocks.length).toBeLessThanOrEqual(BLOCKS_LIMIT);
      for (const t of sectionTexts(r.blocks)) expect(t.length).toBeLessThanOrEqual(SECTION_LIMIT);
      expect(JSON.stringify(r.blocks)).not.toContain('<!channel>');
    }
    const whole = replies.map((r) => fencedText(r.blocks)).join('');
    expect(whole).toBe(`${planText(big.plan, { color: false })}\nplan hash: ${big.plan_hash}`);
    expect(whole).toContain('echo step 2999 <!channel> \\x1b[31m');
  });
});

interface Manifest {
  oauth_config: { scopes: { bot: string[] } };
  features: { slash_commands: Record<string, unknown>[] };
  settings: Record<string, unknown> & { socket_mode_enabled: boolean };
}

describe('Slack app manifest', () => {
  it('asks for exactly the scopes Castellan uses, with request URLs only in HTTP mode', () => {
    const http = parse(slackManifest({ socketMode: false, publicUrl: 'https://castellan.example.com' })) as Manifest;
    expect(http.oauth_config.scopes.bot).toEqual([...SLACK_BOT_SCOPES]);
    expect(http.features.slash_commands[0]).toMatchObject({ command: '/castellan', url: 'https://castellan.example.com/slack/events', should_escape: false });
    expect(http.settings).toMatchObject({ socket_mode_enabled: false, interactivity: { is_enabled: true, request_url: 'https://castellan.example.com/slack/events' } });
    const socket = parse(slackManifest({ socketMode: true, publicUrl: 'http://127.0.0.1:8080' })) as Manifest;
    expect(socket.settings.socket_mode_enabled).toBe(true);
    expect(JSON.stringify(socket)).not.toContain('request_url');
    expect(socket.features.slash_commands[0]?.url).toBeUndefined();
  });
});
