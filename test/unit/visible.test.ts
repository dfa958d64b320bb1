import { describe, expect, it } from 'vitest';
import { displayArgv, displayWord, hasInvisible, visibleBlock, visibleInline } from '../../config/visible.js';

describe('visible text', () => {
  it('shows terminal escapes, CR and backspace instead of letting them act', () => {
    const hostile = 'ls\u001b[2K\rrm -rf /\b\b';
    expect(visibleInline(hostile)).toBe('ls\\x1b[2K\\x0drm -rf /\\x08\\x08');
    expect(visibleBlock(`a\n${hostile}\tb`)).toBe('a\nls\\x1b[2K\\x0drm -rf /\\x08\\x08\tb');
  });

  it('shows bidi overrides, zero-width characters, DEL and C1 controls', () => {
    expect(visibleInline('a\u202eb\u200bc\u007fd\u009be\ufeff')).toBe('a\\u{202e}b\\u{200b}c\\x7fd\\x9be\\u{feff}');
  });

  it('is unambiguous: a literal backslash sequence never looks like an escaped character', () => {
    expect(visibleInline('\\x1b')).toBe('\\\\x1b');
    expect(visibleInline('\u001b')).not.toBe(visibleInline('\\x1b'));
  });

  it('leaves ordinary text, including non-ASCII letters, alone', () => {
    expect(visibleInline('node01: 52 °C — ok')).toBe('node01: 52 °C — ok');
    expect(hasInvisible('plain text')).toBe(false);
    expect(hasInvisible('tab\there')).toBe(true);
  });

  it('displays argv words the way bash would read them back', () => {
    expect(displayArgv(['systemctl', 'restart', 'nginx.service'])).toBe('systemctl restart nginx.service');
    expect(displayWord("it's here")).toBe(`'it'\\''s here'`);
    expect(displayWord('')).toBe(`''`);
    expect(displayWord('echo\u001b[8mhidden')).toBe(`$'echo\\e[8mhidden'`);
    expect(displayWord("a'b\nc\u202e")).toBe(`$'a\\'b\\nc\\u202e'`);
  });
});
