// Attack class: "what an approver sees is what runs". An AI client asks for an exec whose argv
// hides terminal escapes (cursor moves, erase-line, CR, backspace), a script with a bidi
// override and zero-width characters, and a node prints escapes back. Through the CLI (remote
// mode), the MCP text content and the HTTP API, no raw control or invisible character may
// reach the reader: each is shown as an escape, the script is shown whole with its size and
// sha256, and nothing runs before a person approves.
import { existsSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { runCli } from '../support/castellan.js';
import { useRedis } from '../support/redis.js';
import { startHarness, type Harness } from './mcp-harness.js';

const redis = useRedis();
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ redisUrl: redis.url, nodes: 1, tokenFormat: 'opaque' });
  await h.startWorker();
});

afterAll(async () => {
  await h?.close();
});

/** Anything a terminal, a chat client or a browser would act on or hide. */
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/;

function textOf(result: CallToolResult): string {
  return (result.content as Array<{ text: string }>).map((c) => c.text).join('\n');
}

async function cli(args: string[], user: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCli(['--server', h.base, ...args], { env: { CASTELLAN_TOKEN: await h.token(user), CASTELLAN_CONFIG: '/nonexistent' } });
}

describe('hostile argv, scripts and output are shown with every control character visible', () => {
  it('an exec argv hiding a second command behind terminal escapes', async () => {
    const marker = `/tmp/castellan-sec-display-${randomBytes(6).toString('hex')}`;
    // On a terminal this prints as "echo harmless": the ESC [2K + CR erase what came before.
    const hostile = `touch ${marker}; \u001b[2K\recho harmless\u0008`;
    const ai = await h.mcp('oscar', undefined, 'claude-code');
    const result = (await ai.callTool({ name: 'exec', arguments: { targets: 'node01', argv: ['sh', '-c', hostile] } })) as CallToolResult;
    const id = (result.structuredContent as { job_id: string; state: string }).job_id;
    expect((result.structuredContent as { state: string }).state).toBe('awaiting_approval');

    // MCP text: no raw control character; the escapes are spelled out.
    const mcpText = textOf(result);
    expect(mcpText).not.toMatch(RAW);
    expect(mcpText).toContain(`sh -c $'touch ${marker}; \\e[2K\\recho harmless\\x08'`);

    // CLI: the approver's view shows the bash-quoted argv with $'…' escapes.
    const shown = await cli(['job', id], 'april');
    expect(shown.stdout).not.toMatch(RAW);
    expect(shown.stdout).toContain(`sh -c $'touch ${marker}; \\e[2K\\recho harmless\\x08'`);

    // API: the exact argv as data, plus a display form.
    const view = (await (await fetch(`${h.base}/api/v1/jobs/${id}`, { headers: { authorization: `Bearer ${await h.token('april')}` } })).json()) as {
      job: { plan: { batches: Array<{ steps: Array<{ command: string[]; command_display: string }> }> } };
    };
    const step = view.job.plan.batches[0]?.steps[0];
    expect(step?.command).toEqual(['sh', '-c', hostile]);
    expect(step?.command_display).not.toMatch(RAW);
    expect(step?.command_display).toContain("$'touch");
    expect(existsSync(marker)).toBe(false);
    await h.runtime.service.cancel(id, h.runtime.localRequester('cli'), 'test cleanup');
  });

  it('a script with a bidi override and a zero-width space is shown whole, with size and sha256', async () => {
    const script = `echo start\n# \u202eexe.sh\u202c harmless comment\nrm\u200b -rf /tmp/castellan-none\necho done\n`;
    const ai = await h.mcp('oscar', undefined, 'claude-code');
    const result = (await ai.callTool({ name: 'run_script', arguments: { targets: 'node01', script } })) as CallToolResult;
    const id = (result.structuredContent as { job_id: string }).job_id;
    expect(textOf(result)).not.toMatch(RAW);

    const shown = await cli(['job', id], 'april');
    expect(shown.stdout).not.toMatch(RAW);
    const sha = createHash('sha256').update(script).digest('hex');
    expect(shown.stdout).toContain(`stdin: ${Buffer.byteLength(script)} bytes, 5 lines, sha256 ${sha}`);
    for (const line of ['| echo start', '| # \\u{202e}exe.sh\\u{202c} harmless comment', '| rm\\u{200b} -rf /tmp/castellan-none', '| echo done']) {
      expect(shown.stdout).toContain(line);
    }

    const view = (await (await fetch(`${h.base}/api/v1/jobs/${id}`, { headers: { authorization: `Bearer ${await h.token('april')}` } })).json()) as {
      job: { plan: { batches: Array<{ steps: Array<{ stdin: string; stdin_bytes: number; stdin_sha256: string }> }> } };
    };
    expect(view.job.plan.batches[0]?.steps[0]).toMatchObject({ stdin: script, stdin_bytes: Buffer.byteLength(script), stdin_sha256: sha });
    await h.runtime.service.cancel(id, h.runtime.localRequester('cli'), 'test cleanup');
  });

  it('node output with escapes reaches the CLI and MCP as visible escapes', async () => {
    const ai = await h.mcp('oscar', undefined, 'claude-code');
    const result = (await ai.callTool({ name: 'exec', arguments: { targets: 'node01', argv: ['printf', 'ok\\033]0;pwned\\007\\033[31mred\\rover\\n'] } })) as CallToolResult;
    const id = (result.structuredContent as { job_id: string }).job_id;
    const approve = await cli(['approve', id], 'april');
    expect(approve.code).toBe(0);
    const done = await h.runtime.service.wait(id, h.runtime.localRequester('cli'), 30_000);
    expect(done.state).toBe('succeeded');
    expect(done.result?.hosts[0]?.stdout).toContain('\u001b]0;pwned\u0007');

    const shown = await cli(['job', id], 'april');
    expect(shown.stdout).not.toMatch(RAW);
    expect(shown.stdout).toContain('ok\\x1b]0;pwned\\x07\\x1b[31mred\\x0dover');

    const status = (await ai.callTool({ name: 'job_status', arguments: { job_id: id } })) as CallToolResult;
    expect(textOf(status)).not.toMatch(RAW);
    expect(textOf(status)).toContain('ok\\x1b]0;pwned\\x07\\x1b[31mred\\x0dover');
  });
});
