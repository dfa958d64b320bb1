// Each tool's plan against a small inventory: exact argv, hosts, batches and budgets.
import { describe, expect, it } from 'vitest';
import { getTool, InvalidInputError, ToolInputError } from '../../tools/index.js';
import { answerFor, ctx, planFor } from './tools-fixtures.js';
import type { Plan, PlanStep, StepAction } from '../../tools/index.js';

function plan(tool: string, input: Record<string, unknown>): Plan {
  return planFor(getTool(tool), input, ctx);
}

function steps(p: Plan): PlanStep[] {
  return p.batches.flatMap((b) => [...b.steps]);
}

function exec(step: PlanStep | undefined): Extract<StepAction, { kind: 'exec' }> {
  if (step?.action.kind !== 'exec') throw new Error(`not an exec step: ${JSON.stringify(step)}`);
  return step.action;
}

describe('read tool plans', () => {
  it('ping runs `true` on every resolved host, default targets all', () => {
    const p = plan('ping', {});
    expect(p.hosts).toEqual(['cp1', 'cp2', 'node01', 'node02', 'node03', 'node04', 'storage1']);
    expect(p.batches).toHaveLength(1);
    expect(exec(steps(p)[0])).toEqual({ kind: 'exec', argv: ['true'], asRoot: false, stdin: undefined });
    expect(steps(p)[0]?.timeoutMs).toBe(60_000);
  });

  it('uptime reads /proc and honours a timeout', () => {
    const p = plan('uptime', { targets: 'web', timeout: '15s' });
    expect(p.hosts).toEqual(['node01', 'node02']);
    expect(exec(steps(p)[0]).argv).toEqual(['cat', '/proc/uptime', '/proc/loadavg']);
    expect(steps(p)[0]?.timeoutMs).toBe(15_000);
  });

  it('resource_usage runs one constant script', () => {
    const a = exec(steps(plan('resource_usage', { targets: 'node01' }))[0]);
    const b = exec(steps(plan('resource_usage', { targets: 'storage1' }))[0]);
    expect(a.argv[0]).toBe('/bin/sh');
    expect(a.argv).toEqual(b.argv);
  });

  it('service_status puts the unit after --', () => {
    const argv = exec(steps(plan('service_status', { targets: 'web', unit: 'nginx.service' }))[0]).argv;
    expect(argv.slice(0, 2)).toEqual(['systemctl', 'show']);
    expect(argv[2]).toMatch(/^--property=.*ActiveState.*SubState.*MainPID/);
    expect(argv.slice(-2)).toEqual(['--', 'nginx.service']);
  });

  it('journal joins every value to its option and runs as root', () => {
    const action = exec(steps(plan('journal', { targets: 'node01', unit: 'k3s', lines: 50, since: '-1h', priority: 'err' }))[0]);
    expect(action.argv).toEqual(['journalctl', '--unit=k3s', '--lines=50', '--since=-1h', '--priority=err', '--no-pager', '--output=short-iso']);
    expect(action.asRoot).toBe(true);
    expect(exec(steps(plan('journal', { unit: 'k3s' }))[0]).argv).toEqual(['journalctl', '--unit=k3s', '--lines=100', '--no-pager', '--output=short-iso']);
  });

  it('journal accepts absolute dates and keywords for since', () => {
    for (const since of ['2025-01-01', '2025-01-01 10:00', '2025-01-01 10:00:30', 'today', '-30min', '-2d']) {
      expect(exec(steps(plan('journal', { unit: 'k3s', since }))[0]).argv).toContain(`--since=${since}`);
    }
  });

  it('disk_usage passes paths after --', () => {
    expect(exec(steps(plan('disk_usage', { targets: 'storage1' }))[0]).argv).toEqual(['df', '-PTk', '--']);
    expect(exec(steps(plan('disk_usage', { targets: 'storage1', paths: ['/', '/srv/nfs'] }))[0]).argv).toEqual(['df', '-PTk', '--', '/', '/srv/nfs']);
  });

  it('wireguard_status runs the masking script as root', () => {
    const action = exec(steps(plan('wireguard_status', { targets: 'cp1' }))[0]);
    expect(action.asRoot).toBe(true);
    expect(action.argv[2]).toContain('wg show all dump');
    expect(action.argv[2]).toContain('(hidden)');
  });

  it('cert_expiry passes paths as positional arguments of a constant script', () => {
    const action = exec(steps(plan('cert_expiry', { targets: 'cp1', paths: ['/etc/kubernetes/pki/apiserver.crt', '/etc/ssl/a b.pem'], as_root: true }))[0]);
    expect(action.argv.slice(3)).toEqual(['cert_expiry', '/etc/kubernetes/pki/apiserver.crt', '/etc/ssl/a b.pem']);
    expect(action.argv[2]).not.toContain('apiserver');
    expect(action.asRoot).toBe(true);
  });

  it('k8s_nodes runs on the first control-plane host only', () => {
    const p = plan('k8s_nodes', {});
    expect(p.hosts).toEqual(['cp1']);
    expect(exec(steps(p)[0]).argv).toEqual(['kubectl', 'get', 'nodes', '--output=json']);
    // The kubeconfig comes from the control-plane host's inventory var, never from the request.
    const q = plan('k8s_nodes', { control_plane: 'cp2', as_root: true });
    expect(q.hosts).toEqual(['cp2']);
    expect(exec(steps(q)[0])).toMatchObject({ argv: ['kubectl', '--kubeconfig=/etc/kubernetes/admin.conf', 'get', 'nodes', '--output=json'], asRoot: true });
    for (const tool of ['k8s_nodes', 'k8s_drain', 'k8s_cordon', 'k8s_uncordon']) {
      expect(() => plan(tool, { nodes: ['node01'], kubeconfig: '/tmp/evil.conf' })).toThrow(/kubeconfig/);
    }
  });

  it('an unknown or empty target is a field-named error', () => {
    expect(() => plan('ping', { targets: 'nosuch' })).toThrow(ToolInputError);
    expect(() => plan('ping', { targets: 'nosuch' })).toThrow(/^targets: unknown host or group 'nosuch'/);
    expect(() => plan('k8s_nodes', { control_plane: 'ghost' })).toThrow(/^control_plane:/);
    // The field the caller gave names the playbook: node_expand's is deploy_playbook.
    expect(() => plan('node_expand', { node: 'node03', role: 'worker', host_key_fingerprint: `SHA256:${'A'.repeat(43)}`, deploy_playbook: 'site', control_plane: 'cp1' })).toThrow(/^deploy_playbook: 'site' is not an allowed playbook \(configured: motd\)/);
  });
});

