// When a command fails because the node lacks what it needs (no systemd as init, a program
// that is not installed, sudo that wants a password), the exit code alone ("exit code 1")
// tells the operator nothing. These patterns turn the program's own complaint into one line
// that says what is missing ("systemd is not running here (PID 1 is sshd)"). The patterns
// are the messages the programs print on Debian; anything else keeps the plain exit code.

export interface Diagnosis {
  /** One line naming what the node lacks. `{pid1}` is replaced by PID 1's name when asked for. */
  readonly text: string;
  /** The text names PID 1: ask the node for /proc/1/comm first. */
  readonly needsInitName: boolean;
}

const SYSTEMD_MISSING = /System has not been booted with systemd|Failed to connect to bus: (No such file or directory|Host is down)|Running in chroot, ignoring/;

/** How the command was run, when that changes the advice. */
export interface RunContext {
  /**
   * Castellan itself ran it under `sudo -n` (`as_root` with a non-root login): sudo was asked
   * for `sh -c <wrapper>`, not for the command, so a sudo rule for the command alone does not help.
   */
  readonly sudoLogin?: string | undefined;
}

/** Diagnose a failed run from its argv, exit code and stderr; undefined when nothing is recognised. */
export function diagnoseFailure(argv: readonly string[], exitCode: number | null, stderr: string, context: RunContext = {}): Diagnosis | undefined {
  const program = argv[0] ?? '';
  if (SYSTEMD_MISSING.test(stderr)) {
    return { text: 'systemd is not running here (PID 1 is {pid1})', needsInitName: true };
  }
  const sudoWantsPassword = /sudo: (a password is required|a terminal is required)/.test(stderr);
  const sudoRefused = /is not in the sudoers file|is not allowed to execute/.test(stderr);
  if ((sudoWantsPassword || sudoRefused) && context.sudoLogin !== undefined) {
    // The wrapper runs as root so that its deadline, the finder and the killer can reach the
    // root processes the run starts; a per-command rule cannot give that, so say what can.
    const why = sudoWantsPassword ? 'sudo wants a password here' : `${context.sudoLogin} may not run commands as root through sudo here`;
    return {
      text: `${why}: as_root runs the command's wrapper as \`sudo -n sh -c …\` (so it can stop what it starts), which needs \`${context.sudoLogin} ALL=(ALL) NOPASSWD: ALL\` in sudoers; a rule for ${program || 'the command'} alone is not enough`,
      needsInitName: false,
    };
  }
  if (sudoWantsPassword) {
    return { text: `sudo needs a password here: allow ${program || 'the command'} with NOPASSWD for the login user (Castellan runs sudo -n)`, needsInitName: false };
  }
  if (sudoRefused) {
    return { text: `the login user may not run ${program || 'this'} through sudo here`, needsInitName: false };
  }
  // exit 127 is POSIX "command not found"; sudo says it in words.
  const notFound = /(?:^|\n)(?:sudo: )?(?:[^\n:]*: )*([^\s:]+): (?:command )?not found/.exec(stderr);
  if (exitCode === 127 || notFound) {
    const name = notFound?.[1] ?? program;
    return { text: `${name} is not installed here (command not found)`, needsInitName: false };
  }
  return undefined;
}

/** The diagnosis as shown, with PID 1's name filled in (or left generic when unknown). */
export function diagnosisText(diagnosis: Diagnosis, initName: string | undefined): string {
  const name = initName?.trim().replace(/[^\w.@+-]/g, '?').slice(0, 32);
  return diagnosis.text.replace('{pid1}', name ? name : 'not systemd');
}

/** Asked over a control channel when a diagnosis names PID 1: a fixed command, no input in it. */
export const INIT_NAME_COMMAND = 'cat /proc/1/comm';
