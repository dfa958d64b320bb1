// Shell completion, the way kubectl and cobra do it: one hidden command (`castellan __complete
// WORDS… CURRENT`) computes candidates from the same definitions the CLI parses with (commands,
// each tool's parameters from its schema, hosts and groups from the inventory of the config in
// use), and `castellan completion bash|zsh|fish` prints a few lines of shell that ask it.
import type { Command } from 'commander';
import { loadConfig } from '../../config/load.js';
import { loadInventory } from '../../config/inventory.js';
import { catalogue, inputJsonSchema } from '../../tools/index.js';
import { CastellanError } from '../../config/errors.js';
import { findConfig } from './config-path.js';
import { GLOBAL_OPTIONS, firstWordIndex } from './global-options.js';

const SHELLS = ['bash', 'zsh', 'fish'] as const;

const SCRIPTS: Record<(typeof SHELLS)[number], string> = {
  bash: `# castellan completion for bash: source <(castellan completion bash)
_castellan() {
  local IFS=$'\\n'
  COMPREPLY=($(castellan __complete "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -F _castellan castellan
`,
  zsh: `#compdef castellan
# castellan completion for zsh: source <(castellan completion zsh)
_castellan() {
  local -a candidates
  candidates=("\${(@f)$(castellan __complete "\${(@)words[2,CURRENT]}" 2>/dev/null)}")
  compadd -- \${candidates:#}
}
compdef _castellan castellan
`,
  fish: `# castellan completion for fish: castellan completion fish | source
complete -c castellan -f -a '(castellan __complete (commandline -opc)[2..-1] (commandline -ct))'
`,
};

const optionWords = (flags: string): string[] => flags.split(/[ ,]+/).filter((w) => w.startsWith('--'));
const takesValue = (flags: string): boolean => /<[^>]+>/.test(flags);

/** Hosts and groups of the inventory behind the config in use; nothing when it cannot be read. */
async function targetWords(configFlag: string | undefined): Promise<string[]> {
  try {
    const config = await loadConfig(findConfig(configFlag));
    const inventory = await loadInventory(config.inventory, { defaultPort: config.ssh.port });
    return [...inventory.groups.keys(), ...inventory.hosts.keys()];
  } catch {
    return [];
  }
}

/** Candidates for the last word of `words` (the words after `castellan`, the current one last). */
export async function completions(program: Command, words: readonly string[]): Promise<string[]> {
  const current = words.at(-1) ?? '';
  const before = words.slice(0, -1);
  const globalFlags = GLOBAL_OPTIONS.flatMap((o) => optionWords(o.flags));
  const configAt = before.findIndex((w) => w === '--config' || w === '-c');
  const configFlag = configAt >= 0 ? before[configAt + 1] : before.find((w) => w.startsWith('--config='))?.slice(9);
  const previous = before.at(-1);
  // After an option that takes a value (a file, a URL, a key): let the shell complete files.
  if (previous !== undefined && GLOBAL_OPTIONS.some((o) => takesValue(o.flags) && optionWords(o.flags).includes(previous))) return [];
  const commandAt = firstWordIndex(before);
  const commands = program.commands.filter((c) => !c.name().startsWith('__')).map((c) => c.name());
  const tools = catalogue.map((t) => t.name);
  const pick = (candidates: readonly string[]): string[] => [...new Set(candidates)].filter((c) => c.startsWith(current));

  if (commandAt < 0) return pick(current.startsWith('-') ? globalFlags : [...commands, ...tools]);
  let verb = before[commandAt]!.replaceAll('-', '_');
  let argsStart = commandAt + 1;
  if (verb === 'run') {
    if (before.length === commandAt + 1) return pick(tools);
    verb = before[commandAt + 1]!.replaceAll('-', '_');
    argsStart += 1;
  }
  if (verb === 'help') return pick(tools);
  if (verb === 'completion') return pick(SHELLS);
  const tool = catalogue.find((t) => t.name === verb);
  const command = program.commands.find((c) => c.name() === before[commandAt]);
  if (before.includes('--')) return [];
  if (current.startsWith('-')) {
    const own = tool
      ? Object.keys(inputJsonSchema(tool).properties ?? {}).filter((f) => f !== 'targets').map((f) => `--${f.replaceAll('_', '-')}`)
      : (command?.options ?? []).flatMap((o) => optionWords(o.flags));
    return pick([...own, ...globalFlags]);
  }
  // An option's value: nothing we can know (units, durations…), except the shell's files.
  if (previous?.startsWith('--') && !globalFlags.includes(previous)) return [];
  const positional = before.slice(argsStart).filter((w) => !w.startsWith('-'));
  const wantsTargets = tool ? 'targets' in (inputJsonSchema(tool).properties ?? {}) && positional.length === 0 : ['list-nodes', 'pipe', 'heredoc', 'hosts'].includes(before[commandAt]!);
  if (before[commandAt] === 'hosts' && positional.length === 0) return pick(['trust']);
  return wantsTargets || (before[commandAt] === 'hosts' && positional.length === 1) ? pick(['all', ...(await targetWords(configFlag))]) : [];
}

export function register(program: Command): void {
  program
    .command('completion')
    .description('Print shell completion (commands, tool parameters, inventory hosts and groups): source <(castellan completion bash)')
    .argument('<shell>', SHELLS.join(' | '))
    .action((shell: string) => {
      if (!(SHELLS as readonly string[]).includes(shell)) throw new CastellanError('invalid_input', `completion: expected one of ${SHELLS.join(', ')}, got '${shell}'`);
      process.stdout.write(SCRIPTS[shell as (typeof SHELLS)[number]]);
    });

}
