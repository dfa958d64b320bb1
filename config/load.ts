// Reading castellan.yaml: YAML syntax, then the schema, then the secrets it points to. Every
// problem found is reported at once, each naming the file, the field path
// (`ssh.connect_timeout`), what was expected and what was found.
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { describe } from './describe.js';
import { readSecrets, type SecretName, type SecretRef, type Secrets } from './secrets.js';
import { LITERAL_SECRET_KEYS, settingsSchema, type Settings } from './schema.js';
import { didYouMean } from './suggest.js';

export { parseDuration, parseSize } from './duration.js';
export type { Settings } from './schema.js';

export interface Config extends Settings {
  /** The config file (absolute). */
  readonly file: string;
  /** Secrets read from env vars and files; redact by value with `secrets.redact()`. */
  readonly secrets: Secrets;
}

export interface ConfigProblem {
  /** Field path like `ssh.connect_timeout` or `auth.roles.admin[0]`; a line for YAML errors. */
  readonly path: string;
  readonly message: string;
}

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: readonly ConfigProblem[],
  ) {
    const lines = problems.map((p) => (p.path === '' ? p.message : `${p.path}: ${p.message}`));
    super(lines.length === 1 ? `${file}: ${lines[0]}` : `${file}: ${lines.length} problems:\n${lines.map((l) => `  - ${l}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export interface LoadOptions {
  /** Environment for `_env` secrets and SSH_AUTH_SOCK (default: process.env). */
  readonly env?: NodeJS.ProcessEnv;
}

/** Read, validate and resolve castellan.yaml. Throws ConfigError listing every problem. */
export async function loadConfig(path: string, options: LoadOptions = {}): Promise<Config> {
  const file = resolve(path);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(path, [{ path: '', message: `cannot read config file (${(error as NodeJS.ErrnoException).code ?? 'error'})` }]);
  }
  return parseConfig(text, path, options);
}

/** Same as loadConfig for text already in hand; `path` names the file and anchors relative paths. */
export async function parseConfig(text: string, path: string, options: LoadOptions = {}): Promise<Config> {
  const env = options.env ?? process.env;
  const file = resolve(path);
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      path,
      doc.errors.map((e) => {
        const at = e.linePos?.[0];
        return { path: at ? `line ${at.line}, column ${at.col}` : '', message: `invalid YAML: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}` };
      }),
    );
  }
  const raw: unknown = doc.toJS() ?? {};
  const schema = settingsSchema(dirname(file), env);
  const parsed = schema.safeParse(raw, { reportInput: true });
  if (!parsed.success) throw new ConfigError(path, parsed.error.issues.flatMap((issue) => explain(issue, schema)));
  const settings = parsed.data;
  const refs: Array<{ name: SecretName; path: string; ref: SecretRef | undefined }> = [
    { name: 'oidcClientSecret', path: 'auth.oidc.client_secret', ref: settings.auth.oidc?.clientSecret },
    { name: 'redisPassword', path: 'redis.password', ref: settings.redis.password },
    { name: 'redisSentinelPassword', path: 'redis.sentinel_password', ref: settings.redis.sentinelPassword },
    { name: 'slackSigningSecret', path: 'slack.signing_secret', ref: settings.slack?.signingSecret },
    { name: 'slackBotToken', path: 'slack.bot_token', ref: settings.slack?.botToken },
    { name: 'slackAppToken', path: 'slack.app_token', ref: settings.slack?.appToken },
    { name: 'dashboardClientSecret', path: 'auth.dashboard.client_secret', ref: settings.auth.dashboard?.clientSecret },
    { name: 'metricsToken', path: 'server.metrics.token', ref: settings.server.metrics.token },
  ];
  const bmcRefs = Object.entries(settings.bmc.credentials).map(([name, ref]) => ({ name, ref, path: `bmc.credentials.${name}.password_${ref.kind}` }));
  const { secrets, problems } = await readSecrets(
    refs.map((r) => ({ ...r, path: r.ref ? `${r.path}_${r.ref.kind}` : r.path })),
    env,
    bmcRefs,
  );
  if (problems.length > 0) throw new ConfigError(path, problems);
  return { ...settings, file, secrets };
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`)).join('');
}

const TYPE_WORDS: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'a mapping',
  array: 'a list',
};

/** One zod issue -> one problem per field, in the operator's words. */
function explain(issue: z.core.$ZodIssue, schema: z.ZodType): ConfigProblem[] {
  const path = formatPath(issue.path);
  const found = 'input' in issue ? issue.input : undefined;
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => ({ path: formatPath([...issue.path, key]), message: unknownKey(key, keysAt(schema, issue.path)) }));
    case 'invalid_type': {
      const expected = TYPE_WORDS[issue.expected] ?? issue.expected;
      return [{ path, message: found === undefined ? `missing (expected ${expected})` : `expected ${expected}, found ${describe(found)}` }];
    }
    case 'invalid_value':
      return [{ path, message: `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, found ${describe(found)}` }];
    case 'too_small':
      return [{ path, message: issue.origin === 'string' ? `expected a non-empty string, found ""` : `expected at least ${String(issue.minimum)}, found ${describe(found)}` }];
    case 'too_big':
      return [{ path, message: `expected at most ${String(issue.maximum)}, found ${describe(found)}` }];
    case 'invalid_union':
      return [{ path, message: `expected ${unionWords(path)}, found ${describe(found)}` }];
    default:
      return [{ path, message: issue.message.startsWith('expected') && found !== undefined ? `${issue.message}, found ${describe(found)}` : issue.message }];
  }
}

function unionWords(path: string): string {
  if (path === 'inventory') return 'a path or a list of paths';
  if (path === 'ssh.agent') return 'true, false or a socket path';
  return 'a different value';
}

function unknownKey(key: string, valid: readonly string[]): string {
  if (LITERAL_SECRET_KEYS.includes(key)) {
    return `secrets are never written in castellan.yaml: use ${key}_env (an environment variable name) or ${key}_file (a file path) instead`;
  }
  const hint = didYouMean(key, valid);
  return hint !== '' ? `unknown key${hint}` : `unknown key (expected one of: ${valid.join(', ')})`;
}

/** Minimal view of zod's internal definitions, enough to walk to the object at a path. */
interface DefView {
  readonly type: string;
  readonly shape?: Record<string, { _zod: { def: DefView } }>;
  readonly innerType?: { _zod: { def: DefView } };
  readonly in?: { _zod: { def: DefView } };
  readonly element?: { _zod: { def: DefView } };
  readonly valueType?: { _zod: { def: DefView } };
}

/** The keys an object at `path` accepts, for "did you mean". */
function keysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let def = (schema as unknown as { _zod: { def: DefView } })._zod.def;
  const unwrap = (d: DefView): DefView => {
    let current = d;
    for (;;) {
      const next = current.innerType ?? current.in;
      if (!next) return current;
      current = next._zod.def;
    }
  };
  for (const key of path) {
    def = unwrap(def);
    const next = typeof key === 'number' ? def.element : def.shape ? def.shape[String(key)] : def.valueType;
    if (!next) return [];
    def = next._zod.def;
  }
  def = unwrap(def);
  return Object.keys(def.shape ?? {});
}
