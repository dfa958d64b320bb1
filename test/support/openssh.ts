// Run the real OpenSSH client against a lab, with host keys strictly pinned to the lab's
// known_hosts: if this succeeds, the known_hosts format and the key pinning are right.
import { spawn } from 'node:child_process';

export interface SshTarget {
  address: string;
  port: number;
  user: string;
  clientKeyFile: string;
  knownHostsFile: string;
}

export interface SshOutcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function opensshArgs(target: SshTarget, command: readonly string[]): string[] {
  return [
    '-F', '/dev/null', // ignore the machine's ssh_config (HashKnownHosts, GSSAPI…)
    '-i', target.clientKeyFile,
    '-o', 'IdentitiesOnly=yes',
    '-o', 'BatchMode=yes',
    '-o', `UserKnownHostsFile=${target.knownHostsFile}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'ConnectTimeout=5',
    '-p', String(target.port),
    `${target.user}@${target.address}`,
    '--',
    ...command,
  ];
}

/** `ssh … user@address command`; resolves with the exit code and output, never rejects on failure. */
export function runSsh(target: SshTarget, command: readonly string[], timeoutMs = 20_000): Promise<SshOutcome> {
  return new Promise((resolve, reject) => {
    const child = spawn('ssh', opensshArgs(target, command), { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}
