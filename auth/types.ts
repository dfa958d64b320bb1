// Who asks. An Identity is established once per request by a front end (OIDC token, Slack
// link, local config identity) and then travels unchanged with the job.

import type { Origin, Role } from '../config/vocabulary.js';

// Re-exported so `auth/types` stays the one place to import identity words from.
export { ORIGINS, ROLES, type Origin, type Role } from '../config/vocabulary.js';

/**
 * Origins a person drives with their own hands: only these may approve, deny or skip an
 * approval. `mcp` is an AI client (and the most restricted origin, which an unknown OIDC client
 * also gets); the front end never chooses its own origin from anything the caller sends.
 */
export const PERSON_ORIGINS = ['cli', 'slack', 'dashboard'] as const satisfies readonly Origin[];
export type PersonOrigin = (typeof PERSON_ORIGINS)[number];

/** The origin given to a credential Castellan cannot attribute to a person-driven client. */
export const MOST_RESTRICTED_ORIGIN: Origin = 'mcp';

export function isPersonOrigin(origin: Origin): origin is PersonOrigin {
  return (PERSON_ORIGINS as readonly Origin[]).includes(origin);
}

export interface Identity {
  /** OIDC `sub` (or the configured local identity's subject). */
  readonly subject: string;
  readonly displayName: string;
  /** IdP groups as received (for audit). */
  readonly groups: readonly string[];
  /** Roles mapped from groups by config. */
  readonly roles: readonly Role[];
}

export interface Requester extends Identity {
  readonly origin: Origin;
}
