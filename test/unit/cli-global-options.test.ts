// Global options anywhere (`castellan uptime all --config x.yaml`), as kubectl allows, without
// ever touching the words after `--` (exec's command) or stealing a tool's own parameter.
import { describe, expect, it } from 'vitest';
import { catalogue, inputJsonSchema } from '../../tools/index.js';
import { GLOBAL_OPTIONS, firstWordIndex, splitGlobalOptions } from '../../src/cli/global-options.js';

describe('global options', () => {
  it('are pulled out of a tool verb wherever they appear before --', () => {
    expect(splitGlobalOptions(['all', '--config', 'x.yaml', '--json'])).toEqual({ globals: ['--config', 'x.yaml', '--json'], rest: ['all'] });
    expect(splitGlobalOptions(['web', '--unit', 'nginx', '-c', 'x.yaml', '--lines', '5'])).toEqual({
      globals: ['-c', 'x.yaml'],
      rest: ['web', '--unit', 'nginx', '--lines', '5'],
    });
    expect(splitGlobalOptions(['odd', '--server=https://c.example', '--no-wait'])).toEqual({ globals: ['--server=https://c.example', '--no-wait'], rest: ['odd'] });
  });

  it('leave the words after -- alone: they are the remote command', () => {
    expect(splitGlobalOptions(['all', '--no-wait', '--', 'grep', '--config', '-v', 'x'])).toEqual({
      globals: ['--no-wait'],
      rest: ['all', '--', 'grep', '--config', '-v', 'x'],
    });
  });

  it('find the command word behind leading global options and their values', () => {
    expect(firstWordIndex(['--config', 'x.yaml', '-v', 'ping', 'all'])).toBe(3);
    expect(firstWordIndex(['--config=x.yaml', 'ping'])).toBe(1);
    expect(firstWordIndex(['--json'])).toBe(-1);
  });

  it('never share a name with a tool parameter (the tool would lose it)', () => {
    const globalNames = GLOBAL_OPTIONS.flatMap((o) => o.flags.split(/[ ,]+/).filter((w) => w.startsWith('--')));
    for (const tool of catalogue) {
      for (const field of Object.keys(inputJsonSchema(tool).properties ?? {})) {
        const flag = `--${field.replaceAll('_', '-')}`;
        expect(globalNames, `${tool.name}.${field}`).not.toContain(flag);
        expect(globalNames, `${tool.name}.${field}`).not.toContain(`--no-${field.replaceAll('_', '-')}`);
      }
    }
  });
});
