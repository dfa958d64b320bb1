// The playbooks Castellan may run: an allowlist in castellan.yaml. A request names a playbook
// by its key, never by path; its extra vars are typed here, per playbook, so a request cannot
// smuggle `ansible_*` connection variables or untyped data into a run.
//
//   ansible:
//     playbooks:
//       motd:
//         path: playbooks/motd.yml           # relative to castellan.yaml
//         risk: change                        # read | change | destructive
//         description: Write /etc/motd
//         tags: [motd, banner]                # optional: the only tags a request may pick
//         extra_vars:
//           greeting: { type: string, pattern: '^[A-Za-z ]{1,40}$', required: true }
//           retries: { type: integer, min: 0, max: 5 }
import { z } from 'zod';

export const EXTRA_VAR_TYPES = ['string', 'integer', 'boolean', 'enum'] as const;

export interface ExtraVarSpec {
  readonly type: (typeof EXTRA_VAR_TYPES)[number];
  readonly description: string | undefined;
  readonly required: boolean;
  /** string: a regex the whole value must match (anchor it). */
  readonly pattern: string | undefined;
  /** integer bounds. */
  readonly min: number | undefined;
  readonly max: number | undefined;
  /** enum: the allowed values. */
  readonly values: readonly string[] | undefined;
}

export interface PlaybookSettings {
  /** Absolute path of the playbook file. */
  readonly path: string;
  readonly risk: 'read' | 'change' | 'destructive';
  readonly description: string;
  /** When set, the only tags a request may select. */
  readonly tags: readonly string[] | undefined;
  readonly extraVars: Readonly<Record<string, ExtraVarSpec>>;
}

export interface AnsibleSettings {
  /** The ansible-playbook program (PATH lookup unless absolute). */
  readonly playbookBinary: string;
  readonly playbooks: Readonly<Record<string, PlaybookSettings>>;
  /** Parallel hosts per run (ansible --forks). */
  readonly forks: number;
}

export const PLAYBOOK_KEY = /^[a-z][a-z0-9_-]{0,63}$/;
export const EXTRA_VAR_NAME = /^[a-z_][a-z0-9_]{0,63}$/;
export const TAG = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function validRegex(source: string): boolean {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
}

const extraVar = z
  .strictObject({
    type: z.enum(EXTRA_VAR_TYPES),
    description: z.string().max(500).optional(),
    required: z.boolean().default(false),
    pattern: z.string().max(500).refine(validRegex, { error: 'is not a valid regular expression' }).optional(),
    min: z.number().int().optional(),
    max: z.number().int().optional(),
    values: z.array(z.string().min(1).max(200)).min(1).optional(),
  })
  .refine((v) => v.type !== 'enum' || v.values !== undefined, { error: 'an enum extra var needs `values`' })
  .transform((v): ExtraVarSpec => ({ type: v.type, description: v.description, required: v.required, pattern: v.pattern, min: v.min, max: v.max, values: v.values }));

/** `resolvePath` turns a configured path into an absolute one (relative to castellan.yaml). */
export function ansibleSchema(resolvePath: z.ZodType<string, string>) {
  const playbook = z
    .strictObject({
      path: resolvePath,
      risk: z.enum(['read', 'change', 'destructive']),
      description: z.string().min(1).max(500),
      tags: z.array(z.string().regex(TAG, { error: 'tags are letters, digits and . _ -' })).optional(),
      extra_vars: z
        .record(
          z
            .string()
            .regex(EXTRA_VAR_NAME, { error: 'extra var names are lower-case identifiers' })
            .refine((name) => !name.startsWith('ansible_'), { error: 'ansible_* variables control connections and cannot be request parameters' }),
          extraVar,
        )
        .default({}),
    })
    .transform((v): PlaybookSettings => ({ path: v.path, risk: v.risk, description: v.description, tags: v.tags, extraVars: v.extra_vars }));

  return z
    .strictObject({
      playbook_binary: z.string().min(1).default('ansible-playbook'),
      forks: z.number().int().min(1).max(500).default(20),
      playbooks: z.record(z.string().regex(PLAYBOOK_KEY, { error: 'playbook names are lower-case, digits, _ and -' }), playbook).default({}),
    })
    .transform((v): AnsibleSettings => ({ playbookBinary: v.playbook_binary, forks: v.forks, playbooks: v.playbooks }))
    .prefault({});
}
