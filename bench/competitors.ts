// The OpenSSH-based tools Castellan is compared with, each pointed at the same nodes with the
// same trust: the fleet's pinned known_hosts with StrictHostKeyChecking=yes, the fleet's
// client key only (no agent, no ~/.ssh/config), batch mode. Every tool runs the same trivial
// command Castellan's `ping` runs: `true`.
import type { FleetFiles } from './fleet.js';

export type CompetitorName = 'parallel-ssh' | 'clush' | 'pdsh' | 'ansible';

/** Each tool's own default fan-out (pssh 32, clush 64 from clush.conf, pdsh 32, Ansible forks 5). */
export const DEFAULT_WINDOW: Readonly<Record<CompetitorName, number>> = {
  'parallel-ssh': 32,
  clush: 64,
  pdsh: 32,
  ansible: 5,
};

export const TRIVIAL_COMMAND = 'true';

export interface CommandLine {
  readonly command: string;
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
}

/**
 * ssh options as ONE string: pssh (-x), clush (-o), pdsh (PDSH_SSH_ARGS) and Ansible
 * (ANSIBLE_SSH_ARGS) each take a single string they split on whitespace, so the paths must
 * not contain any (the bench's own temp dirs never do; checked here rather than mis-split).
 */
export function sshOptions(fleet: FleetFiles): string {
  for (const file of [fleet.knownHostsFile, fleet.clientKeyFile]) {
    if (/\s/.test(file)) throw new Error(`path with whitespace cannot be passed to the OpenSSH tools: ${JSON.stringify(file)}`);
  }
  return [
    '-F /dev/null',
    '-o StrictHostKeyChecking=yes',
    `-o UserKnownHostsFile=${fleet.knownHostsFile}`,
    '-o GlobalKnownHostsFile=/dev/null',
    `-o IdentityFile=${fleet.clientKeyFile}`,
    '-o IdentitiesOnly=yes',
    '-o IdentityAgent=none',
    '-o BatchMode=yes',
    '-o LogLevel=ERROR',
  ].join(' ');
}

/** The environment every tool runs in: no agent, so only the fleet key can authenticate. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.SSH_AUTH_SOCK;
  return env;
}

export function competitorCommand(tool: CompetitorName, window: number, fleet: FleetFiles): CommandLine {
  const options = sshOptions(fleet);
  switch (tool) {
    case 'parallel-ssh':
      // -t: per-host timeout (default 60 s); the hosts file carries address:port.
      return {
        command: 'parallel-ssh',
        args: ['-h', fleet.hostPortFile, '-p', String(window), '-t', '120', '-l', fleet.user, '-x', options, TRIVIAL_COMMAND],
        env: cleanEnv(),
      };
    case 'clush':
      return {
        command: 'clush',
        args: ['--hostfile', fleet.addressFile, '-f', String(window), '-l', fleet.user, '-o', `-p ${fleet.port} ${options}`, TRIVIAL_COMMAND],
        env: cleanEnv(),
      };
    case 'pdsh':
      // PDSH_SSH_ARGS replaces pdsh's "-2 -a -x -l%u %h"; %u/%h are pdsh's own substitutions.
      return {
        command: 'pdsh',
        args: ['-R', 'ssh', '-f', String(window), '-l', fleet.user, '-w', `^${fleet.addressFile}`, TRIVIAL_COMMAND],
        env: cleanEnv({ PDSH_RCMD_TYPE: 'ssh', PDSH_SSH_ARGS: `-p ${fleet.port} ${options} -l%u %h` }),
      };
    case 'ansible':
      // The inventory already pins known_hosts (ansible_ssh_common_args). ControlMaster is off:
      // a one-task ad hoc run gains nothing from it, and ControlPersist would leave one ssh
      // master per host running between runs (and make runs 2..5 warm while others are cold).
      return {
        command: 'ansible',
        args: ['all', '-i', fleet.inventoryFile, '-m', 'raw', '-a', TRIVIAL_COMMAND, '-f', String(window)],
        env: cleanEnv({
          ANSIBLE_SSH_ARGS: `-o ControlMaster=no ${options}`,
          ANSIBLE_HOST_KEY_CHECKING: 'True',
          ANSIBLE_NOCOLOR: '1',
          ANSIBLE_SSH_RETRIES: '0',
          ANSIBLE_LOCAL_TEMP: `${fleet.dir}/ansible-tmp`,
          ANSIBLE_RETRY_FILES_ENABLED: 'False',
        }),
      };
  }
}

/**
 * Hosts that ran the command successfully, from the tool's own output: parallel-ssh and
 * Ansible print a success line per host; clush and pdsh stay silent for `true` and report
 * each failing host on stderr, so ok = hosts never named in one of their failure lines.
 */
export function hostsOk(tool: CompetitorName, run: { code: number | null; stdout: string; stderr: string; timedOut: boolean }, fleet: FleetFiles): number {
  if (run.timedOut) return 0;
  switch (tool) {
    case 'parallel-ssh':
      return (run.stdout.match(/^\[\d+\] \S+ \[SUCCESS\] /gm) ?? []).length;
    case 'ansible':
      return (run.stdout.match(/^\S+ \| (?:CHANGED|SUCCESS) \| rc=0 >>/gm) ?? []).length;
    case 'clush':
    case 'pdsh': {
      if (run.code === null) return 0;
      // Only the tool's own per-host failure lines count ("clush: ADDR: exited with exit code
      // 255", "pdsh@me: ADDR: ssh exited with exit code 1"): a node's login shell may print
      // noise on stderr (seen: root's .bashrc racing on pyenv shims) while `true` succeeds.
      const own = tool === 'clush' ? /^clush: ([\d.]+): /gm : /^pdsh@[^:\s]+: ([\d.]+): /gm;
      const addresses = new Set(fleet.nodes.map((n) => n.address));
      const failed = new Set([...run.stderr.matchAll(own)].map((m) => m[1] ?? '').filter((a) => addresses.has(a)));
      // A non-zero exit without a host named means something failed we cannot attribute.
      if (run.code !== 0 && failed.size === 0) return 0;
      return fleet.nodes.length - failed.size;
    }
  }
}
