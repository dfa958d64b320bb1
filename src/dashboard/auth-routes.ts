// /ui/auth/*: sign-in (redirect to the IdP with PKCE), the callback (code exchange, session,
// cookie), sign-out (session destroyed here, then RP-initiated logout at the IdP) and the
// signed-out page. Nothing here trusts a request header for who someone is.
import express, { type Request } from 'express';
import { errorMessage } from '../../config/errors.js';
import type { Logger } from '../log.js';
import { html } from '../present/render/markup.js';
import { barePage, UI } from './layout.js';
import { safeReturnPath } from './context.js';
import type { SessionStore } from './session.js';
import { checkCsrfToken, checkSameOrigin, clearCookie, LOGIN_COOKIE, readCookie, SESSION_COOKIE, setCookie, type CookiePolicy } from './security.js';
import type { SignIn } from './sign-in.js';

export interface AuthRoutesOptions {
  readonly signIn: SignIn;
  readonly sessions: SessionStore;
  readonly cookies: CookiePolicy;
  readonly publicUrl: string;
  /** Absolute URL of /ui/auth/callback, as registered at the IdP. */
  readonly redirectUri: string;
  readonly absoluteMs: number;
  readonly logger: Logger;
}

export function authRoutes(options: AuthRoutesOptions): express.Router {
  const { signIn, sessions, cookies } = options;
  const router = express.Router();
  const publicOrigin = new URL(options.publicUrl).origin;

  router.get('/auth/login', async (req, res) => {
    const started = await signIn.start();
    const id = await sessions.beginLogin({ codeVerifier: started.codeVerifier, state: started.state, nonce: started.nonce, returnTo: safeReturnPath(req.query['return']) });
    setCookie(res, cookies, LOGIN_COOKIE, id, 10 * 60 * 1000);
    res.redirect(303, started.url.href);
  });

  router.get('/auth/callback', async (req, res) => {
    const pending = await sessions.takeLogin(readCookie(req, LOGIN_COOKIE));
    clearCookie(res, cookies, LOGIN_COOKIE);
    if (pending === undefined) {
      res.status(400).type('html').send(barePage('Sign-in expired', html`<p>This sign-in link was already used or is more than ten minutes old.</p><p><a class="button primary" href="${UI}/auth/login">Sign in again</a></p>`).value);
      return;
    }
    const providerError = req.query['error'];
    if (typeof providerError === 'string') {
      const description = typeof req.query['error_description'] === 'string' ? req.query['error_description'] : providerError;
      res.status(401).type('html').send(barePage('Sign-in refused', html`<p>The sign-in provider said: ${description}</p><p><a class="button primary" href="${UI}/auth/login">Try again</a></p>`).value);
      return;
    }
    let who;
    try {
      who = await signIn.finish(callbackUrl(req, options.redirectUri), pending);
    } catch (error) {
      options.logger.warn({ err: errorMessage(error) }, 'dashboard sign-in failed');
      res.status(401).type('html').send(barePage('Sign-in failed', html`<p>The sign-in could not be completed: ${errorMessage(error)}</p><p><a class="button primary" href="${UI}/auth/login">Try again</a></p>`).value);
      return;
    }
    // A fresh id at every sign-in (no session fixation).
    const previous = readCookie(req, SESSION_COOKIE);
    if (previous !== undefined) await sessions.destroy(previous);
    const { id } = await sessions.create(who);
    setCookie(res, cookies, SESSION_COOKIE, id, options.absoluteMs);
    options.logger.info({ subject: who.subject, groups: who.groups }, 'dashboard sign-in');
    res.redirect(303, pending.returnTo);
  });

  router.post('/auth/logout', express.urlencoded({ extended: false, limit: '4kb' }), async (req, res) => {
    const sessionId = readCookie(req, SESSION_COOKIE);
    const session = await sessions.get(sessionId);
    const origin = checkSameOrigin(req, publicOrigin);
    const token = session !== undefined ? checkCsrfToken(req, session.csrf) : { ok: true as const };
    if (!origin.ok || !token.ok) {
      res.status(403).type('html').send(barePage('Request refused', html`<p>${!origin.ok ? origin.reason : token.ok ? '' : token.reason}</p>`).value);
      return;
    }
    if (sessionId !== undefined) await sessions.destroy(sessionId);
    clearCookie(res, cookies, SESSION_COOKIE);
    const endSession = await signIn.endSessionUrl(session?.idToken);
    res.redirect(303, endSession?.href ?? `${UI}/signed-out`);
  });

  router.get('/signed-out', (_req, res) => {
    res.type('html').send(barePage('Signed out', html`<p>You are signed out of Castellan.</p><p><a class="button primary" href="${UI}/auth/login">Sign in again</a></p>`).value);
  });
  return router;
}

/** The callback URL as the IdP redirected to it: the registered redirect URI plus this request's query. */
function callbackUrl(req: Request, redirectUri: string): URL {
  const url = new URL(redirectUri);
  url.search = new URL(req.originalUrl, 'http://callback.invalid').search;
  return url;
}