describe('inventory-only tools', () => {
  it('list_nodes answers from the inventory with address, groups and labels', () => {
    const answer = answerFor(getTool('list_nodes'), { targets: 'web' }, ctx) as { nodes: { name: string; groups: string[]; labels: Record<string, string> }[] };
    expect(answer.nodes.map((n) => n.name)).toEqual(['node01', 'node02']);
    expect(answer.nodes[0]).toMatchObject({ port: 22, groups: ['k8s_cluster', 'k8s_worker', 'web'], labels: { role: 'k8s-worker', rack: 'left' } });
    expect(getTool('list_nodes').output?.safeParse(answer).success).toBe(true);
  });

  it('list_groups counts hosts through nesting and lists children', () => {
    const answer = answerFor(getTool('list_groups'), {}, ctx) as { groups: { name: string; host_count: number; children: string[] }[] };
    expect(answer.groups.find((g) => g.name === 'k8s_cluster')).toMatchObject({ host_count: 6, children: ['k8s_control_plane', 'k8s_worker'] });
    expect(answer.groups.find((g) => g.name === 'all')?.host_count).toBe(7);
    expect(getTool('list_groups').output?.safeParse(answer).success).toBe(true);
  });
});

describe('change tool plans', () => {
  it('service_restart runs systemctl restart -- UNIT as root, all at once by default', () => {
    const p = plan('service_restart', { targets: 'k8s_worker', unit: 'k3s-agent' });
    expect(p.batches).toHaveLength(1);
    expect(exec(steps(p)[0])).toMatchObject({ argv: ['systemctl', 'restart', '--', 'k3s-agent'], asRoot: true });
    expect(steps(p)[0]?.hosts).toEqual(['node01', 'node02', 'node03', 'node04']);
    expect(steps(p)[0]?.description).toBe('sudo systemctl restart -- k3s-agent');
  });

  it('service_restart rolls when a batch size is given', () => {
    const p = plan('service_restart', { targets: 'k8s_worker', unit: 'k3s-agent', batch_size: '50%', failure_budget: 1 });
    expect(p.batches.map((b) => b.steps[0]?.hosts)).toEqual([['node01', 'node02'], ['node03', 'node04']]);
    expect(p.failureBudget).toBe(1);
    expect(steps(p).map((s) => s.id)).toEqual(['restart-1', 'restart-2']);
  });

  it('service_reload uses reload', () => {
    expect(exec(steps(plan('service_reload', { targets: 'web', unit: 'nginx' }))[0]).argv).toEqual(['systemctl', 'reload', '--', 'nginx']);
  });

  it('copy_file upload resolves the local path under localRoot and parses the mode', () => {
    const step = steps(plan('copy_file', { targets: 'web', direction: 'upload', source: 'motd.txt', destination: '/etc/motd', mode: '0644' }))[0];
    expect(step?.action).toEqual({ kind: 'upload', localPath: '/srv/castellan/files/motd.txt', remotePath: '/etc/motd', mode: 0o644 });
    const abs = steps(plan('copy_file', { targets: 'web', direction: 'upload', source: '/srv/castellan/files/a/b.conf', destination: '/etc/b.conf' }))[0];
    expect(abs?.action).toMatchObject({ localPath: '/srv/castellan/files/a/b.conf', mode: undefined });
  });

  it('copy_file refuses local paths outside localRoot', () => {
    for (const source of ['../../etc/shadow', '/etc/shadow', '/srv/castellan/files/../secret', '/srv/castellan/filesX/a', '.']) {
      expect(() => plan('copy_file', { targets: 'web', direction: 'upload', source, destination: '/tmp/x' })).toThrow(/^source: .*inside the local transfer directory/);
    }
    expect(() => plan('copy_file', { targets: 'web', direction: 'download', source: '/var/log/syslog', destination: '../out' })).toThrow(/^destination:/);
  });

  it('copy_file download saves under localRoot', () => {
    const step = steps(plan('copy_file', { targets: 'web', direction: 'download', source: '/var/log/syslog', destination: 'logs' }))[0];
    expect(step?.action).toEqual({ kind: 'download', remotePath: '/var/log/syslog', localDir: '/srv/castellan/files/logs' });
    expect(step?.hosts).toEqual(['node01', 'node02']);
  });

  it('copy_file relay copies from exactly one host to the others', () => {
    const p = plan('copy_file', { targets: 'k8s_control_plane', direction: 'relay', from_host: 'cp1', source: '/etc/rancher/k3s/k3s.yaml', destination: '/etc/rancher/k3s/k3s.yaml' });
    expect(steps(p)[0]?.action).toEqual({ kind: 'relay', fromHost: 'cp1', remotePath: '/etc/rancher/k3s/k3s.yaml', destPath: '/etc/rancher/k3s/k3s.yaml' });
    expect(steps(p)[0]?.hosts).toEqual(['cp2']);
    expect(p.hosts).toEqual(['cp1', 'cp2']);
    expect(() => plan('copy_file', { targets: 'web', direction: 'relay', from_host: 'web', source: '/a', destination: '/b' })).toThrow(/^from_host: must match exactly one host, matched 2/);
  });

  it('copy_file checks direction-specific fields in the schema', () => {
    expect(() => plan('copy_file', { targets: 'web', direction: 'relay', source: '/a', destination: '/b' })).toThrow(/from_host: is required for relay/);
    expect(() => plan('copy_file', { targets: 'web', direction: 'download', source: 'relative', destination: 'x' })).toThrow(/source: remote path must be an absolute path/);
    expect(() => plan('copy_file', { targets: 'web', direction: 'upload', source: 'a', destination: '/etc/../shadow' })).toThrow(/destination: remote path must not contain a "\.\." segment/);
    expect(() => plan('copy_file', { targets: 'web', direction: 'download', source: '/a', destination: 'x', mode: '0600' })).toThrow(/mode: is only allowed for upload/);
  });

  it('run_script feeds the script on stdin with args after --', () => {
    const action = exec(steps(plan('run_script', { targets: 'web', script: 'echo "$1"\n', args: ['a b', '-x'], interpreter: 'bash', as_root: true }))[0]);
    expect(action).toEqual({ kind: 'exec', argv: ['bash', '-s', '--', 'a b', '-x'], asRoot: true, stdin: 'echo "$1"\n' });
    const py = exec(steps(plan('run_script', { targets: 'web', script: 'import sys; print(sys.argv)', args: ['--flag'], interpreter: 'python3' }))[0]);
    expect(py.argv).toEqual(['python3', '-', '--flag']);
    expect(exec(steps(plan('run_script', { targets: 'web', script: 'true' }))[0]).argv).toEqual(['sh', '-s', '--']);
  });

  it('k8s_cordon and k8s_uncordon make one step per node on one control-plane host', () => {
    const p = plan('k8s_cordon', { nodes: ['node01', 'node02'] });
    expect(p.hosts).toEqual(['cp1']);
    expect(steps(p).map((s) => exec(s).argv)).toEqual([
      ['kubectl', 'cordon', '--', 'node01'],
      ['kubectl', 'cordon', '--', 'node02'],
    ]);
    expect(steps(p).every((s) => s.hosts.length === 1 && s.hosts[0] === 'cp1')).toBe(true);
    expect(exec(steps(plan('k8s_uncordon', { nodes: ['node03'] }))[0]).argv).toEqual(['kubectl', 'uncordon', '--', 'node03']);
  });
});

