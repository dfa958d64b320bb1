// Slack rendering and parsing that need no Slack: words as the CLI splits them, untrusted text
// made visible and inert in mrkdwn, Block Kit limits, and the app manifest's scopes and URLs.
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { JobRecord } from '../../queues/records.js';
import { code, codeBlock, renderJob, renderOutputReply, SECTION_LIMIT, THREAD_OUTPUT_LIMIT } from '../../src/slack/render.js';
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

describe('Block Kit rendering', () => {
  it('shows the exact command with control characters visible and no live mentions or code fences', () => {
    const text = JSON.stringify(renderJob(job(), { done: 0, failed: 0 }, 'card', 'https://castellan.example.com').blocks);
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
    // Only the fences Castellan opens and closes remain.
    const fences = text.match(/```/g) ?? [];
    expect(fences.length % 2).toBe(0);
  });

  it('drops the buttons once decided, and keeps every section within Slack limits', () => {
    const long = 'x'.repeat(50_000);
    const done = job({
      state: 'succeeded',
      votes: [{ subject: 'april', displayName: 'April', origin: 'slack', decision: 'approve', planHash: 'abc', at: '2026-11-29T05:01:00.000Z' }],
      startedAt: '2026-11-29T05:01:00.000Z',
      finishedAt: '2026-11-29T05:01:02.000Z',
      result: { hosts: [], steps: [], folded: [{ nodeset: 'node[01-03]', hosts: ['node01', 'node02', 'node03'], count: 3, status: 'ok', text: long }] },
    });
    const message = renderJob(done, { done: 3, failed: 0 }, 'request', 'https://castellan.example.com');
    expect(message.blocks.some((b) => b.type === 'actions')).toBe(false);
    expect(JSON.stringify(message.blocks)).toContain('Approved by April');
    expect(message.blocks.length).toBeLessThanOrEqual(50);
    for (const block of message.blocks) {
      const t = (block as { text?: { text: string } }).text?.text ?? '';
      expect(t.length).toBeLessThanOrEqual(SECTION_LIMIT);
    }
    const reply = renderOutputReply(done);
    expect(reply.length).toBeLessThan(THREAD_OUTPUT_LIMIT + 500);
    expect(reply).toMatch(/truncated: \d+ more characters/);
  });

  it('keeps inline code inline and blocks bounded', () => {
    expect(code('a`b')).toBe('`a\\x60b`');
    expect(codeBlock('y'.repeat(10_000), 100)).toMatch(/\[truncated: 9900 more characters\]```$/);
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
