// An approval is bound to the exact plan it was given for. The hash is over a canonical
// JSON form (sorted keys), so the same plan always hashes the same in every process.
import { createHash } from 'node:crypto';
import { canonicalJson } from '../config/canonical-json.js';
import type { Plan } from '../tools/types.js';

export function planHash(plan: Plan): string {
  return createHash('sha256').update(canonicalJson(plan)).digest('hex');
}
