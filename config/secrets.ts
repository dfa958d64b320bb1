// Secrets never live in castellan.yaml. The file names where each secret comes from
// (`client_secret_env: NAME` or `client_secret_file: /run/secrets/x`); loading reads them into
// one Secrets object, kept apart from the settings so it can be redacted by value and so that
// logging the whole config by mistake prints `[redacted]`, not the secret.
import { readFile } from 'node:fs/promises';
import { inspect } from 'node:util';

export type SecretRef = { readonly kind: 'env'; readonly name: string } | { readonly kind: 'file'; readonly path: string };

/** Where a secret comes from, for messages (never the value). */
export function describeSecretRef(ref: SecretRef): string {
  return ref.kind === 'env' ? `environment variable ${ref.name}` : `file ${ref.path}`;
}

export const SECRET_NAMES = ['oidcClientSecret', 'redisPassword', 'redisSentinelPassword', 'slackSigningSecret', 'slackBotToken', 'slackAppToken', 'dashboardClientSecret', 'metricsToken'] as const;
export type SecretName = (typeof SECRET_NAMES)[number];

export class Secrets {
  readonly #values: ReadonlyMap<SecretName, string>;
  /** BMC passwords by credential name (config bmc.credentials). */
  readonly #bmc: ReadonlyMap<string, string>;

  constructor(values: ReadonlyMap<SecretName, string> = new Map(), bmc: ReadonlyMap<string, string> = new Map()) {
    this.#values = values;
    this.#bmc = bmc;
  }

  /** The password of BMC credential `name` (bmc.credentials.<name>), undefined when not configured. */
  bmcPassword(name: string): string | undefined {
    return this.#bmc.get(name);
  }

  get oidcClientSecret(): string | undefined {
    return this.#values.get('oidcClientSecret');
  }
  get redisPassword(): string | undefined {
    return this.#values.get('redisPassword');
  }
  get redisSentinelPassword(): string | undefined {
    return this.#values.get('redisSentinelPassword');
  }
  get slackSigningSecret(): string | undefined {
    return this.#values.get('slackSigningSecret');
  }
  get slackBotToken(): string | undefined {
    return this.#values.get('slackBotToken');
  }
  get slackAppToken(): string | undefined {
    return this.#values.get('slackAppToken');
  }
  get dashboardClientSecret(): string | undefined {
    return this.#values.get('dashboardClientSecret');
  }
  /** Bearer token /metrics requires (server.metrics.token_env / token_file). */
  get metricsToken(): string | undefined {
    return this.#values.get('metricsToken');
  }

  /** Every secret value, for log redaction by value (pino `redact` cannot see inside strings). */
  values(): string[] {
    return [...this.#values.values(), ...this.#bmc.values()];
  }

  /** Replace every occurrence of any secret in `text` with `[redacted]`. */
  redact(text: string): string {
    let out = text;
    for (const value of this.values()) if (value !== '') out = out.split(value).join('[redacted]');
    return out;
  }

  toJSON(): string {
    return '[redacted]';
  }

  [inspect.custom](): string {
    return `Secrets { ${[...this.#values.keys(), ...[...this.#bmc.keys()].map((k) => `bmc:${k}`)].join(', ')} }`;
  }
}

export interface SecretProblem {
  readonly path: string;
  readonly message: string;
}

/**
 * Read each referenced secret. Problems are collected, not thrown one by one, so an operator
 * fixing a deployment sees every missing variable and unreadable file at once.
 */
export async function readSecrets(
  refs: ReadonlyArray<{ readonly name: SecretName; readonly path: string; readonly ref: SecretRef | undefined }>,
  env: NodeJS.ProcessEnv,
  bmcRefs: ReadonlyArray<{ readonly name: string; readonly path: string; readonly ref: SecretRef }> = [],
): Promise<{ secrets: Secrets; problems: SecretProblem[] }> {
  const values = new Map<SecretName, string>();
  const bmc = new Map<string, string>();
  const problems: SecretProblem[] = [];
  const all: { name: string; path: string; ref: SecretRef | undefined; keep: (value: string) => void }[] = [
    ...refs.map((r) => ({ ...r, keep: (value: string) => values.set(r.name, value) })),
    ...bmcRefs.map((r) => ({ ...r, keep: (value: string) => bmc.set(r.name, value) })),
  ];
  for (const { path, ref, keep } of all) {
    if (!ref) continue;
    let value: string | undefined;
    if (ref.kind === 'env') {
      value = env[ref.name];
      if (value === undefined) problems.push({ path, message: `environment variable ${ref.name} is not set` });
    } else {
      try {
        // A trailing newline is how editors and `echo` end files, not part of the secret.
        value = (await readFile(ref.path, 'utf8')).replace(/\r?\n$/, '');
      } catch (error) {
        problems.push({ path, message: `cannot read secret file ${ref.path} (${(error as NodeJS.ErrnoException).code ?? 'error'})` });
      }
    }
    if (value === '') problems.push({ path, message: `${describeSecretRef(ref)} is empty` });
    else if (value !== undefined) keep(value);
  }
  return { secrets: new Secrets(values, bmc), problems };
}
