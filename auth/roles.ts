// IdP groups -> Castellan roles. Roles form a small lattice: admin implies every other
// role; operator and approver each imply viewer. Roles are expanded here, once, so every
// later check is a plain membership test and an identity's `roles` list says everything.
import { ROLES, type Identity, type Role } from './types.js';
import type { RoleMap } from './settings.js';

const IMPLIES: Readonly<Record<Role, readonly Role[]>> = {
  admin: ['admin', 'operator', 'approver', 'viewer'],
  operator: ['operator', 'viewer'],
  approver: ['approver', 'viewer'],
  viewer: ['viewer'],
};

/** Roles granted by `groups`, implied roles included, in canonical order (viewer … admin). */
export function rolesForGroups(groups: readonly string[], roleMap: RoleMap): Role[] {
  const granted = new Set<Role>();
  for (const role of ROLES) {
    if (roleMap[role].some((group) => groups.includes(group))) {
      for (const implied of IMPLIES[role]) granted.add(implied);
    }
  }
  return ROLES.filter((role) => granted.has(role));
}

/** True when the identity holds `role` directly or through an implying role. */
export function hasRole(identity: Pick<Identity, 'roles'>, role: Role): boolean {
  return identity.roles.some((held) => IMPLIES[held].includes(role));
}

/** The operator-facing refusal for an identity whose groups map to no role. */
export function noRoleReason(identity: Pick<Identity, 'groups'>): string {
  const groups = identity.groups.length > 0 ? identity.groups.join(', ') : 'none';
  return `no Castellan role: your groups [${groups}] map to none; ask an admin to add one to roles.*`;
}

/** Build an Identity from verified claims: the one place groups become roles. */
export function identityFor(
  subject: string,
  displayName: string,
  groups: readonly string[],
  roleMap: RoleMap,
): Identity {
  return { subject, displayName, groups: [...groups], roles: rolesForGroups(groups, roleMap) };
}
