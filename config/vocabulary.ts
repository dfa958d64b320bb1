// The words every layer shares: how risky an operation is, what a person may be, where a
// request came from. They live at the bottom so that auth, tools, queues and the front ends
// all mean the same thing by them without importing upwards.

/** What an operation can do to a machine; decides approval and who may run it. */
export const RISKS = ['read', 'change', 'destructive'] as const;
export type Risk = (typeof RISKS)[number];

/** Castellan roles, mapped from IdP groups by config. */
export const ROLES = ['viewer', 'operator', 'approver', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** The front end a request came through, as established from the verified credential. */
export const ORIGINS = ['cli', 'mcp', 'slack', 'dashboard'] as const;
export type Origin = (typeof ORIGINS)[number];

/**
 * Groups of tools an operator can serve to AI clients over MCP (`mcp.toolsets`), so an
 * assistant's tool list holds only what its work needs. The job tools are always served.
 */
export const TOOLSETS = ['inventory', 'health', 'services', 'commands', 'files', 'power', 'kubernetes', 'wireguard', 'boot', 'upgrades'] as const;
export type Toolset = (typeof TOOLSETS)[number];
