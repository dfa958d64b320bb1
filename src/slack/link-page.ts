// Castellan's link page: the browser half of linking a Slack user to their OIDC identity.
// `/slack/link?state=…` (the URL in the ephemeral "Link your account" button) binds the flow
// to this browser with an HttpOnly cookie and redirects to the IdP; `/slack/link/callback`
// finishes the authorization code + PKCE exchange and stores the link.
import { Router, type Request } from 'express';
import { visibleInline } from '../../config/visible.js';
import { errorMessage } from '../../config/errors.js';
import type { Logger } from '../log.js';
import { LINK_STATE_TTL_S, LinkError, type PendingLink, type SlackLinks, type StoredLink } from './links.js';

export const LINK_PATH = '/slack/link';
export const LINK_CALLBACK_PATH = '/slack/link/callback';
const COOKIE = 'castellan_slack_link';

export function linkUrl(publicUrl: string, state: string): string {
  const url = new URL(LINK_PATH, publicUrl);
  url.searchParams.set('state', state);
  return url.href;
}

export function linkRouter(options: {
  links: SlackLinks;
  publicUrl: string;
  logger: Logger;
  onLinked: (pending: PendingLink, link: StoredLink) => Promise<void>;
}): Router {
  const router = Router();
  const redirectUri = new URL(LINK_CALLBACK_PATH, options.publicUrl).href;
  const secure = new URL(options.publicUrl).protocol === 'https:';

  router.get(LINK_PATH, async (req, res) => {
    const state = typeof req.query.state === 'string' ? req.query.state : '';
    try {
      const started = state === '' ? undefined : await options.links.authorizationUrl(state, redirectUri);
      if (!started) {
        res.status(400).type('html').send(page('Link expired', 'This link was already used or has expired (links last 10 minutes). Run <code>/castellan link</code> in Slack again.'));
        return;
      }
      res.cookie(COOKIE, started.browserNonce, { httpOnly: true, sameSite: 'lax', secure, path: LINK_PATH, maxAge: LINK_STATE_TTL_S * 1000 });
      res.redirect(302, started.url.href);
    } catch (error) {
      options.logger.warn({ err: errorMessage(error) }, 'Slack link page could not start the sign-in');
      res.status(503).type('html').send(page('Cannot sign in', 'The identity provider is not answering. Try again in a moment.'));
    }
  });

  router.get(LINK_CALLBACK_PATH, async (req, res) => {
    res.clearCookie(COOKIE, { path: LINK_PATH });
    try {
      const callback = new URL(req.originalUrl, options.publicUrl);
      const { pending, link } = await options.links.complete(callback, cookieOf(req, COOKIE), redirectUri);
      await options.onLinked(pending, link).catch((error: unknown) => options.logger.warn({ err: errorMessage(error) }, 'could not confirm the link in Slack'));
      options.logger.info({ team: pending.team, slackUser: pending.user, subject: link.subject }, 'Slack user linked');
      res
        .status(200)
        .type('html')
        .send(
          page(
            'Linked',
            `Slack user <code>${html(pending.user)}</code> is now linked to <b>${html(visibleInline(link.displayName))}</b> (<code>${html(visibleInline(link.subject))}</code>). You can close this tab and use <code>/castellan</code> in Slack.`,
          ),
        );
    } catch (error) {
      const known = error instanceof LinkError;
      if (!known) options.logger.warn({ err: errorMessage(error) }, 'Slack link callback failed');
      res
        .status(400)
        .type('html')
        .send(page('Not linked', known ? html(error.message) : 'The sign-in could not be completed. Run <code>/castellan link</code> in Slack again.'));
    }
  });
  return router;
}

function cookieOf(req: Request, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

function html(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;').replaceAll("'", '&#39;');
}

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Castellan · ${html(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="referrer" content="no-referrer">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1d1c1d}code{background:#f4f4f4;padding:0 .2em}</style>
</head><body><h1>${html(title)}</h1><p>${body}</p></body></html>`;
}
