// A node that lacks what a tool needs gets one line saying so, not "exit code 1".
import { describe, expect, it } from 'vitest';
import { diagnoseFailure, diagnosisText } from '../../src/ssh/missing-prerequisite.js';

const explain = (argv: string[], code: number, stderr: string, init?: string): string | undefined => {
  const d = diagnoseFailure(argv, code, stderr);
  return d === undefined ? undefined : diagnosisText(d, init);
};

describe('missing prerequisites', () => {
  it('names PID 1 when systemd is not the init system', () => {
    const stderr = "System has not been booted with systemd as init system (PID 1). Can't operate.\nFailed to connect to bus: Host is down\n";
    expect(explain(['systemctl', 'show', 'ssh'], 1, stderr, 'sshd\n')).toBe('systemd is not running here (PID 1 is sshd)');
    expect(explain(['systemctl', 'show', 'ssh'], 1, stderr, undefined)).toBe('systemd is not running here (PID 1 is not systemd)');
  });

  it('shows an odd PID 1 name safely', () => {
    const stderr = 'System has not been booted with systemd as init system (PID 1).';
    expect(explain(['systemctl'], 1, stderr, 'in\u001bit\n')).toBe('systemd is not running here (PID 1 is in?it)');
  });

  it('says which program is not installed', () => {
    expect(explain(['wg', 'show', 'all', 'dump'], 127, 'sh: 1: exec: wg: not found\n')).toBe('wg is not installed here (command not found)');
    expect(explain(['kubectl', 'get', 'nodes'], 1, 'sudo: kubectl: command not found\n')).toBe('kubectl is not installed here (command not found)');
    expect(explain(['etcdctl'], 127, '')).toBe('etcdctl is not installed here (command not found)');
  });

  it('explains sudo that wants a password', () => {
    expect(explain(['journalctl', '-u', 'ssh'], 1, 'sudo: a password is required\n')).toMatch(/^sudo needs a password here: allow journalctl with NOPASSWD/);
  });

  it('says what as_root needs when Castellan ran the wrapper under sudo: a rule for the command alone is not enough', () => {
    const password = diagnoseFailure(['journalctl', '-u', 'ssh'], 1, 'sudo: a password is required\n', { sudoLogin: 'pi' });
    expect(password?.text).toBe('sudo wants a password here: as_root runs the command\'s wrapper as `sudo -n sh -c …` (so it can stop what it starts), ' +
      'which needs `pi ALL=(ALL) NOPASSWD: ALL` in sudoers; a rule for journalctl alone is not enough');
    const refused = diagnoseFailure(['reboot'], 1, "Sorry, user pi is not allowed to execute '/usr/bin/sh -c …' as root on node01.\n", { sudoLogin: 'pi' });
    expect(refused?.text).toMatch(/^pi may not run commands as root through sudo here: .*`pi ALL=\(ALL\) NOPASSWD: ALL`.*a rule for reboot alone is not enough$/);
  });

  it('leaves ordinary failures alone', () => {
    expect(explain(['false'], 1, '')).toBeUndefined();
    expect(explain(['grep', 'x', '/etc/hosts'], 2, 'grep: /etc/hosts: No such file or directory\n')).toBeUndefined();
  });
});
