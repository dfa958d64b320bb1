// The dashboard's browser-facing protections, in one place: cookies (HttpOnly, SameSite=Lax,
// Secure when the public URL is https), security headers with a strict Content-Security-Policy
// (no inline script, nothing from another origin), and CSRF checks on every state-changing
// request: the Origin (or Referer) must be Castellan's own, and forms must echo the session's
// synchronizer token. The app-wide Host/Origin guard runs before all of this.
import type { Request, RequestHandler, Response } from 'express';
import { sameToken } from './session.js';

export const SESSION_COOKIE = 'castellan_session';
export const LOGIN_COOKIE = 'castellan_login';
export const CSRF_FIELD = '_csrf';
export const CSRF_HEADER = 'x-csrf-token';

export interface CookiePolicy {
  readonly secure: boolean;
}

export function readCookie(req: Request, name: string): string | undefined {
  const header = req.headers.cookie;
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

export function setCookie(res: Response, policy: CookiePolicy, name: string, value: string, maxAgeMs: number | undefined): void {
  res.cookie(name, value, { httpOnly: true, sameSite: 'lax', secure: policy.secure, path: '/ui', ...(maxAgeMs !== undefined ? { maxAge: maxAgeMs } : {}) });
}

export function clearCookie(res: Response, policy: CookiePolicy, name: string): void {
  res.clearCookie(name, { httpOnly: true, sameSite: 'lax', secure: policy.secure, path: '/ui' });
}

export interface HeaderOptions {
  /** Origins forms may post to besides our own (the IdP's, for the sign-out redirect). */
  readonly formTargets: readonly string[];
  /** bull-board's React UI sets inline styles (never inline script). */
  readonly allowInlineStyles?: boolean;
}

export function contentSecurityPolicy(options: HeaderOptions): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    `style-src 'self'${options.allowInlineStyles ? " 'unsafe-inline'" : ''}`,
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    `form-action 'self' ${options.formTargets.join(' ')}`.trim(),
    "frame-ancestors 'none'",
    `base-uri ${options.allowInlineStyles ? "'self'" : "'none'"}`,
  ].join('; ');
}

export function securityHeaders(options: HeaderOptions): RequestHandler {
  const csp = contentSecurityPolicy(options);
  return (_req, res, next) => {
    res.set({
      'Content-Security-Policy': csp,
      'X-Content-Type-Options': 'nosniff',
      'X-Frame-Options': 'DENY',
      'Referrer-Policy': 'same-origin',
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Resource-Policy': 'same-origin',
      'Permissions-Policy': 'camera=(), microphone=(), geolocation=(), payment=()',
      'Cache-Control': 'no-store',
    });
    next();
  };
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export type CsrfVerdict = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * A state-changing request must come from one of our own pages: its Origin (or, when a
 * browser omits Origin, its Referer) must be Castellan's public origin. A request naming
 * neither is refused too: every browser that matters sends Origin on POST.
 */
export function checkSameOrigin(req: Request, publicOrigin: string): CsrfVerdict {
  if (SAFE_METHODS.has(req.method)) return { ok: true };
  const fetchSite = req.get('sec-fetch-site');
  if (fetchSite !== undefined && fetchSite !== 'same-origin') return { ok: false, reason: `cross-site request refused (Sec-Fetch-Site: ${fetchSite})` };
  const origin = req.get('origin');
  if (origin !== undefined && origin !== 'null') {
    return origin.toLowerCase() === publicOrigin.toLowerCase() ? { ok: true } : { ok: false, reason: `cross-site request refused (Origin ${origin})` };
  }
  const referer = req.get('referer');
  if (referer !== undefined && URL.canParse(referer) && new URL(referer).origin.toLowerCase() === publicOrigin.toLowerCase()) return { ok: true };
  return { ok: false, reason: 'request refused: it does not say it comes from this dashboard (no Origin or Referer)' };
}

/** The form field or header must carry the session's synchronizer token. */
export function checkCsrfToken(req: Request, expected: string): CsrfVerdict {
  const body = req.body as Record<string, unknown> | undefined;
  const sent = req.get(CSRF_HEADER) ?? (typeof body?.[CSRF_FIELD] === 'string' ? body[CSRF_FIELD] : undefined);
  if (sent === undefined || sent === '') return { ok: false, reason: 'request refused: the form has no CSRF token (reload the page and try again)' };
  return sameToken(sent, expected) ? { ok: true } : { ok: false, reason: 'request refused: the CSRF token does not match your session (reload the page and try again)' };
}
