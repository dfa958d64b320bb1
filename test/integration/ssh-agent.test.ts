// Authentication through ssh-agent: no key file in the target, the key lives in a real
// OpenSSH ssh-agent reached through its socket (config `ssh.agent`).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshExecutor, type SshTarget } from '../../src/ssh/index.js';
import { useLab } from '../support/lab.js';

const lab = useLab({ nodes: 2 });
let agent: ChildProcess | undefined;
let socket = '';

beforeAll(async () => {
  socket = path.join(lab.current.dir, 'agent.sock');
  agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
  for (let i = 0; i < 100 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 50));
  execFileSync('ssh-add', [lab.current.clientKeyFile], { env: { ...process.env, SSH_AUTH_SOCK: socket }, stdio: 'ignore' });
});

afterAll(() => {
  agent?.kill('SIGTERM');
});

const targets = (): SshTarget[] =>
  lab.current.nodes.map((n) => ({ name: n.name, address: n.address, port: n.port, user: lab.current.loginUser }));

describe('ssh-agent authentication', () => {
  it('logs in with the agent when the target names no key file', async () => {
    const ssh = await SshExecutor.fromKnownHostsFile(lab.current.knownHostsFile, { agentSocket: socket });
    try {
      const results = await ssh.fanout(targets(), { argv: ['echo', 'via-agent'], runId: 'agent-test' });
      expect(results.map((r) => [r.host, r.status, r.stdout.trim()])).toEqual([
        ['node01', 'ok', 'via-agent'],
        ['node02', 'ok', 'via-agent'],
      ]);
    } finally {
      await ssh.close();
    }
  });

  it('reports auth_failed when the agent holds no key the node accepts', async () => {
    execFileSync('ssh-add', ['-D'], { env: { ...process.env, SSH_AUTH_SOCK: socket }, stdio: 'ignore' });
    const ssh = await SshExecutor.fromKnownHostsFile(lab.current.knownHostsFile, { agentSocket: socket });
    try {
      const [result] = await ssh.fanout(targets().slice(0, 1), { argv: ['true'], runId: 'agent-test-2' });
      expect(result?.status).toBe('auth_failed');
    } finally {
      await ssh.close();
    }
  });
});
