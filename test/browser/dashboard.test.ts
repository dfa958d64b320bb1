// The web dashboard in a real browser (Debian's Chromium via playwright-core) against a real
// Castellan: lab OIDC provider (its own sign-in pages), private Redis, real sshd nodes, the
// HTTP server and a worker. Screenshots of the main pages go to test/output/screenshots/.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { useRedis } from '../support/redis.js';
import { runCli } from '../support/castellan.js';
import { launchChromium, screenshot, signInAs } from '../support/browser.js';
import { eventually, startHarness, type Harness } from '../integration/mcp-harness.js';

const redis = useRedis();
let h: Harness;
let browser: Browser;

beforeAll(async () => {
  h = await startHarness({ redisUrl: redis.url, nodes: 3, tokenFormat: 'opaque' });
  await h.startWorker();
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await h?.close();
});

const stateOf = (page: Page, jobId: string) => page.locator(`#row-${jobId} .state`).getAttribute('data-state', { timeout: 2000 }).catch(() => null);

/** POST from inside a signed-in page with its session's CSRF token, as the page's own script would. */
async function postFromPage(page: Page, path: string, fields: Record<string, string>): Promise<{ status: number; text: string }> {
  const csrf = (await page.locator('meta[name="csrf-token"]').getAttribute('content')) ?? '';
  return page.evaluate(
    async ({ path, fields, csrf }) => {
      const response = await fetch(path, { method: 'POST', body: new URLSearchParams({ ...fields, _csrf: csrf }), redirect: 'manual' });
      return { status: response.status, text: await response.text() };
    },
    { path, fields, csrf },
  );
}

