// Who is asking, for every dashboard route: the session (from the cookie) turned into a
// Requester whose origin is `dashboard` because the session was made by the dashboard's own
// sign-in, never because of anything the request says. Roles are mapped from the session's
// groups with the current config on every request, the same mapping the API uses.
import type { Request, Response } from 'express';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import type { RoleMap } from '../../auth/settings.js';
import type { Viewer } from './layout.js';
import type { SessionData } from './session.js';

export interface SignedInLocals {
  readonly viewer: Viewer;
  readonly session: SessionData;
  readonly sessionId: string;
}

export function requesterFor(session: SessionData, roles: RoleMap): Requester {
  return { subject: session.subject, displayName: session.displayName, groups: [...session.groups], roles: rolesForGroups(session.groups, roles), origin: 'dashboard' };
}

export function signedIn(res: Response): SignedInLocals {
  const locals = res.locals['dashboard'] as SignedInLocals | undefined;
  // requireSession runs before every page; reaching here without it is a wiring bug.
  if (locals === undefined) throw new Error('dashboard route without a session');
  return locals;
}

export function setSignedIn(res: Response, locals: SignedInLocals): void {
  res.locals['dashboard'] = locals;
}

/** A path inside the dashboard to come back to after sign-in; anything else becomes /ui/jobs. */
export function safeReturnPath(value: unknown): string {
  if (typeof value !== 'string' || !value.startsWith('/ui/') || value.startsWith('//') || /[\\\r\n]/.test(value) || value.length > 500) return '/ui/jobs';
  return value;
}

export function wantsHtml(req: Request): boolean {
  // Browsers navigating say text/html; fetch(), EventSource and curl send */* or their own type.
  return req.method === 'GET' && (req.get('accept') ?? '').includes('text/html');
}
