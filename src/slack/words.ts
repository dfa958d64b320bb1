// Slash command text → words, as a shell would split them for the CLI: whitespace separates,
// '…' and "…" quote (Slack's clients often turn quotes into ‘…’ / “…”, accepted too), and a
// backslash escapes the next character. Nothing here is ever executed: the words go through
// the same tool-derived parsing as the CLI's argv, and commands are built by the quoting module.

export class WordsError extends Error {}

const QUOTES: Readonly<Record<string, string>> = { "'": "'", '"': '"', '\u2018': '\u2019', '\u201c': '\u201d' };

/** Slack always escapes these three in message and command text (https://docs.slack.dev/messaging/formatting-message-text). */
export function unescapeSlack(text: string): string {
  return text.replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&');
}

export function splitWords(input: string): string[] {
  const text = unescapeSlack(input);
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i] ?? '';
    if (/\s/.test(char)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (char === '\\' && i + 1 < text.length) {
      word += text[++i];
      continue;
    }
    const close = QUOTES[char];
    if (close !== undefined) {
      const end = text.indexOf(close, i + 1);
      if (end < 0) throw new WordsError(`unterminated quote ${char}…: close it with ${close}`);
      word += text.slice(i + 1, end);
      i = end;
      continue;
    }
    word += char;
  }
  if (inWord) words.push(word);
  return words;
}
