import { describe, expect, it } from 'vitest';
import { hasRole, identityFor, noRoleReason, rolesForGroups } from '../../auth/roles.js';
import { authConfigFromSettings, oidcConfigFromSettings, parseOidc, parseRoles } from '../../auth/settings.js';

const roleMap = parseRoles({ admin: ['admins'], operator: ['ops', 'sre'], approver: ['leads'], viewer: ['everyone'] });

describe('rolesForGroups', () => {
  it.each([
    [['admins'], ['viewer', 'operator', 'approver', 'admin']],
    [['ops'], ['viewer', 'operator']],
    [['sre'], ['viewer', 'operator']],
    [['leads'], ['viewer', 'approver']],
    [['everyone'], ['viewer']],
    [['ops', 'leads'], ['viewer', 'operator', 'approver']],
    [['guests'], []],
    [[], []],
    // Group names are exact: no case folding, no prefix matching.
    [['Admins', 'admins-old'], []],
  ])('%j -> %j', (groups, expected) => {
    expect(rolesForGroups(groups, roleMap)).toEqual(expected);
  });

  it('gives nothing when the config maps no groups at all', () => {
    expect(rolesForGroups(['admins'], parseRoles(undefined))).toEqual([]);
  });
});

describe('hasRole', () => {
  it('follows implications even when an identity lists only the top role', () => {
    const identity = { roles: ['admin' as const] };
    expect(['viewer', 'operator', 'approver', 'admin'].every((r) => hasRole(identity, r as 'viewer'))).toBe(true);
    expect(hasRole({ roles: ['operator'] }, 'approver')).toBe(false);
    expect(hasRole({ roles: ['approver'] }, 'operator')).toBe(false);
    expect(hasRole({ roles: [] }, 'viewer')).toBe(false);
  });
});

describe('identityFor / noRoleReason', () => {
  it('builds an identity that keeps the groups for audit', () => {
    expect(identityFor('u-1', 'Oscar', ['ops', 'misc'], roleMap)).toEqual({
      subject: 'u-1',
      displayName: 'Oscar',
      groups: ['ops', 'misc'],
      roles: ['viewer', 'operator'],
    });
  });

  it('says "none" when the identity has no groups', () => {
    expect(noRoleReason({ groups: [] })).toBe('no Castellan role: your groups [none] map to none; ask an admin to add one to roles.*');
  });
});

describe('settings schemas', () => {
  it('fills oidc defaults and maps snake_case to the typed shape', () => {
    const oidc = parseOidc({ issuer: 'https://auth.example.com', resource: 'https://castellan.example/mcp', client_id: 'castellan', client_secret: 'a-long-secret' });
    expect(oidc).toMatchObject({ tokenFormat: 'auto', groupsFrom: 'token', groupsClaim: 'groups', cacheTtlSeconds: 30, allowInsecureIssuer: false });
  });

  it('refuses unknown role names and short client secrets', () => {
    expect(() => parseRoles({ superuser: ['x'] })).toThrow();
    expect(() => parseOidc({ issuer: 'https://a.example', resource: 'https://b.example/mcp', client_id: 'c', client_secret: 'short' })).toThrow();
  });
});

describe('adapters from loaded settings', () => {
  it('builds the policy config with default approval rules when the settings carry none', () => {
    const config = authConfigFromSettings({
      auth: { roles: roleMap },
      policy: { readOnly: true, requireApproval: {}, approvals: { required: 2, allowSelfApproval: true, expiryMs: 900_000 }, outputForOthers: 'read', toolRisk: {}, maintenanceWindows: [], outsideWindow: 'wait' },
    });
    expect(config.policy).toEqual({
      readOnly: true,
      approvalsRequired: 2,
      allowSelfApproval: true,
      requireApproval: { read: [], change: ['mcp'], destructive: ['cli', 'mcp', 'slack', 'dashboard'] },
      outputForOthers: 'read',
    });
    expect(config.clients).toEqual({ 'castellan-cli': 'cli' });
  });

  it('maps auth.oidc (audience = resource) and validates it', () => {
    const oidc = oidcConfigFromSettings(
      { issuer: 'https://auth.example.com', clientId: 'castellan', audience: 'https://castellan.example/mcp', tokenFormat: 'opaque', groupsFrom: 'userinfo' },
      'resolved-secret',
      { cacheTtlSeconds: 5 },
    );
    expect(oidc).toMatchObject({ resource: 'https://castellan.example/mcp', clientSecret: 'resolved-secret', tokenFormat: 'opaque', groupsFrom: 'userinfo', cacheTtlSeconds: 5 });
    expect(() => oidcConfigFromSettings({ issuer: 'not a url', clientId: 'c', audience: 'https://a.example', tokenFormat: 'auto', groupsFrom: 'token' }, 'long-enough')).toThrow();
  });
});