describe('dashboard in Chromium', () => {
  it('sends a visitor without a session to the provider, and signs in through its pages', async () => {
    const { page, context } = await signInAs(browser, h.base, 'oscar');
    await expect(page.getByRole('heading', { name: 'Jobs' }).isVisible()).resolves.toBe(true);
    await expect(page.locator('.who').innerText()).resolves.toContain('Oscar Operator');
    const cookies = await context.cookies(`${h.base}/ui/`);
    const session = cookies.find((c) => c.name === 'castellan_session');
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/ui' });
    const response = await page.request.get(`${h.base}/ui/jobs`);
    expect(response.headers()['content-security-policy']).toContain("script-src 'self'");
    expect(response.headers()['content-security-policy']).not.toContain('unsafe-inline');
    await context.close();
  });

  it('shows a job started from the CLI appear and finish live, then its grid and folded output', async () => {
    const { page, context } = await signInAs(browser, h.base, 'victor');
    const token = await h.token('victor');
    const cli = runCli(['--server', h.base, 'resource_usage', 'all'], { env: { CASTELLAN_TOKEN: token }, timeoutMs: 120_000 });
    const row = page.locator('table[data-live-jobs] tbody tr[data-job]').first();
    await row.waitFor({ timeout: 60_000 });
    const jobId = (await row.getAttribute('data-job'))!;
    expect(jobId).toMatch(/^j[a-z0-9]+$/);
    await expect(page.locator(`#row-${jobId}`).innerText()).resolves.toContain('resource_usage');
    await eventually(async () => ((await stateOf(page, jobId)) === 'succeeded' ? true : undefined), 60_000, 'the row to turn succeeded without a reload');
    const done = await cli;
    expect(done.code, done.stderr).toBe(0);
    await screenshot(page, 'jobs');

    await page.locator(`#row-${jobId} a`).first().click();
    await page.waitForURL(`${h.base}/ui/jobs/${jobId}`);
    const cells = page.locator('table[data-grid] td[data-host]');
    await expect(cells.count()).resolves.toBe(3);
    const statuses = await Promise.all((await cells.all()).map((cell) => cell.getAttribute('data-status')));
    expect(statuses).toEqual(['ok', 'ok', 'ok']);
    // The tool's own table (its columns and units, alike hosts folded), raw output folded away under it.
    const table = page.locator('table[data-result-table]');
    await expect(table.innerText()).resolves.toMatch(/node\[01-03\]|node0\d/);
    await expect(table.innerText()).resolves.toMatch(/GiB/);
    await page.locator('details.raw > summary').click();
    await expect(page.locator('details.fold summary').first().innerText()).resolves.toMatch(/node\[01-03\]|node0\d/);
    await expect(page.locator('.summary input[readonly]').inputValue()).resolves.toBe('castellan resource_usage all');
    await page.mouse.wheel(0, -100_000);
    await screenshot(page, 'job');
    await context.close();
  });

  it('submits a tool from the generated form: live target resolution, plan preview, then the job page', async () => {
    const { page, context } = await signInAs(browser, h.base, 'oscar');
    await page.goto(`${h.base}/ui/run`);
    await screenshot(page, 'run-tools');
    await page.goto(`${h.base}/ui/run/uptime`);
    await page.getByLabel('targets').fill('node[01-02]');
    await expect(page.locator('[data-resolved]').filter({ hasText: '2 hosts' }).innerText()).resolves.toContain('node01, node02');
    await page.getByRole('button', { name: 'Preview plan' }).click();
    await page.locator('[data-preview] pre.command').first().waitFor();
    await expect(page.locator('[data-preview]').innerText()).resolves.toContain('2 hosts');
    await screenshot(page, 'run-form');
    await page.getByRole('button', { name: 'Submit' }).click();
    await page.waitForURL(/\/ui\/jobs\/j[a-z0-9]+$/);
    await page.locator('.summary[data-final="yes"]').waitFor({ timeout: 60_000 });
    await expect(page.locator('h1 .state').innerText()).resolves.toBe('succeeded');
    await expect(page.locator('.facts').innerText()).resolves.toContain('dashboard');

    // A bad target comes back on the form, naming the field, and nothing is submitted.
    await page.goto(`${h.base}/ui/run/uptime`);
    await page.getByLabel('targets').fill('nosuchhost');
    await page.getByRole('button', { name: 'Submit' }).click();
    await expect(page.locator('#f-targets-error').innerText()).resolves.toMatch(/nosuchhost/);
    await context.close();
  });

  it('lets an approver approve from the inbox; the requester and a viewer are refused', async () => {
    // alice is an admin (so an approver too): only the self-approval rule stops her.
    const oscar = await signInAs(browser, h.base, 'alice');
    await oscar.page.goto(`${h.base}/ui/run/exec`);
    await oscar.page.getByLabel('targets').fill('node03');
    await oscar.page.getByLabel('argv').fill('uname\n-n');
    await oscar.page.getByRole('button', { name: 'Submit' }).click();
    await oscar.page.waitForURL(/\/ui\/jobs\/j[a-z0-9]+$/);
    const jobId = oscar.page.url().split('/').at(-1)!;
    await expect(oscar.page.locator('h1 .state').innerText()).resolves.toBe('awaiting approval');
    // The requester: no approve button, and a hand-made POST with a valid token is refused by policy.
    await expect(oscar.page.locator('.summary').innerText()).resolves.toContain('someone else must approve');
    await expect(oscar.page.getByRole('link', { name: 'Approve…' }).count()).resolves.toBe(0);
    const self = await postFromPage(oscar.page, `/ui/jobs/${jobId}/approve`, {});
    expect(self.status).toBe(403);
    expect(self.text).toContain('someone else must approve');

    const victor = await signInAs(browser, h.base, 'victor');
    const viewer = await postFromPage(victor.page, `/ui/jobs/${jobId}/approve`, {});
    expect(viewer.status).toBe(403);
    expect(viewer.text).toContain('approver role');

    const april = await signInAs(browser, h.base, 'april');
    await april.page.goto(`${h.base}/ui/approvals`);
    const card = april.page.locator(`[data-approval="${jobId}"]`);
    await expect(card.innerText()).resolves.toContain('uname -n');
    await expect(april.page.locator('.top .badge').innerText()).resolves.toBe('1');
    await screenshot(april.page, 'approvals');
    await card.getByRole('link', { name: 'Approve…' }).click();
    await april.page.waitForURL(`${h.base}/ui/jobs/${jobId}/approve`);
    april.page.once('dialog', (dialog) => void dialog.accept());
    await april.page.getByRole('button', { name: /Yes, approve/ }).click();
    await april.page.waitForURL(new RegExp(`/ui/jobs/${jobId}\\?done=approve`));
    await april.page.locator('.summary[data-final="yes"]').waitFor({ timeout: 60_000 });
    await expect(april.page.locator('h1 .state').innerText()).resolves.toBe('succeeded');
    await expect(april.page.locator('.votes').innerText()).resolves.toContain('April Approver');
    await expect(april.page.locator('details.fold summary').first().innerText()).resolves.toContain('node03');
    await expect(april.page.locator('details.fold pre').first().innerText()).resolves.not.toBe('');
    // Decided: out of the inbox, into "Recently decided" (read from the audit index of decisions).
    await april.page.goto(`${h.base}/ui/approvals`);
    await expect(april.page.locator(`[data-approval="${jobId}"]`).count()).resolves.toBe(0);
    await expect(april.page.locator('table.jobs').innerText()).resolves.toMatch(new RegExp(`exec ${jobId}[\\s\\S]*April Approver \\(approve\\)`));
    for (const s of [oscar, victor, april]) await s.context.close();
  });

  it('streams a running job\'s log and grid live, and its requester cancels it from the job page', async () => {
    const oscar = await signInAs(browser, h.base, 'oscar');
    const requester = { subject: 'oscar', displayName: 'Oscar Operator', groups: ['ops'], roles: ['viewer', 'operator'], origin: 'dashboard' } as const;
    const { job } = await h.runtime.service.submit({
      tool: 'exec',
      input: { targets: 'node02', argv: ['sh', '-c', "for i in $(seq 1 60); do printf 'tick-%s %0200d\\n' $i 0; sleep 1; done"] },
      requester,
      replyTo: { kind: 'dashboard' },
    });
    await h.runtime.service.approve(job.id, { subject: 'april', displayName: 'April Approver', groups: ['leads'], roles: ['viewer', 'approver'], origin: 'cli' });
    await oscar.page.goto(`${h.base}/ui/jobs/${job.id}`);
    // Lines arrive over SSE while the page stays put; the grid cell says the host is running.
    // (Output streams in chunks once they are longer than the longest known secret: the
    // redactor must see a secret whole, hence the long lines.)
    await oscar.page.locator('[data-live-log]').filter({ hasText: 'node02: tick-3' }).waitFor({ timeout: 60_000 });
    await expect(oscar.page.locator('h1 .state').innerText()).resolves.toBe('running');
    await expect(oscar.page.locator('td[data-host="node02"]').getAttribute('data-status')).resolves.toBe('running');
    await expect(oscar.page.locator('[data-timeline]').innerText()).resolves.toContain('approved by April Approver');
    await screenshot(oscar.page, 'job-running');
    oscar.page.once('dialog', (dialog) => void dialog.accept());
    await oscar.page.getByRole('button', { name: 'Cancel job' }).click();
    await oscar.page.waitForURL(new RegExp(`/ui/jobs/${job.id}\\?done=cancel`));
    await oscar.page.locator('.summary[data-final="yes"]').waitFor({ timeout: 60_000 });
    await expect(oscar.page.locator('h1 .state').innerText()).resolves.toBe('cancelled');
    const state = (await h.runtime.service.get(job.id, h.runtime.localRequester('cli'))).state;
    expect(state).toBe('cancelled');
    await oscar.context.close();
  }, 150_000);

  it('refuses a forged cross-site POST even though the browser sends the session cookie', async () => {
    const oscar = await signInAs(browser, h.base, 'oscar');
    const { job } = await h.runtime.service.submit({
      tool: 'exec',
      input: { targets: 'node01', argv: ['true'] },
      requester: { subject: 'oscar', displayName: 'Oscar Operator', groups: ['ops'], roles: ['viewer', 'operator'], origin: 'cli' },
      replyTo: { kind: 'cli' },
    });
    // Another port on 127.0.0.1 is the same site, so SameSite=Lax still sends the cookie:
    // the Origin check is what must stop it.
    const attacker = http.createServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(`<form id="f" method="post" action="${h.base}/ui/jobs/${job.id}/cancel"><input name="reason" value="forged"></form><button form="f" id="go">go</button>`);
    });
    await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = attacker.address() as AddressInfo;
      await oscar.page.goto(`http://127.0.0.1:${port}/`);
      const [response] = await Promise.all([oscar.page.waitForResponse((r) => r.url().includes(`/ui/jobs/${job.id}/cancel`)), oscar.page.click('#go')]);
      expect(response.status()).toBe(403);
      expect((await h.runtime.service.get(job.id, h.runtime.localRequester('cli'))).state).toBe('awaiting_approval');
    } finally {
      attacker.close();
      await oscar.context.close();
    }
  });

  it('shows hosts, audit and the queue board, on a laptop, a phone and in dark mode', async () => {
    const alice = await signInAs(browser, h.base, 'alice');
    await alice.page.goto(`${h.base}/ui/hosts`);
    await expect(alice.page.locator('#host-node01').innerText()).resolves.toContain('SHA256:');
    await screenshot(alice.page, 'hosts');
    await alice.page.goto(`${h.base}/ui/audit?tool=exec`);
    await expect(alice.page.locator('table.audit').innerText()).resolves.toContain('April Approver');
    await screenshot(alice.page, 'audit');
    const exported = await alice.page.request.get(`${h.base}/ui/audit.jsonl?kind=decision&decision=approve`);
    const lines = (await exported.text()).trim().split('\n').map((l) => JSON.parse(l) as { kind: string; subject: string });
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.every((l) => l.kind === 'decision' && l.subject === 'april')).toBe(true);
    // bull-board's page asks nothing of another origin (its Google Fonts link is taken out).
    const requested: string[] = [];
    alice.page.on('request', (r) => requested.push(r.url()));
    await alice.page.goto(`${h.base}/ui/queues`);
    await alice.page.getByText('jobs', { exact: false }).first().waitFor({ timeout: 30_000 });
    await screenshot(alice.page, 'queues');
    expect(requested.length).toBeGreaterThan(3);
    expect(requested.filter((url) => !url.startsWith(h.base))).toEqual([]);
    // (The CSP would block such a request before Chromium reports it: the page itself says so.)
    const boardPage = await (await alice.page.request.get(`${h.base}/ui/queues`)).text();
    expect(boardPage).toContain('static/css/main.');
    expect(boardPage).not.toMatch(/<link[^>]*\/\/[a-z]/i);
    expect(boardPage).toContain('/ui/assets/board-csrf.js');
    // Its writes carry the session's CSRF token (board-csrf.js adds it to bull-board's XHRs)…
    const queue = h.runtime.ctx.queue;
    // An XMLHttpRequest as bull-board's axios sends it (a string: the test has no DOM types).
    const xhr = (method: string, path: string): Promise<number> =>
      alice.page.evaluate(`new Promise((resolve) => { const q = new XMLHttpRequest(); q.open(${JSON.stringify(method)}, ${JSON.stringify(path)}); q.onload = () => resolve(q.status); q.send(); })`);
    const names = await alice.page.evaluate(async () => ((await (await fetch('api/queues')).json()) as { queues: { name: string }[] }).queues.map((q) => q.name));
    const name = names.find((n) => n.endsWith(queue.name)) ?? queue.name;
    expect(await xhr('PUT', `api/queues/${encodeURIComponent(name)}/pause`)).toBeLessThan(300);
    await eventually(async () => ((await queue.isPaused()) ? true : undefined), 10_000, 'the queue to pause');
    expect(await xhr('PUT', `api/queues/${encodeURIComponent(name)}/resume`)).toBeLessThan(300);
    await eventually(async () => ((await queue.isPaused()) ? undefined : true), 10_000, 'the queue to resume');
    // …and a same-origin write without it is refused before bull-board sees it.
    const forged = await alice.page.request.put(`${h.base}/ui/queues/api/queues/${encodeURIComponent(name)}/pause`, { headers: { origin: h.base } });
    expect(forged.status()).toBe(403);
    expect(await forged.text()).toContain('CSRF token');
    expect(await queue.isPaused()).toBe(false);
    await alice.context.close();

    const phone = await signInAs(browser, h.base, 'april', undefined, { viewport: { width: 390, height: 844 }, colorScheme: 'dark' });
    await phone.page.goto(`${h.base}/ui/jobs`);
    await screenshot(phone.page, 'jobs-phone-dark');
    await phone.context.close();
  });

  it('pages the audit trail by cursor, and shows each person only their part of it', async () => {
    // 120 entries of one made-up subject: three pages of 50, 50 and 20.
    await h.runtime.ctx.audit.appendMany(Array.from({ length: 120 }, (_x, i) => ({ kind: 'refused' as const, subject: 'pager', origin: 'cli' as const, tool: 'ping', reason: `attempt ${i}` })));
    const alice = await signInAs(browser, h.base, 'alice');
    await alice.page.goto(`${h.base}/ui/audit?subject=pager`);
    const rows = alice.page.locator('table.audit tbody tr');
    const seen: string[] = [];
    for (const expected of [50, 50, 20]) {
      await expect(rows.count()).resolves.toBe(expected);
      await expect(alice.page.locator('[data-total]').innerText()).resolves.toBe(`${expected} shown of 120 entries matching, newest first.`);
      seen.push(...(await rows.locator('td:last-child').allInnerTexts()));
      const older = alice.page.getByRole('link', { name: 'Older →' });
      if (expected === 20) await expect(older.count()).resolves.toBe(0);
      else await Promise.all([alice.page.waitForURL(/after=\d+-\d+/), older.click()]);
    }
    expect(seen).toEqual(Array.from({ length: 120 }, (_x, i) => `refused: attempt ${119 - i}`));
    await alice.page.getByRole('link', { name: '← Newest' }).click();
    await expect(rows.first().locator('td:last-child').innerText()).resolves.toBe('refused: attempt 119');
    await alice.context.close();

    // A viewer reads their own trail only, and is told so.
    const victor = await signInAs(browser, h.base, 'victor');
    await victor.page.goto(`${h.base}/ui/audit`);
    await expect(victor.page.locator('main').innerText()).resolves.toContain('You read what you did and what was done on jobs you requested');
    const who = await victor.page.locator('table.audit tbody tr td:nth-child(3)').allInnerTexts();
    expect(who.length).toBeGreaterThan(0);
    expect(who.every((w) => w.includes('victor'))).toBe(true);
    const exported = await victor.page.request.get(`${h.base}/ui/audit.jsonl`);
    const entries = (await exported.text()).trim().split('\n').map((l) => JSON.parse(l) as { subject: string; requester?: string });
    expect(entries.length).toBe(who.length);
    expect(entries.every((e) => e.subject === 'victor' || e.requester === 'victor')).toBe(true);
    await screenshot(victor.page, 'audit-viewer');
    await victor.context.close();
  });

  it('ends the session at sign-out, here and at the provider', async () => {
    const { page, context } = await signInAs(browser, h.base, 'victor');
    const before = (await context.cookies(`${h.base}/ui/`)).find((c) => c.name === 'castellan_session')!;
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Yes, sign me out' }).click();
    await page.waitForURL(`${h.base}/ui/signed-out`);
    await expect(page.locator('main').innerText()).resolves.toContain('You are signed out');
    // The old cookie no longer opens anything, and a fresh visit asks for the password again.
    const replay = await fetch(`${h.base}/ui/jobs.json`, { headers: { cookie: `castellan_session=${before.value}` } });
    expect(replay.status, await replay.text()).toBe(401);
    await page.goto(`${h.base}/ui/jobs`);
    await expect(page.getByLabel('Password').isVisible()).resolves.toBe(true);
    await context.close();
  });
});
