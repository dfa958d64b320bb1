// `castellan doctor` in the terminal: one line per check, problems indented with their fix.
import type { Command } from 'commander';
import { doctorExitCode, type Finding, type FindingStatus } from '../doctor/finding.js';
import { runDoctor } from '../doctor/doctor.js';
import { visibleInline } from '../../config/visible.js';
import { findConfig } from './config-path.js';
import { textStyleFor, type TextStyle } from '../present/render/text.js';

const LABEL: Readonly<Record<FindingStatus, string>> = { ok: 'ok', warn: 'warn', fail: 'FAIL', skipped: 'skip' };
const COLOR: Readonly<Record<FindingStatus, string>> = { ok: '32', warn: '33', fail: '31', skipped: '2' };

export function doctorText(findings: readonly Finding[], style: TextStyle): string {
  const width = Math.max(...findings.map((f) => f.check.length));
  const paint = (status: FindingStatus, text: string): string => (style.color ? `\u001b[${COLOR[status]}m${text}\u001b[0m` : text);
  const pad = ' '.repeat(2 + 4 + 2 + width + 2);
  const lines: string[] = [];
  for (const f of findings) {
    lines.push(`  ${paint(f.status, LABEL[f.status].padEnd(4))}  ${f.check.padEnd(width)}  ${visibleInline(f.summary)}`);
    for (const d of f.details ?? []) lines.push(`${pad}${visibleInline(d)}`);
    if (f.fix !== undefined) lines.push(`${pad}fix: ${visibleInline(f.fix)}`);
  }
  const failed = findings.filter((f) => f.status === 'fail').length;
  const warned = findings.filter((f) => f.status === 'warn').length;
  const verdict = failed + warned === 0 ? 'everything checked is fine' : [failed > 0 ? `${failed} problem${failed === 1 ? '' : 's'}` : '', warned > 0 ? `${warned} warning${warned === 1 ? '' : 's'}` : ''].filter(Boolean).join(', ');
  lines.push('', verdict);
  return `${lines.join('\n')}\n`;
}

export function register(program: Command, globals: () => { config?: string; json?: boolean }): void {
  program
    .command('doctor')
    .description('Check the config, inventory, pinned host keys, SSH logins, Redis, the OIDC issuer and Slack; each problem with its fix')
    .option('--no-ssh', 'do not log in to the hosts')
    .option('--connect-timeout <seconds>', 'per-host SSH connect deadline', '5')
    .action(async (opts: { ssh: boolean; connectTimeout: string }) => {
      const file = findConfig(globals().config);
      const seconds = Number(opts.connectTimeout);
      const findings = await runDoctor(file, { ssh: opts.ssh, connectTimeoutMs: Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 5000 });
      if (globals().json) process.stdout.write(`${JSON.stringify({ config: file, findings }, null, 2)}\n`);
      else process.stdout.write(`castellan doctor: ${file}\n\n${doctorText(findings, textStyleFor(process.stdout))}`);
      process.exitCode = doctorExitCode(findings);
    });
}
