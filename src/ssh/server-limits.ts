// What an SSH server takes, by the software it names in its identification line. OpenSSH
// passes an exec request's command to the shell whole, so Linux's MAX_ARG_STRLEN is the only
// limit (remote-run.ts). Dropbear (OpenWrt, Buildroot and Yocto images, some Raspberry Pi
// setups) keeps MAX_CMD_LEN = 9000 bytes, and for a longer command it does not refuse the
// request: it drops the whole connection, taking every other command on it down mid-run.
// Such a command is refused here, before it is sent.

/** Dropbear's MAX_CMD_LEN (sysoptions.h; measured on 2022.83: 9000 bytes run, 9001 drop the connection). */
export const DROPBEAR_MAX_COMMAND_BYTES = 9000;

/** The longest exec command the server takes, or undefined when only the OS limit applies. */
export function commandLimitOf(serverSoftware: string): number | undefined {
  return /^dropbear/i.test(serverSoftware) ? DROPBEAR_MAX_COMMAND_BYTES : undefined;
}

/** Why `command` cannot be sent to this server, or undefined when it can. */
export function commandTooLong(command: string, serverSoftware: string): string | undefined {
  const limit = commandLimitOf(serverSoftware);
  const bytes = Buffer.byteLength(command);
  if (limit === undefined || bytes <= limit) return undefined;
  return `the node's SSH server (${serverSoftware}) takes commands of at most ${limit} bytes and drops the whole connection for a longer one; ` +
    `this one is ${bytes} bytes once wrapped: pass long data on stdin (a script) or upload a file`;
}