describe('destructive tool plans', () => {
  it('exec argv runs exactly as given', () => {
    const action = exec(steps(plan('exec', { targets: 'web', argv: ['ls', '-la', '/tmp; rm -rf /'] }))[0]);
    expect(action).toEqual({ kind: 'exec', argv: ['ls', '-la', '/tmp; rm -rf /'], asRoot: false, stdin: undefined });
  });

  it('exec command is one argument of sh -c', () => {
    const p = plan('exec', { targets: 'web', command: 'df -h | grep sda && echo $(hostname)', as_root: true, timeout: '2m' });
    expect(exec(steps(p)[0])).toMatchObject({ argv: ['/bin/sh', '-c', 'df -h | grep sda && echo $(hostname)'], asRoot: true });
    expect(steps(p)[0]?.timeoutMs).toBe(120_000);
  });

  it('exec script goes on stdin to sh -s', () => {
    expect(exec(steps(plan('exec', { targets: 'web', script: 'set -e\nuptime\n' }))[0])).toMatchObject({ argv: ['/bin/sh', '-s'], stdin: 'set -e\nuptime\n' });
  });

  it('exec lines become ordered steps without comments and blank lines', () => {
    const p = plan('exec', { targets: 'web', lines: ['# update', 'apt-get update', '', '  apt-get -y upgrade  '] });
    expect(steps(p).map((s) => [s.id, exec(s).argv])).toEqual([
      ['line-1', ['/bin/sh', '-c', 'apt-get update']],
      ['line-2', ['/bin/sh', '-c', 'apt-get -y upgrade']],
    ]);
    expect(p.batches).toHaveLength(1);
    expect(() => plan('exec', { targets: 'web', lines: ['# only a comment', ' '] })).toThrow(/^lines: has no commands/);
  });

  it('exec needs exactly one form', () => {
    expect(() => plan('exec', { targets: 'web' })).toThrow(InvalidInputError);
    expect(() => plan('exec', { targets: 'web' })).toThrow(/exactly one of argv, command, script or lines \(got none\)/);
    expect(() => plan('exec', { targets: 'web', argv: ['true'], command: 'true' })).toThrow(/got argv and command/);
  });

  it('reboot rolls one host per batch: schedule, then gate on ping until down, then until up', () => {
    const p = plan('reboot', { targets: 'k8s_worker' });
    expect(p.batches).toHaveLength(4);
    expect(p.failureBudget).toBe(0);
    const [schedule, down, up] = p.batches[0]?.steps ?? [];
    expect(exec(schedule)).toMatchObject({ argv: ['systemd-run', '--on-active=2', 'systemctl', 'reboot'], asRoot: true });
    expect(schedule?.hosts).toEqual(['node01']);
    expect(down?.action).toMatchObject({ kind: 'gate', check: { tool: 'ping' }, until: { name: 'unreachable' }, intervalMs: 1000, timeoutMs: 120_000 });
    expect(up?.action).toMatchObject({ kind: 'gate', check: { tool: 'ping' }, until: { name: 'reachable' }, intervalMs: 2000, timeoutMs: 600_000 });
    // The check is embedded as the ping tool's own plan: exactly what each poll runs.
    const check = down?.action.kind === 'gate' ? down.action.check.plan : undefined;
    expect(check?.batches[0]?.steps[0]?.action).toEqual({ kind: 'exec', argv: ['true'], asRoot: false, stdin: undefined, connectTimeoutMs: 3000 });
    expect(down?.hosts).toEqual(['node01']);
    expect(up?.description).toBe('wait until node01 answers over SSH (ping every 2s, up to 10m)');
    expect(p.batches.map((b) => b.steps[0]?.hosts)).toEqual([['node01'], ['node02'], ['node03'], ['node04']]);
  });

  it('reboot honours batch size, budget and wait timeouts', () => {
    const p = plan('reboot', { targets: 'k8s_cluster', batch_size: 4, failure_budget: 1, down_timeout: '30s', up_timeout: '5m' });
    expect(p.batches.map((b) => b.steps[0]?.hosts.length)).toEqual([4, 2]);
    expect(p.failureBudget).toBe(1);
    expect(p.batches[1]?.steps[1]?.action).toMatchObject({ kind: 'gate', until: { name: 'unreachable' }, timeoutMs: 30_000 });
    expect(p.batches[1]?.steps[2]?.action).toMatchObject({ kind: 'gate', until: { name: 'reachable' }, timeoutMs: 300_000 });
    // A gate fans out over the same hosts as the reboot it follows.
    expect(p.batches[1]?.steps[1]?.hosts).toEqual(p.batches[1]?.steps[0]?.hosts);
  });

  it('shutdown schedules poweroff with no wait', () => {
    const p = plan('shutdown', { targets: 'storage1' });
    expect(steps(p)).toHaveLength(1);
    expect(exec(steps(p)[0])).toMatchObject({ argv: ['systemd-run', '--on-active=2', 'systemctl', 'poweroff'], asRoot: true });
  });

  it('k8s_drain drains one node per batch with kubectl flags before --', () => {
    const p = plan('k8s_drain', { nodes: ['node01', 'node02'], drain_timeout: '90s' });
    expect(p.hosts).toEqual(['cp1']);
    expect(p.failureBudget).toBe(0);
    expect(p.batches.map((b) => exec(b.steps[0]).argv)).toEqual([
      ['kubectl', 'drain', '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=90s', '--', 'node01'],
      ['kubectl', 'drain', '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=90s', '--', 'node02'],
    ]);
    // Each drain is about its node: a failed drain fails node01, not the control plane.
    expect(p.batches.map((b) => b.steps[0]?.subject)).toEqual(['node01', 'node02']);
    // The step outlives kubectl's own timeout so kubectl can report why it gave up.
    expect(p.batches[0]?.steps[0]?.timeoutMs).toBeGreaterThan(90_000);
  });
});
