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

export const SECRET_NAMES = ['oidcClientSecret', 'redisPassword', 'slackSigningSecret', 'slackBotToken', 'slackAppToken', 'dashboardClientSecret', 'metricsToken'] as const;
export type SecretName = (typeof SECRET_NAMES)[number];

export class Secrets {
  readonly #values: ReadonlyMap<SecretName, string>;

  constructor(values: ReadonlyMap<SecretName, string> = new Map()) {
    this.#values = values;
  }

  get oidcClientSecret(): string | undefined {
    return this.#values.get('oidcClientSecret');
  }
  get redisPassword(): string | undefined {
    return this.#values.get('redisPassword');
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
    return [...this.#values.values()];
  }

  /** Replace every occurrence of any secret in `text` with `[redacted]`. */
  redact(text: string): string {
    let out = text;
    for (const value of this.#values.values()) if (value !== '') out = out.split(value).join('[redacted]');
    return out;
  }

  toJSON(): string {
    return '[redacted]';
  }

  [inspect.custom](): string {
    return `Secrets { ${[...this.#values.keys()].join(', ')} }`;
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
): Promise<{ secrets: Secrets; problems: SecretProblem[] }> {
  const values = new Map<SecretName, string>();
  const problems: SecretProblem[] = [];
  for (const { name, path, ref } of refs) {
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
    else if (value !== undefined) values.set(name, value);
  }
  return { secrets: new Secrets(values), problems };
}
