// The page shell every dashboard page shares: header with navigation and the signed-in person,
// main content, one stylesheet and one script, both served from the repository (no CDN).
import type { Requester } from '../../auth/types.js';
import { CSRF_FIELD } from './security.js';
import { html, inline, type Html } from '../present/render/markup.js';
import { UI_BASE } from '../present/render/html.js';

export const UI = UI_BASE;

export interface Viewer {
  readonly requester: Requester;
  readonly csrf: string;
}

const NAV: ReadonlyArray<{ readonly path: string; readonly label: string; readonly admin?: boolean }> = [
  { path: '/jobs', label: 'Jobs' },
  { path: '/approvals', label: 'Approvals' },
  { path: '/run', label: 'Run a tool' },
  { path: '/hosts', label: 'Hosts' },
  { path: '/audit', label: 'Audit' },
  { path: '/queues', label: 'Queues' },
];

export interface PageOptions {
  readonly title: string;
  /** Which nav entry is current (its path, e.g. '/jobs'). */
  readonly section: string;
  readonly viewer: Viewer;
  readonly body: Html;
  /** Count shown next to Approvals. */
  readonly pendingApprovals?: number;
}

/** A hidden field carrying the CSRF token; every POST form includes it. */
export function csrfField(viewer: Viewer): Html {
  return html`<input type="hidden" name="${CSRF_FIELD}" value="${viewer.csrf}">`;
}

/** The document's start: every page has the one stylesheet; signed-in pages add the script and token. */
function head(title: string, extra: Html = html``): Html {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>${title} · Castellan</title>
<link rel="stylesheet" href="${UI}/assets/dashboard.css">
<link rel="icon" href="${UI}/assets/castellan.svg" type="image/svg+xml">
${extra}
</head>`;
}

export function page(options: PageOptions): Html {
  const { viewer } = options;
  const roles = viewer.requester.roles.join(', ') || 'no role';
  const nav = NAV.map((entry) => {
    const current = entry.path === options.section;
    const badge = entry.path === '/approvals' && (options.pendingApprovals ?? 0) > 0 ? html` <span class="badge" aria-label="${options.pendingApprovals} waiting">${options.pendingApprovals}</span>` : '';
    return html`<li><a href="${UI}${entry.path}"${current ? html` aria-current="page"` : ''}>${entry.label}${badge}</a></li>`;
  });
  return html`${head(options.title, html`<meta name="csrf-token" content="${viewer.csrf}">
<script src="${UI}/assets/dashboard.js" defer></script>`)}
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <a class="brand" href="${UI}/jobs"><img src="${UI}/assets/castellan.svg" alt="" width="22" height="22"> Castellan</a>
  <nav aria-label="Main"><ul>${nav}</ul></nav>
  <div class="who">
    <span title="${viewer.requester.subject}">${inline(viewer.requester.displayName)}</span>
    <span class="roles">${roles}</span>
    <form method="post" action="${UI}/auth/logout">${csrfField(viewer)}<button type="submit" class="link">Sign out</button></form>
  </div>
</header>
<main id="main" tabindex="-1">
${options.body}
</main>
</body>
</html>`;
}

/** A bare page for the signed-out and error screens (no navigation, no session). */
export function barePage(title: string, body: Html): Html {
  return html`${head(title)}
<body class="bare">
<main id="main" class="card narrow">
<h1><img src="${UI}/assets/castellan.svg" alt="" width="28" height="28"> ${title}</h1>
${body}
</main>
</body>
</html>`;
}
