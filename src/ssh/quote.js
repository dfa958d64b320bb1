// The one place where an argv array becomes a remote command line. SSH `exec` carries a single
// string that the remote login shell parses, so every argument is single-quoted: inside single
// quotes POSIX sh gives no character a special meaning, except `'` itself, which is closed,
// escaped and reopened (`'\''`). No allowlist or blocklist is involved, so nothing can slip by.
export class QuotingError extends Error {
    constructor(message) {
        super(message);
        this.name = 'QuotingError';
    }
}
/** Quote one argument for POSIX sh. */
export function quoteArg(arg) {
    // A C string (what execve passes) cannot hold NUL: the remote side would cut the argument
    // there, so the command would differ from what was approved. Refuse instead.
    if (arg.includes('\0'))
        throw new QuotingError('an argument contains a NUL byte, which a command line cannot carry');
    return `'${arg.replaceAll("'", `'\\''`)}'`;
}
/** Turn argv into a POSIX sh command line that the remote shell splits back into exactly argv. */
export function quoteArgv(argv) {
    if (argv.length === 0)
        throw new QuotingError('cannot run an empty command (argv has no program)');
    return argv.map((arg, index) => {
        if (typeof arg !== 'string')
            throw new QuotingError(`argument ${index} is not a string`);
        return quoteArg(arg);
    }).join(' ');
}
