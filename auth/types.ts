// Who asks. An Identity is established once per request by a front end (OIDC token, Slack
// link, local config identity) and then travels unchanged with the job.

export const ROLES = ['viewer', 'operator', 'approver', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export const ORIGINS = ['cli', 'mcp', 'slack', 'dashboard'] as const;
export type Origin = (typeof ORIGINS)[number];

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
