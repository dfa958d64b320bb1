// Untrusted text (argv, scripts, node output, host names, reasons) is shown to people who decide
// on it. A terminal, Slack or a browser would act on control characters (ESC sequences move the
// cursor, CR and backspace overwrite, bidi overrides reorder, zero-width characters hide), so an
// approver could read one command while another runs. Every front end renders untrusted text
// through these functions, which make each such character visible as an escape.
//
// The lowest layer owns this so that every renderer (CLI, API text, MCP, Slack, HTML) shares it.

/** Characters that change how surrounding text looks or hide themselves. */
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]/gu;

function escapeCode(char: string): string {
  const code = char.codePointAt(0) ?? 0;
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
}

/**
 * One-line, unambiguous form: every control or invisible character becomes `\xNN` / `\u{NNNN}`,
 * newline and tab become `\n` / `\t`, and a literal backslash is doubled, so no input can
 * imitate an escape. Use for argv words, host names, reasons, file paths.
 */
export function visibleInline(text: string): string {
  return text.replaceAll('\\', '\\\\').replace(INVISIBLE, (char) => {
    if (char === '\n') return '\\n';
    if (char === '\t') return '\\t';
    return escapeCode(char);
  });
}

/**
 * Multi-line form for output and script bodies: newlines and tabs stay as they are; every other
 * control or invisible character (CR, ESC, backspace, bidi, zero-width…) becomes `\xNN` / `\u{…}`.
 */
export function visibleBlock(text: string): string {
  return text.replace(INVISIBLE, (char) => (char === '\n' || char === '\t' ? char : escapeCode(char)));
}

/** True when the text holds a character that `visibleInline` would escape (other than `\`). */
export function hasInvisible(text: string): boolean {
  INVISIBLE.lastIndex = 0;
  const found = INVISIBLE.test(text);
  INVISIBLE.lastIndex = 0;
  return found;
}

const PLAIN_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * One argv word as a person should read it, in a form bash would also accept: plain when it is
 * plain, single-quoted when it only has shell-special characters, ANSI-C `$'…'` quoting with
 * escapes when it holds anything invisible.
 */
export function displayWord(word: string): string {
  if (word !== '' && PLAIN_WORD.test(word)) return word;
  if (!hasInvisible(word)) return `'${word.replaceAll("'", `'\\''`)}'`;
  const body = word.replaceAll('\\', '\\\\').replaceAll("'", "\\'").replace(INVISIBLE, (char) => {
    if (char === '\n') return '\\n';
    if (char === '\t') return '\\t';
    if (char === '\r') return '\\r';
    if (char === '\u001b') return '\\e';
    return escapeCode(char).replace(/^\\u\{(.*)\}$/, (_m, hex: string) => `\\u${hex.padStart(4, '0')}`);
  });
  return `$'${body}'`;
}

/** A whole argv for display (never for execution: src/ssh/quote.ts builds command lines). */
export function displayArgv(argv: readonly string[]): string {
  return argv.map(displayWord).join(' ');
}

/**
 * JSON for a text channel a person may read (MCP text content): the same value as
 * JSON.stringify, with every control or invisible character written as a `\uNNNN` escape
 * (JSON.stringify leaves C1, bidi and zero-width characters raw). Parses back unchanged.
 */
export function visibleJson(value: unknown): string {
  return (JSON.stringify(value) ?? 'null').replace(INVISIBLE, (char) => `\\u${(char.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`);
}
