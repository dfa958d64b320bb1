// The catalogue and everything front ends derive from it: JSON Schemas, MCP annotations,
// help text, validation issues and CLI/Slack argument parsing.
import { describe, expect, it } from 'vitest';
import {
  annotations,
  catalogue,
  getTool,
  helpText,
  inputJsonSchema,
  outputJsonSchema,
  parseToolArgs,
  UnknownToolError,
  validateInput,
} from '../../tools/index.js';

describe('catalogue', () => {
  it('has unique, well-formed names in a stable order', () => {
    const names = catalogue.map((t) => t.name);
    expect(new Set(names).size).toBe(names.length);
    for (const name of names) expect(name).toMatch(/^[a-z][a-z0-9_]*$/);
    expect(names.slice(0, 3)).toEqual(['ping', 'uptime', 'resource_usage']);
    expect(names).toHaveLength(32);
  });

  it('every tool says which command it mirrors and describes every parameter', () => {
    for (const tool of catalogue) {
      expect(tool.description, tool.name).toMatch(/Mirrors `/);
      const props = inputJsonSchema(tool).properties ?? {};
      for (const [field, prop] of Object.entries(props)) {
        expect(prop.description, `${tool.name}.${field}`).toMatch(/\w{3}/);
        expect(field, `${tool.name}.${field}`).toMatch(/^[a-z][a-z0-9_]*$/);
      }
    }
  });

  it('every tool either plans or answers, and read tools that plan also summarize into a declared output', () => {
    for (const tool of catalogue) {
      expect('plan' in tool !== 'answer' in tool, tool.name).toBe(true);
      if (tool.risk === 'read') {
        expect(tool.output, tool.name).toBeDefined();
        if ('plan' in tool) expect('summarize' in tool, tool.name).toBe(true);
      }
    }
  });

  it('getTool suggests close names for unknown tools', () => {
    expect(getTool('journal').name).toBe('journal');
    expect(() => getTool('servce_status')).toThrow(UnknownToolError);
    expect(() => getTool('servce_status')).toThrow(/unknown tool 'servce_status' \(did you mean 'service_status'/);
    expect(() => getTool('wireguard')).toThrow(/did you mean 'wireguard_mesh' or 'wireguard_status'\?/);
    expect(() => getTool('zzzzzzzzzz')).toThrow(/tools are: ping, uptime/);
  });
});

describe('JSON Schemas', () => {
  it('input schemas are closed objects with defaults and bounds', () => {
    const journal = inputJsonSchema(getTool('journal'));
    expect(journal).toMatchObject({ type: 'object', additionalProperties: false, required: ['unit'] });
    expect(journal.properties?.lines).toMatchObject({ type: 'integer', minimum: 1, maximum: 2000, default: 100 });
    expect(journal.properties?.targets).toMatchObject({ type: 'string', default: 'all', maxLength: 1024 });
    expect(journal.properties?.priority?.enum).toContain('warning');
    // Change and destructive tools never default to every host.
    expect(inputJsonSchema(getTool('reboot')).required).toContain('targets');
    expect(inputJsonSchema(getTool('reboot')).properties?.down_timeout).toMatchObject({ type: 'string', default: '2m' });
  });

  it('output schemas exist for summarizing tools, not for pure change tools', () => {
    expect(outputJsonSchema(getTool('wireguard_status'))).toMatchObject({ type: 'object', properties: { hosts: { type: 'array' } } });
    expect(outputJsonSchema(getTool('service_restart'))).toBeUndefined();
  });
});

describe('annotations', () => {
  it('derive MCP hints from risk', () => {
    expect(annotations(getTool('uptime'))).toEqual({ title: 'Uptime and load', readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: true });
    expect(annotations(getTool('service_restart'))).toMatchObject({ readOnlyHint: false, destructiveHint: false, idempotentHint: true });
    expect(annotations(getTool('run_script'))).toMatchObject({ readOnlyHint: false, destructiveHint: true, idempotentHint: false });
    expect(annotations(getTool('reboot'))).toMatchObject({ readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true });
    expect(annotations(getTool('list_nodes')).openWorldHint).toBe(false);
    expect(annotations(getTool('list_groups')).openWorldHint).toBe(false);
  });
});

describe('helpText', () => {
  it('shows usage, parameters with type, default and bounds, and the approval', () => {
    const help = helpText(getTool('journal'));
    expect(help.split('\n')[0]).toBe('Usage: castellan journal [<targets>] --unit <unit> [--lines <lines>] [--since <since>] [--priority <priority>] [--timeout <timeout>]');
    expect(help).toContain('Mirrors `journalctl -u UNIT');
    expect(help).toContain('--lines: an integer from 1 to 2000; default 100');
    expect(help).toContain('--unit: required;');
    expect(help).toContain('--priority: one of emerg, alert, crit, err, warning, notice, info, debug');
    expect(help).toContain('How many of the most recent lines to show.');
    expect(help).toMatch(/Risk: read \(reads only; runs without approval\)/);
  });

  it('names destructive approval, flags, positional nodes and the -- rest', () => {
    expect(helpText(getTool('reboot'))).toMatch(/Risk: destructive \(.*waits for an approver/);
    expect(helpText(getTool('exec'))).toContain('--as-root: flag (turn off with --no-as-root); default false');
    expect(helpText(getTool('exec'))).toContain('[-- <argv>…]');
    expect(helpText(getTool('k8s_drain'), '/castellan').split('\n')[0]).toMatch(/^Usage: \/castellan k8s_drain <nodes>… /);
    expect(helpText(getTool('reboot'))).toContain('--batch-size: an integer from 1 to 100000 or a percentage like 25%; default 1');
  });
});

describe('validateInput', () => {
  it('returns the parsed input with defaults and durations in ms', () => {
    expect(validateInput(getTool('wireguard_status'), {})).toEqual({ ok: true, input: { targets: 'all', stale_after: 180_000 } });
  });

  it('names each field and what was wrong', () => {
    const result = validateInput(getTool('journal'), { unit: 'nginx', lines: 0, priority: 'loud', since: 'last week', colour: true });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.issues).toEqual(
      expect.arrayContaining([
        { field: 'lines', message: 'expected an integer from 1 to 2000, got 0' },
        { field: 'priority', message: "expected one of emerg, alert, crit, err, warning, notice, info, debug, got 'loud'" },
        { field: 'since', message: expect.stringMatching(/^expected -1h, -30min/) },
        { field: 'colour', message: 'unknown parameter' },
      ]),
    );
    expect(result.message).toContain('lines: expected an integer from 1 to 2000, got 0');
  });

  it('says when a required field is missing and suggests a misspelled one', () => {
    const result = validateInput(getTool('service_status'), { unti: 'nginx' });
    expect(result).toMatchObject({ ok: false });
    if (result.ok) return;
    expect(result.issues).toEqual(expect.arrayContaining([{ field: 'unit', message: 'is required' }, { field: 'unti', message: "unknown parameter (did you mean 'unit'?)" }]));
  });

  it('checks durations and batch sizes with their bounds', () => {
    expect(validateInput(getTool('wireguard_status'), { stale_after: '8d' })).toMatchObject({ ok: false, issues: [{ field: 'stale_after', message: 'expected a duration like 30s, 5m, 2h or 500ms' }] });
    expect(validateInput(getTool('wireguard_status'), { stale_after: '200h' })).toMatchObject({ ok: false, issues: [{ field: 'stale_after', message: 'must be between 1s and 168h' }] });
    expect(validateInput(getTool('reboot'), { targets: 'web', batch_size: '150%' })).toMatchObject({ ok: false, issues: [{ field: 'batch_size' }] });
    expect(validateInput(getTool('reboot'), { targets: 'web', batch_size: '10%' })).toMatchObject({ ok: true, input: { batch_size: '10%' } });
  });

  it('refuses the documented hostile shapes in names', () => {
    for (const unit of ['nginx;reboot', '$(id)', '`id`', 'a\nb', 'a\0b', '-H', 'a b']) {
      expect(validateInput(getTool('service_restart'), { targets: 'web', unit }), unit).toMatchObject({ ok: false, issues: [{ field: 'unit' }] });
    }
    for (const targets of ['web;reboot', '$(id)', '`id`', 'web\nall', 'a\0b', 'a|b']) {
      expect(validateInput(getTool('ping'), { targets }), targets).toMatchObject({ ok: false, issues: [{ field: 'targets' }] });
    }
    expect(validateInput(getTool('k8s_drain'), { nodes: ['node01', 'Node_2'] })).toMatchObject({ ok: false, issues: [{ field: 'nodes[1]' }] });
  });
});

describe('parseToolArgs', () => {
  const journal = getTool('journal');

  it('takes targets first, then --param value and --param=value', () => {
    expect(parseToolArgs(journal, ['web', '--unit', 'nginx', '--lines=50', '--since', '-1h'])).toEqual({
      ok: true,
      input: { targets: 'web', unit: 'nginx', lines: 50, since: '-1h' },
    });
    expect(parseToolArgs(journal, ['--unit', 'k3s'])).toMatchObject({ ok: true, input: { targets: 'all', lines: 100 } });
  });

  it('explains a bad integer with the option name and bounds', () => {
    expect(parseToolArgs(journal, ['web', '--unit', 'nginx', '--lines', 'abc'])).toMatchObject({
      ok: false,
      message: "--lines: expected an integer from 1 to 2000, got 'abc'",
    });
    expect(parseToolArgs(journal, ['web', '--unit', 'nginx', '--lines', '5000']).ok).toBe(false);
    expect(parseToolArgs(journal, ['web', '--unit', 'nginx', '--lines'])).toMatchObject({ ok: false, message: '--lines: expects a value (an integer from 1 to 2000)' });
  });

  it('rejects unknown options with a did-you-mean and stray words', () => {
    expect(parseToolArgs(journal, ['web', '--unit', 'nginx', '--line', '5'])).toMatchObject({ ok: false, message: expect.stringMatching(/^unknown option --line \(did you mean '--lines'/) });
    expect(parseToolArgs(journal, ['web', '-n', '5'])).toMatchObject({ ok: false, message: expect.stringMatching(/^unknown option -n/) });
    expect(parseToolArgs(journal, ['web', 'extra', '--unit', 'nginx'])).toMatchObject({ ok: false, message: "unexpected argument 'extra'" });
    expect(parseToolArgs(getTool('list_groups'), ['web'])).toMatchObject({ ok: false, message: "unexpected argument 'web' (list_groups takes options only)" });
    expect(parseToolArgs(journal, ['web', '--unit', 'a', '--unit', 'b'])).toMatchObject({ ok: false, message: '--unit: given more than once' });
  });

  it('accepts kebab and snake spellings, --flag, --no-flag and --flag=false', () => {
    const tool = getTool('disk_usage');
    expect(parseToolArgs(tool, ['--include-pseudo'])).toMatchObject({ ok: true, input: { include_pseudo: true } });
    expect(parseToolArgs(tool, ['--include_pseudo=false'])).toMatchObject({ ok: true, input: { include_pseudo: false } });
    expect(parseToolArgs(getTool('run_script'), ['web', '--script', 'id', '--as-root', '--no-as-root'])).toMatchObject({ ok: false, message: '--as-root: given more than once' });
    expect(parseToolArgs(getTool('run_script'), ['web', '--script', 'id', '--no-as-root'])).toMatchObject({ ok: true, input: { as_root: false } });
  });

  it('collects lists repeated or comma-separated, never cutting a valid item', () => {
    expect(parseToolArgs(getTool('k8s_drain'), ['node01,node02', '--drain-timeout', '90s'])).toMatchObject({ ok: true, input: { nodes: ['node01', 'node02'], drain_timeout: 90_000 } });
    expect(parseToolArgs(getTool('cert_expiry'), ['--paths', '/a.pem', '--paths', '/b.pem'])).toMatchObject({ ok: true, input: { paths: ['/a.pem', '/b.pem'] } });
    // `/etc/a,b.pem` is itself a valid path: kept whole.
    expect(parseToolArgs(getTool('cert_expiry'), ['--paths', '/etc/a,b.pem'])).toMatchObject({ ok: true, input: { paths: ['/etc/a,b.pem'] } });
    expect(parseToolArgs(getTool('exec'), ['web', '--lines', 'echo a,b', '--lines', 'uptime'])).toMatchObject({ ok: true, input: { lines: ['echo a,b', 'uptime'] } });
  });

  it('takes everything after -- as exec argv or script args, untouched', () => {
    expect(parseToolArgs(getTool('exec'), ['web', '--as-root', '--', 'ls', '-la', '--', '/tmp;rm'])).toEqual({
      ok: true,
      input: { targets: 'web', argv: ['ls', '-la', '--', '/tmp;rm'], as_root: true },
    });
    expect(parseToolArgs(getTool('run_script'), ['web', '--script', 'echo "$@"', '--', '-x', 'a b'])).toMatchObject({ ok: true, input: { args: ['-x', 'a b'] } });
    expect(parseToolArgs(journal, ['web', '--unit', 'nginx', '--', 'x'])).toMatchObject({ ok: false, message: "journal takes no arguments after --, got 'x'" });
  });

  it('passes batch sizes through as typed and reports schema errors by option', () => {
    expect(parseToolArgs(getTool('reboot'), ['web', '--batch-size', '25%'])).toMatchObject({ ok: true, input: { batch_size: '25%' } });
    expect(parseToolArgs(getTool('reboot'), ['web', '--batch-size', '2'])).toMatchObject({ ok: true, input: { batch_size: 2 } });
    expect(parseToolArgs(getTool('exec'), ['web', '--command', 'id', '--script', 'id'])).toMatchObject({
      ok: false,
      message: '--script: give exactly one of argv, command, script or lines (got command and script)',
    });
    expect(parseToolArgs(getTool('service_restart'), ['web', '--unit', 'nginx;reboot'])).toMatchObject({ ok: false, message: expect.stringMatching(/^--unit: may contain only/) });
  });
});

describe('targets field', () => {
  it('refuses blank and option-like expressions but accepts the documented forms', () => {
    const ping = getTool('ping');
    for (const targets of [' ', '-all', ' --help']) expect(validateInput(ping, { targets }), targets).toMatchObject({ ok: false, issues: [{ field: 'targets' }] });
    for (const targets of ['all', 'node[01-09]', 'role=storage', 'k8s_worker&rack=left', 'all!storage', '@web,(cp1,cp2)']) {
      expect(validateInput(ping, { targets }), targets).toMatchObject({ ok: true });
    }
  });
});
