// Debian's real ansible-playbook against real sshd lab nodes, run the way Castellan runs it:
// --limit, jsonl events folded per host, pinned known_hosts with host-key checking on.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPlaybook, type PlaybookEnvironment } from '../../src/ansible/run.js';
import type { ExecEvent } from '../../src/ssh/types.js';
import { useLab } from '../support/lab.js';

const lab = useLab({ nodes: 3 });
let dir: string;
let playbook: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-ansible-test-'));
  playbook = path.join(dir, 'motd.yml');
  await writeFile(
    playbook,
    [
      '- hosts: all',
      '  gather_facts: false',
      '  tasks:',
      '    - name: write the greeting',
      '      ansible.builtin.copy:',
      `        dest: "${dir}/{{ inventory_hostname }}.txt"`,
      '        content: "{{ greeting }}\\n"',
      '    - name: refuse odd nodes when asked',
      '      ansible.builtin.fail:',
      '        msg: "node {{ inventory_hostname }} refused"',
      "      when: fail_odd | default(false) and inventory_hostname in groups['odd']",
      '',
    ].join('\n'),
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function environment(knownHostsFile = lab.current.knownHostsFile): PlaybookEnvironment {
  return { binary: 'ansible-playbook', inventory: [lab.current.inventoryFile], knownHostsFile, forks: 5, maxOutputBytes: 65536, killGraceMs: 2000 };
}

function args(hosts: string[], vars: Record<string, unknown>, check = false): string[] {
  return ['--limit', hosts.join(','), '--extra-vars', JSON.stringify(vars), ...(check ? ['--check', '--diff'] : []), '--', playbook];
}

describe('ansible-playbook through Castellan', () => {
  it('check mode shows the diff and changes nothing', async () => {
    const results = await runPlaybook({ args: args(['node01', 'node02'], { greeting: 'hello' }, true), hosts: ['node01', 'node02'], timeoutMs: 120_000 }, environment());
    expect(results.map((r) => r.status)).toEqual(['ok', 'ok']);
    expect(results[0]!.stdout).toContain('changed     write the greeting');
    expect(results[0]!.stdout).toContain('+hello');
    expect(existsSync(path.join(dir, 'node01.txt'))).toBe(false);
  });

  it('writes the file on exactly the limited hosts, streaming per-task progress', async () => {
    const events: ExecEvent[] = [];
    const results = await runPlaybook({ args: args(['node01', 'node02'], { greeting: 'hello' }), hosts: ['node01', 'node02'], timeoutMs: 120_000 }, environment(), { onEvent: (e) => events.push(e) });
    expect(results.map((r) => [r.host, r.status])).toEqual([['node01', 'ok'], ['node02', 'ok']]);
    expect(await readFile(path.join(dir, 'node02.txt'), 'utf8')).toBe('hello\n');
    expect(existsSync(path.join(dir, 'node03.txt'))).toBe(false);
    const progress = events.filter((e) => e.type === 'output').map((e) => (e.type === 'output' ? `${e.host} ${e.chunk.trim()}` : ''));
    expect(progress).toContain('node01 changed     write the greeting');
    expect(progress).toContain('node02 skipped     refuse odd nodes when asked');
  });

  it('reports a failing task per host', async () => {
    const results = await runPlaybook({ args: args(['node01', 'node02', 'node03'], { greeting: 'again', fail_odd: true }), hosts: ['node01', 'node02', 'node03'], timeoutMs: 120_000 }, environment());
    expect(results.map((r) => [r.host, r.status])).toEqual([['node01', 'failed'], ['node02', 'ok'], ['node03', 'failed']]);
    expect(results[0]!.error).toBe("task 'refuse odd nodes when asked' failed: node node01 refused");
  });

  it('refuses a host whose key is not pinned, whatever the inventory says', async () => {
    const wrong = path.join(dir, 'known_hosts_other');
    await writeFile(wrong, '');
    const results = await runPlaybook({ args: args(['node01'], { greeting: 'x' }), hosts: ['node01'], timeoutMs: 120_000 }, environment(wrong));
    expect(results[0]!.status).toBe('unreachable');
    expect(results[0]!.error).toMatch(/Host key verification failed|No .* host key is known/);
  });
});
