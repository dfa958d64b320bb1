// Which castellan.yaml the CLI uses: --config, then $CASTELLAN_CONFIG, then ./castellan.yaml,
// then the one `castellan up` writes (./.castellan/castellan.yaml).
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { CastellanError } from '../../config/errors.js';

export const DEFAULT_UP_DIR = '.castellan';

export function findConfig(explicit: string | undefined): string {
  if (explicit) return resolve(explicit);
  const env = process.env.CASTELLAN_CONFIG;
  if (env) return resolve(env);
  for (const candidate of ['castellan.yaml', `${DEFAULT_UP_DIR}/castellan.yaml`]) {
    if (existsSync(candidate)) return resolve(candidate);
  }
  throw new CastellanError(
    'invalid_input',
    "no castellan.yaml found: pass --config FILE, set CASTELLAN_CONFIG, or start the embedded default with 'castellan up'",
  );
}
