// The CLI's global options, defined once: commander registers them, and the tool verbs
// (`castellan uptime all --config x.yaml`), whose words go to the tool's own parser, pull them
// out wherever they appear before `--`, the way kubectl accepts its flags anywhere.

export interface GlobalOptionSpec {
  /** Commander flags, e.g. '-c, --config <file>'. */
  readonly flags: string;
  readonly description: string;
}

export const GLOBAL_OPTIONS: readonly GlobalOptionSpec[] = [
  { flags: '-c, --config <file>', description: 'castellan.yaml (default: $CASTELLAN_CONFIG, ./castellan.yaml, ./.castellan/castellan.yaml)' },
  { flags: '--server <url>', description: "remote mode: talk to a Castellan server's HTTP API (token from `castellan login`, $CASTELLAN_TOKEN or --token-file)" },
  { flags: '--token-file <file>', description: 'remote mode: file holding an OIDC access token for Castellan' },
  { flags: '--json', description: 'print the job record as JSON on stdout' },
  { flags: '--raw', description: "print each host's own output (folded) instead of the tool's table" },
  { flags: '--no-wait', description: 'submit and print the job id without waiting for the result' },
  { flags: '--idempotency-key <key>', description: 'the same key again returns the same job instead of a new one' },
  { flags: '-v, --verbose', description: 'debug logs on stderr' },
];

interface ParsedFlag {
  readonly names: readonly string[];
  readonly takesValue: boolean;
}

const PARSED: readonly ParsedFlag[] = GLOBAL_OPTIONS.map((o) => ({
  names: o.flags.split(/[ ,]+/).filter((w) => w.startsWith('-')),
  takesValue: /<[^>]+>/.test(o.flags),
}));

function flagOf(word: string): { flag: ParsedFlag; inlineValue: boolean } | undefined {
  const name = word.includes('=') ? word.slice(0, word.indexOf('=')) : word;
  const flag = PARSED.find((f) => f.names.includes(name));
  if (flag === undefined) return undefined;
  const inlineValue = word.includes('=');
  // `--json=x` is not a thing; leave such words to the tool parser, which names them.
  if (inlineValue && !flag.takesValue) return undefined;
  return { flag, inlineValue };
}

/** Index of the command word, skipping global options and their values; -1 when there is none. */
export function firstWordIndex(args: readonly string[]): number {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') return -1;
    const found = flagOf(a);
    if (found) {
      if (found.flag.takesValue && !found.inlineValue) i += 1;
    } else if (!a.startsWith('-')) return i;
  }
  return -1;
}

/**
 * Split a tool verb's words into the global options (wherever they appear before `--`) and the
 * tool's own words. Words after `--` are exec's command and are never touched.
 */
export function splitGlobalOptions(words: readonly string[]): { globals: string[]; rest: string[] } {
  const globals: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w === '--') {
      rest.push(...words.slice(i));
      break;
    }
    const found = flagOf(w);
    if (!found) {
      rest.push(w);
      continue;
    }
    globals.push(w);
    if (found.flag.takesValue && !found.inlineValue && i + 1 < words.length) globals.push(words[++i]!);
  }
  return { globals, rest };
}
